"""Manifest and config-blob schemas (Docker distribution v2, as Ollama stores them)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from pydantic import field_validator as _field_validator

from models.digest import parse_digest
from models.errors import InvalidDigest, InvalidManifest

__all__ = [
    "MANIFEST_MEDIA_TYPES",
    "MAX_LAYERS",
    "MAX_LAYER_SIZE",
    "MEDIA_ADAPTER",
    "MEDIA_CONFIG",
    "MEDIA_LICENSE",
    "MEDIA_MANIFEST",
    "MEDIA_MESSAGES",
    "MEDIA_MODEL",
    "MEDIA_PARAMS",
    "MEDIA_PROJECTOR",
    "MEDIA_SYSTEM",
    "MEDIA_TEMPLATE",
    "Layer",
    "Manifest",
    "ModelConfig",
    "RootFS",
    "parse_manifest",
]

_ManifestMediaType = Literal[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]
MEDIA_MANIFEST: _ManifestMediaType = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_OCI_MANIFEST: _ManifestMediaType = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_MEDIA_TYPES = (MEDIA_MANIFEST, MEDIA_OCI_MANIFEST)
MEDIA_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_MODEL = "application/vnd.ollama.image.model"
MEDIA_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_SYSTEM = "application/vnd.ollama.image.system"
MEDIA_PARAMS = "application/vnd.ollama.image.params"
MEDIA_LICENSE = "application/vnd.ollama.image.license"
MEDIA_MESSAGES = "application/vnd.ollama.image.messages"

MAX_LAYER_SIZE = 1 << 40  # 1 TiB: far above any real GGUF, far below int64 overflow
MAX_LAYERS = 1024
MAX_MANIFEST_BYTES = 4 << 20

_Size = Annotated[StrictInt, Field(ge=0, le=MAX_LAYER_SIZE)]
_MediaType = Annotated[StrictStr, Field(min_length=1, max_length=255)]


class Layer(BaseModel):
    """One blob reference: ``{mediaType, digest, size, from?, name?}``."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    media_type: _MediaType = Field(alias="mediaType")
    digest: StrictStr
    size: _Size
    from_: Annotated[StrictStr, Field(max_length=4096)] | None = Field(default=None, alias="from")
    name: Annotated[StrictStr, Field(max_length=4096)] | None = None

    @_field_validator("digest")
    @classmethod
    def _canonical_digest(cls, value: str) -> str:
        try:
            return parse_digest(value)
        except InvalidDigest as exc:
            raise ValueError(str(exc)) from None


class Manifest(BaseModel):
    """An image manifest: schemaVersion 2, one config blob, the layers in order."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    schema_version: Literal[2] = Field(default=2, alias="schemaVersion")
    media_type: _ManifestMediaType = Field(default=MEDIA_MANIFEST, alias="mediaType")
    config: Layer
    layers: list[Layer] = Field(min_length=1, max_length=MAX_LAYERS)

    @property
    def total_size(self) -> int:
        """Config plus layer sizes (what Ollama reports as a model's ``size``)."""
        return self.config.size + sum(layer.size for layer in self.layers)

    @property
    def digests(self) -> list[str]:
        """Every blob digest referenced (config first, then layers, duplicates kept)."""
        return [self.config.digest, *(layer.digest for layer in self.layers)]

    def layers_of(self, media_type: str) -> list[Layer]:
        """The layers with the given media type, in manifest order."""
        return [layer for layer in self.layers if layer.media_type == media_type]

    def to_json(self) -> bytes:
        """Compact JSON in Go's field order, optional layer fields omitted when empty."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


def parse_manifest(data: bytes) -> Manifest:
    """Validate manifest bytes; raise :class:`InvalidManifest` on anything malformed."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidManifest("manifest too large")
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidManifest(f"invalid manifest: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


class RootFS(BaseModel):
    """The ``rootfs`` member of older/registry config blobs."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = "layers"
    diff_ids: list[str] = Field(default_factory=list)


class ModelConfig(BaseModel):
    """The config blob (Ollama ``types/model/config.go`` ConfigV2); unknown fields kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    model_format: str = ""
    model_family: str = ""
    model_families: list[str] | None = None
    model_type: str = ""
    file_type: str = ""
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    capabilities: list[str] | None = None
    context_length: int | None = None
    architecture: str = ""
    os: str = ""
    rootfs: RootFS | None = None

    def to_json(self) -> bytes:
        """Compact JSON as written to the config blob (``None`` fields omitted)."""
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ModelConfig:
        """Validate a config blob; raise :class:`InvalidManifest` if it is not one."""
        try:
            if not isinstance(json.loads(data), dict):
                raise InvalidManifest("invalid model config: not a JSON object")
            return cls.model_validate_json(data)
        except (ValidationError, ValueError) as exc:
            if isinstance(exc, InvalidManifest):
                raise
            raise InvalidManifest("invalid model config") from None
