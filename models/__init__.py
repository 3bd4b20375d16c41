"""The model registry: names, digests, the on-disk store, GGUF metadata, Modelfiles.

Nothing here imports fastapi or llama_cpp; everything is synchronous (the server
runs slow calls in a worker thread).
"""

from __future__ import annotations

from models.blobs import BlobStore, BlobWriter
from models.defaults import (
    DEFAULT_MODEL,
    config_from_gguf,
    default_gguf_path,
    ensure_default_model,
    import_gguf,
)
from models.digest import DIGEST_RE, parse_digest, sha256_digest
from models.errors import (
    BlobNotFound,
    BlobTooLarge,
    DigestMismatch,
    InvalidDigest,
    InvalidGGUF,
    InvalidManifest,
    InvalidModelfile,
    InvalidModelName,
    ModelNotFound,
    ModelsError,
    StoreError,
)
from models.ggml import human_number
from models.gguf import ArrayInfo, GGUFFile, TensorInfo, read_gguf
from models.local import LocalModel, ModelEntry
from models.manifest import (
    MEDIA_ADAPTER,
    MEDIA_CONFIG,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
    ModelConfig,
    parse_manifest,
)
from models.modelfile import Modelfile, parse_modelfile, render_modelfile
from models.names import ModelName
from models.parameters import parse_parameters, validate_parameters
from models.store import ModelStore

__all__ = [
    "DEFAULT_MODEL",
    "DIGEST_RE",
    "MEDIA_ADAPTER",
    "MEDIA_CONFIG",
    "MEDIA_LICENSE",
    "MEDIA_MESSAGES",
    "MEDIA_MODEL",
    "MEDIA_PARAMS",
    "MEDIA_PROJECTOR",
    "MEDIA_SYSTEM",
    "MEDIA_TEMPLATE",
    "ArrayInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "BlobWriter",
    "DigestMismatch",
    "GGUFFile",
    "InvalidDigest",
    "InvalidGGUF",
    "InvalidManifest",
    "InvalidModelName",
    "InvalidModelfile",
    "Layer",
    "LocalModel",
    "Manifest",
    "ModelConfig",
    "ModelEntry",
    "ModelName",
    "ModelNotFound",
    "ModelStore",
    "Modelfile",
    "ModelsError",
    "StoreError",
    "TensorInfo",
    "config_from_gguf",
    "default_gguf_path",
    "ensure_default_model",
    "human_number",
    "import_gguf",
    "parse_digest",
    "parse_manifest",
    "parse_modelfile",
    "parse_parameters",
    "read_gguf",
    "render_modelfile",
    "sha256_digest",
    "validate_parameters",
]
