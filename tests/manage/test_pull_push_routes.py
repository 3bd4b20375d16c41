"""POST /api/pull and /api/push on a real server against the loopback registry."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path

import ollama
import pytest

from models.manifest import MEDIA_MODEL, MEDIA_TEMPLATE
from server.engine.llama_backend import LlamaModel
from tests.conftest import DEFAULT_MODEL, LiveServer
from tests.manage.conftest import build_tiny_gguf, post_lines, snapshot, tiny_layers
from tests.manage.registry_server import Registry


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_pull_streams_ollama_progress(
    server: LiveServer, module_registry: Registry, tiny_gguf: bytes
) -> None:
    module_registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny", "stream")
    name = module_registry.name("ns/tiny", "stream")
    status, lines = post_lines(server, "/api/pull", {"model": name, "insecure": True})
    assert status == 200
    assert lines[0] == {"status": "pulling manifest"}
    assert [x["status"] for x in lines[-3:]] == [
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert lines[-1] == {"status": "success"}
    layer_lines = [x for x in lines if x["status"].startswith("pulling ") and "digest" in x]
    digests = {x["digest"] for x in layer_lines}
    manifest = module_registry.manifests[("ns/tiny", "stream")]
    assert _digest(tiny_gguf) in digests and len(digests) == 4  # 3 layers + config
    for line in layer_lines:
        assert set(line) <= {"status", "digest", "total", "completed"}
        assert line["status"] == f"pulling {line['digest'][7:19]}"
        assert re.fullmatch(r"pulling [0-9a-f]{12}", line["status"])
        assert line["total"] > 0
        assert line.get("completed", 1) > 0  # omitted while zero, like Go's omitempty
    assert server.store.read_manifest_bytes(name) == manifest
    tags = server.client().get("/api/tags").json()["models"]
    assert name in {m["name"] for m in tags}


def test_pull_without_stream_returns_the_outcome_only(
    server: LiveServer, module_registry: Registry, tiny_gguf: bytes
) -> None:
    module_registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny", "nostream")
    name = module_registry.name("ns/tiny", "nostream")
    with server.client() as client:
        response = client.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    assert response.headers["content-type"].startswith("application/json")


def test_pull_unknown_model(server: LiveServer, module_registry: Registry) -> None:
    name = module_registry.name("ns/unknown")
    with server.client() as client:
        response = client.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
    assert response.status_code == 404
    assert response.json()["error"] == "pull model manifest: file does not exist"
    status, lines = post_lines(server, "/api/pull", {"model": name, "insecure": True})
    assert status == 200  # the first line was already sent
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-1]["error"] == "pull model manifest: file does not exist"


def test_pull_is_https_unless_insecure(
    server: LiveServer, module_registry: Registry, tiny_gguf: bytes
) -> None:
    module_registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny", "tls")
    name = module_registry.name("ns/tiny", "tls")
    with server.client() as client:
        response = client.post("/api/pull", json={"model": name, "stream": False})
    assert response.status_code == 502
    assert not server.store.exists(name)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "../../etc/passwd"},
        {"model": ""},
        {},
        {"model": "a/b/c/d"},
        {"model": "ok", "insecure": "yes"},
        {"model": "ok", "stream": "no"},
    ],
)
def test_pull_bad_requests_are_400(server: LiveServer, body: dict[str, object]) -> None:
    with server.client() as client:
        response = client.post("/api/pull", json=body)
    assert response.status_code == 400
    assert "error" in response.json()


def test_pull_refuses_a_malicious_manifest_with_nothing_written(
    server: LiveServer, module_registry: Registry
) -> None:
    raw = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json",'
        b'"digest":"sha256:../../../../tmp/x","size":1},"layers":[{"mediaType":'
        b'"application/vnd.ollama.image.model","digest":"sha256:' + b"a" * 64 + b'","size":1}]}'
    )
    module_registry.publish("ns/evil", "latest", raw)
    before = snapshot(server.store.root)
    with server.client() as client:
        response = client.post(
            "/api/pull",
            json={"model": module_registry.name("ns/evil"), "insecure": True, "stream": False},
        )
    assert response.status_code == 500
    assert "invalid digest format" in response.json()["error"]
    assert snapshot(server.store.root) == before


def test_pull_redirect_to_metadata_address_is_forbidden(
    server: LiveServer, module_registry: Registry, tmp_path: Path
) -> None:
    tiny_gguf = build_tiny_gguf(tmp_path / "fresh.gguf", seed=7)  # not in the store yet
    module_registry.publish_model(tiny_layers(tiny_gguf), "ns/tiny", "redirect")
    module_registry.faults.redirect[_digest(tiny_gguf)] = "http://169.254.169.254/latest"
    name = module_registry.name("ns/tiny", "redirect")
    try:
        with server.client() as client:
            response = client.post(
                "/api/pull", json={"model": name, "insecure": True, "stream": False}
            )
    finally:
        del module_registry.faults.redirect[_digest(tiny_gguf)]
    assert response.status_code == 403
    assert not server.store.exists(name)


def test_push_streams_ollama_progress_and_skips_existing_blobs(
    server: LiveServer, module_registry: Registry
) -> None:
    name = module_registry.name("test/smol", "v1")
    with server.client() as client:
        assert client.post(
            "/api/copy", json={"source": DEFAULT_MODEL, "destination": name}
        ).is_success
    status, lines = post_lines(server, "/api/push", {"model": name, "insecure": True})
    assert status == 200
    assert lines[0] == {"status": "retrieving manifest"}
    assert [x["status"] for x in lines[-2:]] == ["pushing manifest", "success"]
    pushed = [x for x in lines if x["status"].startswith("pushing ") and "digest" in x]
    manifest = server.store.read_manifest(name)
    assert {x["digest"] for x in pushed} == set(manifest.digests)
    for line in pushed:
        assert line["status"] == f"pushing {line['digest'][7:19]}"
    assert module_registry.manifests[("test/smol", "v1")] == server.store.read_manifest_bytes(name)
    for digest in manifest.digests:
        assert module_registry.blobs[digest] == server.store.blob_path(digest).read_bytes()
    uploads = len(module_registry.requests("PUT", "/blobs/uploads/"))
    assert uploads == len(set(manifest.digests))
    # a second push finds every blob there (HEAD) and uploads nothing
    with server.client() as client:
        response = client.post("/api/push", json={"model": name, "insecure": True, "stream": False})
    assert response.json() == {"status": "success"}
    assert len(module_registry.requests("PUT", "/blobs/uploads/")) == uploads


def test_push_unknown_model_is_404(server: LiveServer, module_registry: Registry) -> None:
    with server.client() as client:
        response = client.post(
            "/api/push",
            json={"model": module_registry.name("test/none"), "insecure": True, "stream": False},
        )
    assert response.status_code == 404


@pytest.mark.live
def test_push_then_pull_round_trip_generates(server: LiveServer, module_registry: Registry) -> None:
    name = module_registry.name("test/roundtrip", "v2")
    client = ollama.Client(host=server.url)
    client.copy(DEFAULT_MODEL, name)
    assert client.push(name, insecure=True).status == "success"
    manifest_bytes = server.store.read_manifest_bytes(name)
    client.delete(name)
    assert not server.store.exists(name)
    assert client.pull(name, insecure=True).status == "success"
    assert server.store.read_manifest_bytes(name) == manifest_bytes
    out = client.generate(model=name, prompt="Hi", options={"num_predict": 2, "temperature": 0})
    assert out.done and out.eval_count


def test_pull_interrupted_by_registry_fault_resumes_on_retry(
    server: LiveServer, module_registry: Registry, big_gguf: bytes
) -> None:
    module_registry.publish_model(tiny_layers(big_gguf), "ns/big", "resume")
    digest = _digest(big_gguf)
    cut = len(big_gguf) // 4
    module_registry.faults.truncate[digest] = [cut]
    name = module_registry.name("ns/big", "resume")
    with server.client() as client:
        response = client.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
    assert response.json() == {"status": "success"}
    ranges = [r.headers.get("Range") for r in module_registry.requests("GET", f"/blobs/{digest}")]
    assert ranges == [None, f"bytes={cut}-"]
    assert server.store.blob_path(digest).read_bytes() == big_gguf


@pytest.mark.live
def test_pulled_go_template_layer_is_used(server: LiveServer, module_registry: Registry) -> None:
    model_bytes = server.store.resolve(DEFAULT_MODEL).model_path.read_bytes()
    template = "{{- range .Messages }}<{{ .Role }}>{{ .Content }}{{ end }}<assistant>"
    module_registry.publish_model(
        [(MEDIA_MODEL, model_bytes), (MEDIA_TEMPLATE, template.encode())], "library/gotmpl"
    )
    name = module_registry.name("library/gotmpl")
    client = ollama.Client(host=server.url)
    assert client.pull(name, insecure=True).status == "success"
    assert client.show(name).template == template
    out = client.generate(model=name, prompt="Hello", options={"num_predict": 1})
    model = LlamaModel(server.store.resolve(name).model_path)
    try:
        expected = model.tokenize("<user>Hello<assistant>", add_special=True)
    finally:
        model.close()
    assert out.prompt_eval_count == len(expected)


def test_client_disconnect_cancels_the_pull(
    server: LiveServer, module_registry: Registry, tmp_path: Path
) -> None:
    data = build_tiny_gguf(tmp_path / "cancel.gguf", seed=11, n=150_000)
    module_registry.publish_model(tiny_layers(data), "ns/cancel")
    digest = _digest(data)
    release = threading.Event()
    module_registry.faults.gate[digest] = (len(data) // 2, release)
    name = module_registry.name("ns/cancel")
    with (
        server.client() as client,
        client.stream("POST", "/api/pull", json={"model": name, "insecure": True}) as response,
    ):
        for line in response.iter_lines():
            event = json.loads(line)
            if event.get("digest") == digest and event.get("completed"):
                break  # leave mid-download: closing the response disconnects
    release.set()
    deadline = time.monotonic() + 60
    while any(t.name == "quantserve-pull" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the pull job did not stop"
        time.sleep(0.05)
    assert not server.store.exists(name)
    assert not server.store.has_blob(digest)


@pytest.mark.parametrize("model", ["../../etc/passwd", "a/../b", "/abs/path:x"])
def test_push_with_a_traversal_name_is_400(server: LiveServer, model: str) -> None:
    with server.client() as client:
        response = client.post("/api/push", json={"model": model, "stream": False})
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid model name")
