"""models.registry.push_model against the loopback registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.defaults import import_gguf
from models.errors import ModelNotFound
from models.registry import Progress, RegistryOptions, RegistryRefused, pull_model, push_model
from models.store import ModelStore
from tests.manage.conftest import snapshot
from tests.manage.registry_server import Registry

INSECURE = RegistryOptions(insecure=True, retries=1, backoff=0.01)


def _local_model(store: ModelStore, tmp_path: Path, gguf: bytes, name: str) -> None:
    src = tmp_path / "src.gguf"
    src.write_bytes(gguf)
    import_gguf(store, src, name, template="{{ .Prompt }}", system="hi", params={"top_k": 5})


def test_push_then_pull_into_a_fresh_store(
    registry: Registry, store: ModelStore, tmp_path: Path, big_gguf: bytes
) -> None:
    name = registry.name("team/model", "v1")
    _local_model(store, tmp_path, big_gguf, name)
    events: list[Progress] = []
    push_model(store, name, options=INSECURE, progress=events.append)
    statuses = [e.status for e in events]
    assert statuses[0] == "retrieving manifest"
    assert statuses[-2:] == ["pushing manifest", "success"]
    manifest = store.read_manifest(name)
    for digest in manifest.digests:
        assert registry.blobs[digest] == store.blob_path(digest).read_bytes()
        done = [e for e in events if e.digest == digest and e.completed == e.total]
        assert done and done[0].status == f"pushing {digest[7:19]}"
    puts = registry.requests("PUT", "/blobs/uploads/")
    assert all(p.headers.get("Content-Length") for p in puts)  # not chunked
    other = ModelStore(tmp_path / "other")
    pull_model(other, name, options=INSECURE)
    assert other.read_manifest_bytes(name) == store.read_manifest_bytes(name)
    fresh = other.resolve(name)
    assert fresh.model_path.read_bytes() == big_gguf
    assert fresh.params == {"top_k": 5} and fresh.system == "hi"


def test_push_uses_a_same_host_token(store: ModelStore, tmp_path: Path, tiny_gguf: bytes) -> None:
    reg = Registry(token="tok")
    try:
        name = reg.name("team/model")
        _local_model(store, tmp_path, tiny_gguf, name)
        push_model(store, name, options=INSECURE)
        assert reg.manifests[("team/model", "latest")] == store.read_manifest_bytes(name)
        uploads = reg.requests("PUT", "/blobs/uploads/")
        assert uploads and all(u.headers["Authorization"] == "Bearer tok" for u in uploads)
    finally:
        reg.close()


def test_push_refuses_an_upload_location_on_a_private_host(
    registry: Registry, store: ModelStore, tmp_path: Path, tiny_gguf: bytes
) -> None:
    name = registry.name("team/model")
    _local_model(store, tmp_path, tiny_gguf, name)
    registry.faults.upload_location = "http://10.0.0.7:5000"
    with pytest.raises(RegistryRefused):
        push_model(store, name, options=INSECURE)
    assert not registry.requests("PUT")
    assert registry.manifests == {}


def test_push_of_an_unknown_model(registry: Registry, store: ModelStore) -> None:
    with pytest.raises(ModelNotFound):
        push_model(store, registry.name("team/none"), options=INSECURE)
    assert snapshot(store.root) == set()
    assert registry.log == []
