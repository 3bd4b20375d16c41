"""/api/blobs, /api/create, /api/copy and /api/delete on a real server."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from models.defaults import DEFAULT_PARAMS
from models.manifest import MEDIA_ADAPTER, MEDIA_MODEL, MEDIA_SYSTEM
from server.engine.llama_backend import LlamaModel
from server.engine.scheduler import model_key
from tests.conftest import DEFAULT_MODEL, LiveServer
from tests.manage.conftest import post_lines, snapshot

BAD_FROM_MESSAGE = (
    "invalid model name in 'from': give the name of a model, or upload the file with "
    "/api/blobs and list it in 'files'"
)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def assert_no_path(server: LiveServer, message: str) -> None:
    assert str(server.store.root) not in message
    assert str(Path.home()) not in message
    assert not re.search(r"(?<![\w.])/(home|tmp|etc|root|dev|usr|var|work|proc)\b", message)


def _upload(client: httpx.Client, data: bytes) -> str:
    digest = _digest(data)
    response = client.post(f"/api/blobs/{digest}", content=data)
    assert response.status_code in (200, 201), response.text
    return digest


def _create(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    with server.client() as client:
        return client.post("/api/create", json={"stream": False, **body})


# -- blobs --------------------------------------------------------------------------------------


def test_blob_upload_head_and_reupload(server: LiveServer) -> None:
    data = b"some blob content " * 1000
    digest = _digest(data)
    with server.client() as client:
        assert client.head(f"/api/blobs/{digest}").status_code == 404
        assert client.post(f"/api/blobs/{digest}", content=data).status_code == 201
        assert client.head(f"/api/blobs/{digest}").status_code == 200
        assert client.head(f"/api/blobs/sha256-{digest[7:]}").status_code == 200
        assert client.post(f"/api/blobs/{digest}", content=data).status_code == 200
    assert server.store.blob_path(digest).read_bytes() == data


def test_blob_upload_is_streamed_to_disk(server: LiveServer) -> None:
    data = bytes(range(256)) * (6 * 4096)  # 6 MiB, sent in chunks

    def chunks() -> Any:
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    digest = _digest(data)
    with server.client() as client:
        assert client.post(f"/api/blobs/{digest}", content=chunks()).status_code == 201
    assert server.store.blob_path(digest).read_bytes() == data


def test_blob_digest_mismatch_is_400_and_leaves_nothing(server: LiveServer) -> None:
    claimed = _digest(b"what was announced")
    before = snapshot(server.store.root)
    with server.client() as client:
        response = client.post(f"/api/blobs/{claimed}", content=b"something else")
    assert response.status_code == 400
    got = _digest(b"something else")
    assert response.json()["error"] == f'digest mismatch, expected "{claimed}", got "{got}"'
    assert snapshot(server.store.root) == before  # the temp file is gone too


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:abc",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "A" * 64,
        "md5:" + "a" * 64,
        "sha256:..%2F..%2Fetc%2Fpasswd",
        "sha256:" + "a" * 60 + "%2F..",
        "..%2F..%2F" + "a" * 64,
    ],
)
def test_invalid_blob_digests_are_400(server: LiveServer, digest: str) -> None:
    with server.client() as client:
        assert client.head(f"/api/blobs/{digest}").status_code == 400
        response = client.post(f"/api/blobs/{digest}", content=b"x")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid digest format"


# -- create -------------------------------------------------------------------------------------


def test_create_from_model_merges_params_and_reports_layers(server: LiveServer) -> None:
    base = server.store.resolve(DEFAULT_MODEL)
    status, lines = post_lines(
        server,
        "/api/create",
        {
            "model": "merged:v1",
            "from": DEFAULT_MODEL,
            "system": "You are terse.",
            "parameters": {"temperature": 0.2, "num_ctx": 1024},
        },
    )
    assert status == 200
    statuses = [x["status"] for x in lines]
    model_digest = base.manifest.layers_of(MEDIA_MODEL)[0].digest
    system_digest = _digest(b"You are terse.")
    assert statuses[0] == f"using existing layer {model_digest}"
    assert f"creating new layer {system_digest}" in statuses
    assert statuses[-2:] == ["writing manifest", "success"]
    assert all(
        re.fullmatch(r"(using existing|creating new) layer sha256:[0-9a-f]{64}", s)
        for s in statuses[:-2]
    )
    local = server.store.resolve("merged:v1")
    assert local.params == {**DEFAULT_PARAMS, "temperature": 0.2, "num_ctx": 1024}
    assert local.system == "You are terse."
    assert local.template == base.template and local.license == base.license
    # the request wins over the base model's value for the same key
    assert _create(
        server, {"model": "merged:v2", "from": "merged:v1", "parameters": {"stop": ["END"]}}
    ).json() == {"status": "success"}
    assert server.store.resolve("merged:v2").params["stop"] == ["END"]
    assert server.store.resolve("merged:v2").params["temperature"] == 0.2


def test_create_from_uploaded_gguf(server: LiveServer, tiny_gguf: bytes) -> None:
    with server.client() as client:
        digest = _upload(client, tiny_gguf)
    status, lines = post_lines(
        server,
        "/api/create",
        {
            "model": "fromfiles",
            "files": {"tiny.gguf": digest},
            "template": "{{ .Prompt }}",
            "license": ["MIT", "Apache"],
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
        },
    )
    assert status == 200
    assert lines[0] == {"status": "parsing GGUF"}
    assert lines[1] == {"status": f"using existing layer {digest}"}
    assert lines[-1] == {"status": "success"}
    local = server.store.resolve("fromfiles")
    assert local.model_path.read_bytes() == tiny_gguf
    assert local.template == "{{ .Prompt }}" and local.license == ["MIT", "Apache"]
    assert local.messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]
    assert local.config.model_family == "llama" and local.config.file_type == "F32"


PATHS = [
    "/dev/random",
    "/dev/zero",
    "/etc/passwd",
    "/etc/does-not-exist",
    "~/x.gguf",
    "~root/.ssh/id_rsa",
    "./model.gguf",
    "../model.gguf",
    "C:\\models\\x.gguf",
    "/proc/self/environ",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("path", PATHS)
def test_create_never_opens_a_client_path(server: LiveServer, path: str) -> None:
    response = _create(server, {"model": "frompath", "from": path})
    assert response.status_code == 400
    assert response.json()["error"] == BAD_FROM_MESSAGE  # identical whether the path exists
    assert not server.store.exists("frompath")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"/etc/passwd": "sha256:" + "a" * 64}, "file names in 'files' must be relative paths"),
        ({"../x.gguf": "sha256:" + "a" * 64}, "file names in 'files' must be relative paths"),
        ({"a/../../x.gguf": "sha256:" + "a" * 64}, "file names in 'files' must be relative paths"),
        ({"~/x.gguf": "sha256:" + "a" * 64}, "file names in 'files' must be relative paths"),
        ({"C:x.gguf": "sha256:" + "a" * 64}, "file names in 'files' must be relative paths"),
        ({"0.gguf": ""}, "invalid digest format"),
        ({"0.gguf": "sha256:../../etc/passwd"}, "invalid digest format"),
        ({"0.gguf": "/etc/passwd"}, "invalid digest format"),
    ],
)
def test_create_files_must_be_relative_names_of_blobs(
    server: LiveServer, files: dict[str, str], message: str
) -> None:
    response = _create(server, {"model": "badfiles", "files": files})
    assert response.status_code == 400
    assert response.json()["error"] == message
    assert_no_path(server, response.json()["error"])


def test_create_with_a_missing_blob_is_400(server: LiveServer) -> None:
    digest = "sha256:" + "e" * 64
    response = _create(server, {"model": "missing", "files": {"m.gguf": digest}})
    assert response.status_code == 400
    assert digest in response.json()["error"]
    assert_no_path(server, response.json()["error"])


@pytest.mark.parametrize("content", [b"", b"GGUF", b"GGUF\x03\x00\x00\x00", b"\0" * 64])
def test_tiny_or_bogus_gguf_blob_is_400_and_server_survives(
    server: LiveServer, content: bytes
) -> None:
    with server.client() as client:
        digest = _upload(client, content)
        for stream in (False, True):
            response = client.post(
                "/api/create",
                json={"model": "bogus", "files": {"0.gguf": digest}, "stream": stream},
            )
            assert response.status_code == 400
            assert response.json()["error"].startswith("invalid GGUF file")
            assert_no_path(server, response.json()["error"])
        assert client.get("/").status_code == 200
        assert client.get("/api/tags").status_code == 200
    assert not server.store.exists("bogus")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
        ({"model": "x", "from": "no-such-model"}, 404, "model 'no-such-model' not found"),
        ({"model": "../x", "from": DEFAULT_MODEL}, 400, "invalid model name"),
        ({"from": DEFAULT_MODEL}, 400, "model is required"),
        (
            {"model": "x", "from": DEFAULT_MODEL, "quantize": "q2_k"},
            400,
            "unsupported quantization",
        ),
        (
            {"model": "x", "from": DEFAULT_MODEL, "quantize": "q8_0"},
            400,
            "quantization is only supported for F16, BF16 and F32 models",
        ),
        ({"model": "x", "from": DEFAULT_MODEL, "template": "{{ .Prompt "}, 400, "template"),
        ({"model": "x", "from": DEFAULT_MODEL, "parameters": {"top_k": "lots"}}, 400, "top_k"),
        (
            {"model": "x", "from": DEFAULT_MODEL, "messages": [{"role": "god", "content": ""}]},
            400,
            "role",
        ),
        ({"model": "x", "from": DEFAULT_MODEL, "files": "nope"}, 400, "files"),
    ],
)
def test_create_errors(server: LiveServer, body: dict[str, Any], status: int, message: str) -> None:
    response = _create(server, body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert_no_path(server, response.json()["error"])
    assert not server.store.exists("x")


@pytest.mark.live
def test_created_go_template_layer_is_used_for_generate(server: LiveServer) -> None:
    template = "{{ if .System }}SYS:{{ .System }} {{ end }}USER:{{ .Prompt }} BOT:"
    client = ollama.Client(host=server.url)
    done = client.create(model="gotmpl", from_=DEFAULT_MODEL, template=template, system="Be brief.")
    assert done.status == "success"
    assert client.show("gotmpl").template == template
    out = client.generate(model="gotmpl", prompt="Hello", options={"num_predict": 1})
    model = LlamaModel(server.store.resolve("gotmpl").model_path)
    try:
        expected = model.tokenize("SYS:Be brief. USER:Hello BOT:", add_special=True)
        chatml = model.tokenize(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\n",
            add_special=True,
        )
    finally:
        model.close()
    assert len(expected) != len(chatml)
    assert out.prompt_eval_count == len(expected)


# -- copy and delete ---------------------------------------------------------------------------


def test_copy_shares_blobs(server: LiveServer) -> None:
    blobs_before = {p for p in snapshot(server.store.root) if p.startswith("blobs/")}
    with server.client() as client:
        response = client.post("/api/copy", json={"source": DEFAULT_MODEL, "destination": "twin"})
    assert response.status_code == 200
    assert server.store.read_manifest_bytes("twin") == server.store.read_manifest_bytes(
        DEFAULT_MODEL
    )
    assert {p for p in snapshot(server.store.root) if p.startswith("blobs/")} == blobs_before


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"source": "nope", "destination": "b"}, 404, 'model "nope" not found'),
        ({"source": DEFAULT_MODEL, "destination": "../b"}, 400, "destination"),
        ({"source": "/etc/passwd", "destination": "b"}, 400, "source"),
        ({"source": DEFAULT_MODEL}, 400, "destination"),
    ],
)
def test_copy_errors(server: LiveServer, body: dict[str, Any], status: int, message: str) -> None:
    with server.client() as client:
        response = client.post("/api/copy", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_delete_removes_only_unshared_blobs(server: LiveServer) -> None:
    system = "A layer only this model has."
    assert _create(server, {"model": "doomed", "from": DEFAULT_MODEL, "system": system}).is_success
    doomed = server.store.read_manifest("doomed")
    own = _digest(system.encode())
    assert doomed.layers_of(MEDIA_SYSTEM)[0].digest == own
    with server.client() as client:
        response = client.request("DELETE", "/api/delete", json={"model": "doomed"})
        assert response.status_code == 200
        again = client.request("DELETE", "/api/delete", json={"model": "doomed"})
    assert again.status_code == 404
    assert again.json()["error"] == "model 'doomed' not found"
    assert not server.store.exists("doomed")
    assert not server.store.has_blob(own)
    for digest in server.store.read_manifest(DEFAULT_MODEL).digests:
        assert server.store.has_blob(digest)  # still used by the default model
    server.store.resolve(DEFAULT_MODEL)


@pytest.mark.parametrize("body", [{"model": "../x"}, {}, {"model": 5}])
def test_delete_bad_requests(server: LiveServer, body: dict[str, Any]) -> None:
    with server.client() as client:
        response = client.request("DELETE", "/api/delete", json=body)
    assert response.status_code == 400


@pytest.mark.live
def test_delete_unloads_a_loaded_model_first(server: LiveServer) -> None:
    client = ollama.Client(host=server.url)
    client.copy(DEFAULT_MODEL, "loaded-then-deleted")
    client.generate(model="loaded-then-deleted", prompt="Hi", options={"num_predict": 1})
    key = model_key(server.store.resolve("loaded-then-deleted"))
    assert server.scheduler().get(key) is not None
    client.delete("loaded-then-deleted")
    assert server.scheduler().get(key) is None
    assert not server.store.exists("loaded-then-deleted")
    assert "loaded-then-deleted:latest" not in {m.model for m in client.ps().models}


def test_gguf_with_tensor_data_past_the_end_is_400(server: LiveServer, tiny_gguf: bytes) -> None:
    # CVE-2026-7482: a tensor whose offset + size lies beyond the file (quantize would read it)
    truncated = tiny_gguf[:-64]
    with server.client() as client:
        digest = _upload(client, truncated)
    for extra in ({}, {"quantize": "q8_0"}):
        response = _create(server, {"model": "past-eof", "files": {"m.gguf": digest}, **extra})
        assert response.status_code == 400
        assert response.json()["error"].startswith("invalid GGUF file")
    assert not server.store.exists("past-eof")


def test_adapters_must_be_valid_gguf_blobs(server: LiveServer, tiny_gguf: bytes) -> None:
    with server.client() as client:
        bogus = _upload(client, b"GGUF\x03\x00\x00\x00not really")
        good = _upload(client, tiny_gguf)
    response = _create(
        server, {"model": "lora", "from": DEFAULT_MODEL, "adapters": {"a.gguf": bogus}}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("invalid GGUF file")
    response = _create(
        server, {"model": "lora", "from": DEFAULT_MODEL, "adapters": {"a.gguf": good}}
    )
    assert response.json() == {"status": "success"}
    assert [x.digest for x in server.store.read_manifest("lora").layers_of(MEDIA_ADAPTER)] == [good]
