"""models.registry.pull_model against the loopback registry (no server in between)."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from models.errors import DigestMismatch, InvalidManifest
from models.manifest import MEDIA_MODEL
from models.registry import (
    Progress,
    RegistryCancelled,
    RegistryError,
    RegistryNotFound,
    RegistryOptions,
    RegistryRefused,
    RegistryUnavailable,
    partial_path,
    pull_model,
)
from models.store import ModelStore
from tests.manage.conftest import gzip_bomb, snapshot, tiny_layers
from tests.manage.registry_server import MANIFEST_TYPE, Registry

INSECURE = RegistryOptions(insecure=True, retries=2, backoff=0.01)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _pull(
    store: ModelStore, name: str, options: RegistryOptions = INSECURE, **kw: Any
) -> list[Progress]:
    events: list[Progress] = []
    pull_model(store, name, options=options, progress=events.append, **kw)
    return events


def test_pull_writes_blobs_then_the_manifest_byte_for_byte(
    registry: Registry, store: ModelStore, tiny_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny", "v1")
    name = registry.name("ns/tiny", "v1")
    events = _pull(store, name)
    assert store.read_manifest_bytes(name) == registry.manifests[("ns/tiny", "v1")]
    local = store.resolve(name)
    assert local.model_path.read_bytes() == tiny_gguf
    assert local.template == "{{ .Prompt }}" and local.params == {"temperature": 0.5}
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest"
    assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    layer = next(e for e in events if e.digest == _digest(tiny_gguf))
    assert layer.status == f"pulling {_digest(tiny_gguf)[7:19]}"
    assert layer.total == len(tiny_gguf)
    assert any(e.digest == layer.digest and e.completed == e.total for e in events)
    manifest_get = registry.requests("GET", "/manifests/v1")[0]
    assert MANIFEST_TYPE in manifest_get.headers["Accept"]


def test_https_is_the_default_and_insecure_allows_http(
    registry: Registry, store: ModelStore, tiny_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
    name = registry.name("ns/tiny")
    with pytest.raises(RegistryUnavailable):
        _pull(store, name, RegistryOptions(retries=0))
    assert not registry.requests("GET", "/v2/")  # a TLS handshake is not an HTTP request
    assert not store.exists(name)
    _pull(store, name)
    assert store.exists(name)


def test_unknown_model_is_not_found_and_nothing_is_written(
    registry: Registry, store: ModelStore
) -> None:
    with pytest.raises(RegistryNotFound, match="file does not exist"):
        _pull(store, registry.name("ns/missing"))
    assert snapshot(store.root) == set()


def test_corrupt_blob_is_rejected_before_it_enters_the_store(
    registry: Registry, store: ModelStore, tiny_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
    digest = _digest(tiny_gguf)
    corrupt = bytearray(tiny_gguf)
    corrupt[-1] ^= 0xFF
    registry.faults.blob_body[digest] = (bytes(corrupt), {})
    with pytest.raises(DigestMismatch):
        _pull(store, registry.name("ns/tiny"))
    assert not store.has_blob(digest)
    assert not partial_path(store, digest).exists()  # a corrupt partial is not resumed
    assert not store.exists(registry.name("ns/tiny"))
    assert all(p.startswith("blobs/") for p in snapshot(store.root))


def test_truncated_download_is_resumed_with_range(
    registry: Registry, store: ModelStore, big_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(big_gguf), "ns/big")
    digest = _digest(big_gguf)
    cut = len(big_gguf) // 3
    registry.faults.truncate[digest] = [cut]
    _pull(store, registry.name("ns/big"))
    gets = registry.requests("GET", f"/blobs/{digest}")
    assert len(gets) == 2
    assert "Range" not in gets[0].headers
    assert gets[1].headers["Range"] == f"bytes={cut}-"
    assert registry.served[digest] == len(big_gguf)  # nothing fetched twice
    assert store.blob_path(digest).read_bytes() == big_gguf


def test_partial_download_is_kept_across_pulls(
    registry: Registry, store: ModelStore, big_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(big_gguf), "ns/big")
    digest, name = _digest(big_gguf), registry.name("ns/big")
    cut = len(big_gguf) // 2
    registry.faults.truncate[digest] = [cut]
    with pytest.raises(RegistryUnavailable):  # no retries: the cut ends this pull
        _pull(store, name, RegistryOptions(insecure=True, retries=0))
    assert partial_path(store, digest).stat().st_size == cut
    assert not store.exists(name)
    _pull(store, name)
    last = registry.requests("GET", f"/blobs/{digest}")[-1]
    assert last.headers["Range"] == f"bytes={cut}-"
    assert store.blob_path(digest).read_bytes() == big_gguf
    assert not partial_path(store, digest).exists()


def _manifest(layers: list[dict[str, Any]], config: Any = None, **extra: Any) -> bytes:
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "layers": layers}
    if config is not None:
        body["config"] = config
    body.update(extra)
    return json.dumps(body).encode()


_HEX = "a" * 64
_GOOD_CONFIG = {
    "mediaType": "application/vnd.docker.container.image.v1+json",
    "digest": "sha256:" + "b" * 64,
    "size": 10,
}


def _model(
    digest: str = "sha256:" + _HEX, size: Any = 100, media: str = MEDIA_MODEL
) -> dict[str, Any]:
    return {"mediaType": media, "digest": digest, "size": size}


MALICIOUS = {
    "traversal digest": _manifest([_model("sha256:../../../../etc/passwd")], _GOOD_CONFIG),
    "traversal in hex": _manifest([_model("sha256:" + "a" * 60 + "/../")], _GOOD_CONFIG),
    "63 hex": _manifest([_model("sha256:" + "a" * 63)], _GOOD_CONFIG),
    "65 hex": _manifest([_model("sha256:" + "a" * 65)], _GOOD_CONFIG),
    "uppercase hex": _manifest([_model("sha256:" + "A" * 64)], _GOOD_CONFIG),
    "negative size": _manifest([_model(size=-1)], _GOOD_CONFIG),
    "huge size": _manifest([_model(size=1 << 62)], _GOOD_CONFIG),
    "string size": _manifest([_model(size="100")], _GOOD_CONFIG),
    "bool size": _manifest([_model(size=True)], _GOOD_CONFIG),
    "missing config": _manifest([_model()]),
    "config digest traversal": _manifest([_model()], {**_GOOD_CONFIG, "digest": "sha256:../x"}),
    "no layers": _manifest([], _GOOD_CONFIG),
    "unknown media type": _manifest([_model(media="text/html")], _GOOD_CONFIG),
    "media type traversal": _manifest(
        [_model(media="application/vnd.ollama.image.../../x")], _GOOD_CONFIG
    ),
    "no model layer": _manifest(
        [_model(media="application/vnd.ollama.image.template", size=10)], _GOOD_CONFIG
    ),
    "huge template layer": _manifest(
        [_model(), _model("sha256:" + "c" * 64, 1 << 30, "application/vnd.ollama.image.template")],
        _GOOD_CONFIG,
    ),
    "bad config media type": _manifest([_model()], {**_GOOD_CONFIG, "mediaType": "x/y"}),
    "one digest two sizes": _manifest([_model(), _model(size=101)], _GOOD_CONFIG),
    "schema version 1": _manifest([_model()], _GOOD_CONFIG, schemaVersion=1),
    "not json": b"<html>hello</html>",
    "json array": b"[]",
}


@pytest.mark.parametrize("raw", MALICIOUS.values(), ids=MALICIOUS.keys())
def test_malicious_manifest_is_refused_with_nothing_written(
    registry: Registry, store: ModelStore, raw: bytes
) -> None:
    registry.publish("ns/evil", "latest", raw)
    before = snapshot(store.root)
    with pytest.raises(InvalidManifest):
        _pull(store, registry.name("ns/evil"))
    assert snapshot(store.root) == before
    assert not registry.requests("GET", "/blobs/")  # refused before any download


def test_gzip_bomb_manifest_is_capped(registry: Registry, store: ModelStore) -> None:
    bomb = gzip_bomb(64 << 20)
    assert len(bomb) < 100_000
    registry.faults.manifest_body[("ns/bomb", "latest")] = (bomb, {"Content-Encoding": "gzip"})
    with pytest.raises(InvalidManifest, match="larger than"):
        _pull(store, registry.name("ns/bomb"))
    assert snapshot(store.root) == set()


def test_gzip_bomb_blob_is_capped_at_the_layer_size(
    registry: Registry, store: ModelStore, tiny_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
    digest = _digest(tiny_gguf)
    registry.faults.blob_body[digest] = (gzip_bomb(64 << 20), {"Content-Encoding": "gzip"})
    with pytest.raises(RegistryError, match="larger than"):
        _pull(store, registry.name("ns/tiny"))
    assert not store.has_blob(digest)
    assert partial_path(store, digest).stat().st_size <= len(tiny_gguf)


def test_gzip_encoded_manifest_within_the_cap_is_accepted(
    registry: Registry, store: ModelStore, tiny_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
    raw = registry.manifests[("ns/tiny", "latest")]
    registry.faults.manifest_body[("ns/tiny", "latest")] = (
        gzip.compress(raw),
        {"Content-Encoding": "gzip"},
    )
    _pull(store, registry.name("ns/tiny"))
    assert store.read_manifest_bytes(registry.name("ns/tiny")) == raw


def test_concurrent_pulls_download_a_blob_once(
    registry: Registry, store: ModelStore, big_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(big_gguf), "ns/big", "a")
    registry.publish_model(tiny_layers(big_gguf), "ns/big", "b")
    digest = _digest(big_gguf)
    release = threading.Event()
    registry.faults.gate[digest] = (len(big_gguf) // 2, release)
    started = {"a": threading.Event(), "b": threading.Event()}
    errors: list[BaseException] = []

    def run(tag: str) -> None:
        def progress(p: Progress) -> None:
            if p.digest == digest and p.completed > 0:
                started[tag].set()

        try:
            pull_model(store, registry.name("ns/big", tag), options=INSECURE, progress=progress)
        except BaseException as exc:
            errors.append(exc)
            started[tag].set()

    threads = [threading.Thread(target=run, args=(tag,)) for tag in ("a", "b")]
    threads[0].start()
    assert started["a"].wait(30)
    threads[1].start()
    # b reports the progress a has made (it reads the partial file a is writing)
    assert started["b"].wait(30)
    assert len(registry.requests("GET", f"/blobs/{digest}")) == 1
    release.set()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(registry.requests("GET", f"/blobs/{digest}")) == 1
    assert registry.served[digest] == len(big_gguf)
    assert store.exists(registry.name("ns/big", "a")) and store.exists(registry.name("ns/big", "b"))


def test_cancel_stops_a_pull_and_keeps_the_partial(
    registry: Registry, store: ModelStore, big_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(big_gguf), "ns/big")
    digest = _digest(big_gguf)
    release = threading.Event()
    registry.faults.gate[digest] = (len(big_gguf) // 2, release)
    cancel = threading.Event()

    def progress(p: Progress) -> None:
        if p.digest == digest and p.completed > 0:
            cancel.set()
            release.set()

    with pytest.raises(RegistryCancelled):
        pull_model(
            store, registry.name("ns/big"), options=INSECURE, progress=progress, cancel=cancel
        )
    assert 0 < partial_path(store, digest).stat().st_size < len(big_gguf)
    assert not store.exists(registry.name("ns/big"))


def test_redirect_to_the_named_host_is_followed(
    registry: Registry, store: ModelStore, tiny_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
    digest = _digest(tiny_gguf)
    registry.faults.redirect[digest] = f"{registry.url}/cdn/{digest}"
    _pull(store, registry.name("ns/tiny"))
    assert registry.requests("GET", f"/cdn/{digest}")
    assert store.has_blob(digest)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2:{port}/cdn/{digest}",
        "http://localhost:{port}/cdn/{digest}",
        "http://10.1.2.3/x",
        "http://[::1]:{port}/cdn/{digest}",
        "http://[::ffff:169.254.169.254]/x",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_a_private_address_is_refused(
    registry: Registry, store: ModelStore, tiny_gguf: bytes, target: str
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
    digest = _digest(tiny_gguf)
    registry.faults.redirect[digest] = target.format(port=registry.port, digest=digest)
    with pytest.raises(RegistryRefused):
        _pull(store, registry.name("ns/tiny"))
    assert not registry.requests("GET", "/cdn/")
    assert not store.exists(registry.name("ns/tiny"))


def test_redirect_to_a_host_resolving_privately_is_refused(
    registry: Registry, store: ModelStore, tiny_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
    digest = _digest(tiny_gguf)
    registry.faults.redirect[digest] = f"http://cdn.example:{registry.port}/cdn/{digest}"
    opts = RegistryOptions(insecure=True, resolver=lambda host, port: ["192.168.1.20"])
    with pytest.raises(RegistryRefused, match=r"cdn\.example"):
        _pull(store, registry.name("ns/tiny"), opts)


def test_a_link_local_registry_is_refused_even_when_named(store: ModelStore) -> None:
    with pytest.raises(RegistryRefused):
        _pull(store, "169.254.169.254/latest/meta-data:x")
    with pytest.raises(RegistryRefused):
        opts = RegistryOptions(resolver=lambda host, port: ["169.254.169.254"])
        _pull(store, "metadata.internal/ns/m:x", opts)
    assert snapshot(store.root) == set()


def test_bearer_token_from_the_registry_host_is_used(store: ModelStore, tiny_gguf: bytes) -> None:
    reg = Registry(token="s3cret")
    try:
        reg.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
        _pull(store, reg.name("ns/tiny"))
        assert reg.requests("GET", "/token?service=test&scope=repository")
        blob_gets = reg.requests("GET", "/blobs/")
        assert blob_gets and all(
            r.headers.get("Authorization") == "Bearer s3cret" for r in blob_gets
        )
    finally:
        reg.close()


def test_auth_realm_on_another_host_gets_nothing(store: ModelStore, tiny_gguf: bytes) -> None:
    other = Registry()
    reg = Registry(token="s3cret", realm=f"http://localhost:{other.port}/token")
    try:
        reg.publish_model(tiny_layers(tiny_gguf), "ns/tiny")
        with pytest.raises(RegistryRefused, match="realm"):
            _pull(store, reg.name("ns/tiny"))
        assert other.log == []
    finally:
        reg.close()
        other.close()


def test_repull_of_a_changed_tag_removes_unused_layers(
    registry: Registry, store: ModelStore, tiny_gguf: bytes, big_gguf: bytes
) -> None:
    registry.publish_model(tiny_layers(tiny_gguf), "ns/m")
    name = registry.name("ns/m")
    _pull(store, name)
    registry.publish_model(tiny_layers(big_gguf), "ns/m")
    events = _pull(store, name)
    assert "removing unused layers" in [e.status for e in events]
    assert not store.has_blob(_digest(tiny_gguf))
    assert store.has_blob(_digest(big_gguf))


def test_invalid_gguf_model_layer_is_not_kept(registry: Registry, store: ModelStore) -> None:
    registry.publish_model(tiny_layers(b"GGUF\x03\x00\x00\x00"), "ns/bad")
    with pytest.raises(InvalidManifest, match="GGUF"):
        _pull(store, registry.name("ns/bad"))
    assert not store.exists(registry.name("ns/bad"))
    assert not store.has_blob(_digest(b"GGUF\x03\x00\x00\x00"))


def test_failed_pulls_leave_nothing_outside_blobs(
    registry: Registry, store: ModelStore, big_gguf: bytes, tmp_path: Path
) -> None:
    registry.publish_model(tiny_layers(big_gguf), "ns/big")
    digest = _digest(big_gguf)
    registry.faults.fail[digest] = 100
    with pytest.raises(RegistryUnavailable):
        _pull(store, registry.name("ns/big"))
    assert all(p.startswith("blobs/") for p in snapshot(store.root))
    assert store.list_models() == []


def test_failed_pull_and_prune_touch_nothing_outside_the_store(
    registry: Registry, tmp_path: Path, tiny_gguf: bytes, big_gguf: bytes
) -> None:
    # CVE-2025-44779: an aborted pull followed by pruning deletes only files inside the store
    store = ModelStore(tmp_path / "models")
    sentinel = tmp_path / "sentinel"
    sentinel.write_bytes(b"keep me")
    registry.publish_model(tiny_layers(tiny_gguf), "ns/m")
    name = registry.name("ns/m")
    _pull(store, name)
    registry.publish_model(tiny_layers(big_gguf), "ns/m")
    registry.faults.truncate[_digest(big_gguf)] = [1000]
    with pytest.raises(RegistryUnavailable):
        _pull(store, name, RegistryOptions(insecure=True, retries=0))
    assert store.read_manifest(name).layers_of(MEDIA_MODEL)[0].digest == _digest(tiny_gguf)
    store.prune(stale_after=0)
    _pull(store, name)
    assert sentinel.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "sentinel"]
    assert store.resolve(name).model_path.read_bytes() == big_gguf
