"""Building the layer list of a new model (create, import, default-model bootstrap)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from models.manifest import (
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
)

__all__ = ["build_layers", "encode_json_layer"]


def encode_json_layer(value: object) -> bytes:
    """Compact JSON with sorted keys, as Go's ``json.Marshal`` writes a map."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build_layers(
    existing: Callable[[str, str], Layer],
    new: Callable[[str, bytes], Layer],
    *,
    model_blob: str,
    projector_blob: str | None,
    adapter_blobs: Iterable[str],
    template: str | None,
    system: str | None,
    params: dict[str, object] | None,
    license: list[str] | None,
    messages: list[dict[str, object]] | None,
) -> list[Layer]:
    """Layers in Ollama's order: model, projector, adapters, template, system, license,
    params, messages. ``existing`` wraps a stored blob, ``new`` stores bytes."""
    layers = [existing(MEDIA_MODEL, model_blob)]
    if projector_blob is not None:
        layers.append(existing(MEDIA_PROJECTOR, projector_blob))
    layers.extend(existing(MEDIA_ADAPTER, digest) for digest in adapter_blobs)
    if template is not None:
        layers.append(new(MEDIA_TEMPLATE, template.encode()))
    if system is not None:
        layers.append(new(MEDIA_SYSTEM, system.encode()))
    layers.extend(new(MEDIA_LICENSE, text.encode()) for text in license or ())
    if params:
        layers.append(new(MEDIA_PARAMS, encode_json_layer(params)))
    if messages:
        layers.append(new(MEDIA_MESSAGES, encode_json_layer(messages)))
    return layers
