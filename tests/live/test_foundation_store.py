"""Issue #2: a model store written by hand in Ollama's on-disk layout is listed and served;
truncated GGUF blobs fail with a message and the server keeps serving; ``quantserve import``.

The store is built byte by byte here (JSON manifests, config/template/params/system/license
blobs, the GGUF blob hard-linked from the default model's package), never through
``models.store``, so the test shows that a store Ollama itself wrote would work.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ollama
import pytest

from models.defaults import default_gguf_path
from tests.conftest import LiveServer, start_server

HANDMADE = "handmade:v1"
TINY = "example.com/team/tiny:latest"
BROKEN_DATA = "broken:data"
BROKEN_HEADER = "broken:header"
SYSTEM = "You are a terse assistant."
TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
PARAMS = {"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.3, "num_predict": 64}
LICENSE = "Apache License 2.0"
CONFIG = {
    "model_format": "gguf",
    "model_family": "llama",
    "model_families": ["llama"],
    "model_type": "134.52M",
    "file_type": "Q4_1",
    "architecture": "amd64",
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": []},  # older configs carry this: ignored
}
MTIME = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
GREEDY = {"temperature": 0, "num_predict": 4}


class HandStore:
    """Writes Ollama's layout: blobs/sha256-<hex> and manifests/<host>/<ns>/<model>/<tag>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs").mkdir(parents=True)
        self.manifests: dict[str, bytes] = {}

    def blob(self, data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / f"sha256-{digest}").write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def link_blob(self, src: Path) -> dict[str, Any]:
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        target = self.root / "blobs" / f"sha256-{digest}"
        try:
            os.link(src, target)
        except OSError:
            shutil.copyfile(src, target)
        return {"digest": f"sha256:{digest}", "size": src.stat().st_size}

    def manifest(
        self, parts: tuple[str, str, str, str], model: dict[str, Any], **text: Any
    ) -> bytes:
        media = "application/vnd.ollama.image."
        layers = [{"mediaType": media + "model", **model}]
        for kind, value in text.items():
            data = value if isinstance(value, bytes) else value.encode()
            layers.append({"mediaType": media + kind, **self.blob(data)})
        config = self.blob(json.dumps(CONFIG).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
            "layers": layers,
        }
        data = json.dumps(manifest, separators=(",", ":")).encode()
        path = self.root.joinpath("manifests", *parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME.timestamp(), MTIME.timestamp()))
        return data


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> HandStore:
    store = HandStore(tmp_path_factory.mktemp("ollama-store"))
    gguf = default_gguf_path()
    model = store.link_blob(gguf)
    store.manifests[HANDMADE] = store.manifest(
        ("registry.ollama.ai", "library", "handmade", "v1"),
        model,
        template=TEMPLATE,
        system=SYSTEM,
        params=json.dumps(PARAMS),
        license=LICENSE,
    )
    store.manifests[TINY] = store.manifest(("example.com", "team", "tiny", "latest"), model)
    data = gguf.read_bytes()
    for name, size in ((BROKEN_DATA, len(data) // 2), (BROKEN_HEADER, 200)):
        # models.store checks blob digests, so each truncated copy gets its own true digest.
        tag = name.split(":")[1]
        store.manifests[name] = store.manifest(
            ("registry.ollama.ai", "library", "broken", tag), store.blob(data[:size])
        )
    return store


@pytest.fixture(scope="module")
def srv(hand: HandStore) -> Iterator[LiveServer]:
    server = start_server(hand.root, embed_default_model=False)
    yield server
    server.stop()


def _tags(srv: LiveServer) -> dict[str, dict[str, Any]]:
    with srv.client() as c:
        return {m["name"]: m for m in c.get("/api/tags").json()["models"]}


def _generate(srv: LiveServer, model: str, **extra: Any) -> Any:
    with srv.client() as c:
        return c.post(
            "/api/generate",
            json={"model": model, "prompt": "Say hi.", "stream": False, "options": GREEDY, **extra},
        )


def test_handwritten_models_are_listed(srv: LiveServer, hand: HandStore) -> None:
    tags = _tags(srv)
    for name in (HANDMADE, TINY, BROKEN_DATA, BROKEN_HEADER):
        entry = tags[name]
        manifest = hand.manifests[name]
        assert entry["model"] == name
        assert entry["digest"] == hashlib.sha256(manifest).hexdigest()
        parsed = json.loads(manifest)
        assert entry["size"] == parsed["config"]["size"] + sum(x["size"] for x in parsed["layers"])
        assert entry["modified_at"].startswith("2024-05-01T12:00:00")
        assert entry["details"]["family"] == "llama"
        assert entry["details"]["parameter_size"] == "134.52M"
        assert entry["details"]["quantization_level"] == "Q4_1"
    listed = {m.model for m in ollama.Client(host=srv.url).list().models}
    assert {HANDMADE, TINY} <= listed


def test_handwritten_layers_are_shown(srv: LiveServer) -> None:
    with srv.client() as c:
        body = c.post("/api/show", json={"model": HANDMADE}).json()
    assert body["template"] == TEMPLATE
    assert body["system"] == SYSTEM
    assert body["license"] == LICENSE
    assert "temperature" in body["parameters"] and "0.3" in body["parameters"]
    assert body["details"]["family"] == "llama"
    assert body["model_info"]["general.architecture"] == "llama"


@pytest.mark.parametrize("name", [HANDMADE, TINY, "HANDMADE:V1", "Example.com/Team/Tiny"])
def test_handwritten_models_are_served(srv: LiveServer, name: str) -> None:
    r = _generate(srv, name)
    assert r.status_code == 200, r.text
    assert r.json()["done"] is True and r.json()["eval_count"] >= 1
    chat = ollama.Client(host=srv.url, timeout=300).chat(
        name, messages=[{"role": "user", "content": "Say hi."}], options=GREEDY
    )
    assert chat.done and chat.message.role == "assistant"


def test_params_layer_applies(srv: LiveServer) -> None:
    # num_predict 64 comes from the params layer; the request can override it.
    with srv.client() as c:
        body = {
            "model": HANDMADE,
            "prompt": "1, 2, 3, 4, 5, 6, 7, 8,",
            "raw": True,
            "stream": False,
            "options": {"temperature": 0, "num_predict": 3},
        }
        assert c.post("/api/generate", json=body).json()["eval_count"] == 3


@pytest.mark.parametrize("name", [BROKEN_DATA, BROKEN_HEADER])
@pytest.mark.parametrize("stream", [False, True])
def test_truncated_gguf_fails_with_a_message(srv: LiveServer, name: str, stream: bool) -> None:
    r = _generate(srv, name, stream=stream)
    assert r.status_code in (400, 500), r.text
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert isinstance(message, str) and message
    with srv.client() as c:
        r = c.post(
            "/api/chat", json={"model": name, "messages": [{"role": "user", "content": "x"}]}
        )
        assert r.status_code in (400, 500) and r.json()["error"]
        loaded = {m["name"] for m in c.get("/api/ps").json()["models"]}
    assert name not in loaded
    # ... and the server goes on serving the good models.
    assert _generate(srv, HANDMADE).status_code == 200


def test_show_of_a_truncated_header_is_an_error_with_a_message(srv: LiveServer) -> None:
    with srv.client() as c:
        r = c.post("/api/show", json={"model": BROKEN_HEADER})
    assert r.status_code in (400, 500)
    assert r.json()["error"]


# -- quantserve import ----------------------------------------------------------------------------
def _import(srv: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTSERVE_", "OLLAMA_"))}
    env["OLLAMA_MODELS"] = str(srv.store.root)
    return subprocess.run(
        [sys.executable, "-m", "server", "import", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_import_registers_a_gguf_file(srv: LiveServer) -> None:
    result = _import(srv, str(default_gguf_path()), "imported:q4")
    assert result.returncode == 0, result.stderr
    assert "imported:q4" in _tags(srv)
    r = _generate(srv, "imported:q4")
    assert r.status_code == 200, r.text
    assert r.json()["eval_count"] >= 1


def test_import_refuses_a_file_that_is_not_gguf(srv: LiveServer, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("not a model\n")
    result = _import(srv, str(bogus), "bogus:latest")
    assert result.returncode != 0
    assert result.stderr.strip() and "Traceback" not in result.stderr
    assert "bogus:latest" not in _tags(srv)


@pytest.mark.parametrize("name", ["../escape", "a/b/c/d/e", "bad name"])
def test_import_refuses_an_invalid_name(srv: LiveServer, name: str) -> None:
    result = _import(srv, str(default_gguf_path()), name)
    assert result.returncode != 0
    assert result.stderr.strip() and "Traceback" not in result.stderr
    assert not (srv.store.root / "escape").exists()
