from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from models.defaults import (
    DEFAULT_MODEL,
    DEFAULT_SYSTEM,
    DEFAULT_TEMPLATE,
    default_gguf_path,
    ensure_default_model,
    import_gguf,
)
from models.errors import InvalidGGUF, InvalidModelName
from models.manifest import MEDIA_MODEL, MEDIA_PARAMS, MEDIA_TEMPLATE
from models.store import ModelStore
from tests.models.ggufcraft import HOSTILE, write_valid_gguf


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_default_gguf_path_is_the_packaged_file(smollm_path: Path) -> None:
    assert default_gguf_path() == smollm_path


def test_ensure_default_model(store: ModelStore, smollm_path: Path) -> None:
    ensure_default_model(store)
    (entry,) = store.list_models()
    assert str(entry.name) == DEFAULT_MODEL == "smollm2:135m"
    assert entry.config.model_format == "gguf"
    assert entry.config.model_family == "llama"
    assert entry.config.model_families == ["llama"]
    assert entry.config.model_type == "134.52M"
    assert entry.config.file_type == "Q4_1"

    model = store.resolve(DEFAULT_MODEL)
    assert sha256_file(model.model_path) == sha256_file(smollm_path)
    assert model.manifest.layers_of(MEDIA_MODEL)[0].digest == "sha256:" + sha256_file(smollm_path)
    assert model.template == DEFAULT_TEMPLATE
    assert model.template.startswith("{{- if .Messages }}")
    assert model.system == DEFAULT_SYSTEM
    assert model.params == {"stop": ["<|im_start|>", "<|im_end|>"]}
    assert model.license and "Apache License 2.0" in model.license[0]
    if model.model_path.stat().st_dev == smollm_path.stat().st_dev:
        assert model.model_path.stat().st_ino == smollm_path.stat().st_ino  # hard link

    manifest_file = store.manifests_dir / "registry.ollama.ai/library/smollm2/135m"
    before = manifest_file.stat()
    ensure_default_model(store)  # idempotent: nothing rewritten
    after = manifest_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(store.list_models()) == 1


def test_import_gguf(store: ModelStore, tmp_path: Path) -> None:
    path = write_valid_gguf(tmp_path / "tiny.gguf")
    manifest = import_gguf(store, path, "tiny:f16")
    assert [layer.media_type for layer in manifest.layers] == [MEDIA_MODEL]
    model = store.resolve("tiny:f16")
    assert model.model_path.read_bytes() == path.read_bytes()
    assert model.model_path.stat().st_ino != path.stat().st_ino  # copied, not linked
    assert model.template is None  # the GGUF's own chat template is used at run time
    assert model.params == {}
    assert model.config.model_family == "llama"
    assert model.config.file_type == "F16"
    assert model.config.model_type == "320"
    assert not manifest.layers_of(MEDIA_TEMPLATE) and not manifest.layers_of(MEDIA_PARAMS)


@pytest.mark.parametrize("case", ["empty", "tensor end past eof", "string value huge"])
def test_import_hostile_gguf_writes_nothing(store: ModelStore, tmp_path: Path, case: str) -> None:
    path = tmp_path / "hostile.gguf"
    path.write_bytes(HOSTILE[case])
    with pytest.raises(InvalidGGUF):
        import_gguf(store, path, "hostile")
    assert not store.root.exists() or not any(store.root.rglob("sha256-*"))
    assert store.list_models() == []


def test_import_with_invalid_name_writes_nothing(store: ModelStore, tmp_path: Path) -> None:
    path = write_valid_gguf(tmp_path / "tiny.gguf")
    with pytest.raises(InvalidModelName):
        import_gguf(store, path, "../escape")
    assert not store.root.exists()
