"""What the store hands out: list entries and fully resolved local models."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from models.errors import InvalidManifest
from models.manifest import Manifest, ModelConfig
from models.names import ModelName

__all__ = [
    "MAX_TEXT_LAYER_BYTES",
    "LocalModel",
    "ModelEntry",
    "decode_messages",
    "decode_params",
    "decode_text",
]

# Template, system, params, license, messages and config blobs are small; anything
# bigger than this is refused rather than read into memory.
MAX_TEXT_LAYER_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelEntry:
    """One row of :meth:`ModelStore.list_models` (what ``/api/tags`` shows)."""

    name: ModelName
    manifest: Manifest
    digest: str  # sha256 hex of the manifest file, no prefix
    size: int  # config + layer sizes, like Ollama's Manifest.Size()
    modified_at: datetime  # manifest mtime, UTC
    config: ModelConfig = field(default_factory=ModelConfig)


@dataclass(frozen=True)
class LocalModel:
    """A model resolved from its manifest: paths to its blobs and its decoded layers."""

    name: ModelName
    digest: str  # sha256 hex of the manifest file, no prefix
    model_path: Path
    projector_path: Path | None
    template: str | None
    system: str | None
    params: dict[str, object]
    license: list[str]
    messages: list[dict[str, object]]
    config: ModelConfig
    size: int
    modified_at: datetime
    manifest: Manifest
    adapter_paths: tuple[Path, ...] = ()


def decode_text(data: bytes, what: str) -> str:
    """Decode a text layer (template, system, license) as UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidManifest(f"{what} layer is not valid UTF-8") from None


def decode_params(data: bytes) -> dict[str, object]:
    """Decode the params layer: a JSON object of Modelfile PARAMETERs."""
    try:
        value = json.loads(data)
    except ValueError:
        raise InvalidManifest("params layer is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidManifest("params layer is not a JSON object")
    return value


def decode_messages(data: bytes) -> list[dict[str, object]]:
    """Decode the messages layer: a JSON array of ``{role, content, ...}`` objects."""
    try:
        value = json.loads(data)
    except ValueError:
        raise InvalidManifest("messages layer is not valid JSON") from None
    if not isinstance(value, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    ):
        raise InvalidManifest("messages layer is not a list of {role, content} objects")
    return value
