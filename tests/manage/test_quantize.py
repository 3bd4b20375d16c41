"""/api/create with ``quantize``: an F16 model (dequantised default model) to q8_0 and q4_K_M,
then generation with both through the official client."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from models.defaults import default_gguf_path
from models.gguf import read_gguf
from tests.conftest import LiveServer
from tests.manage.conftest import post_lines
from tests.manage.f16 import build_f16_gguf

pytestmark = pytest.mark.live


@pytest.fixture(scope="session")
def f16_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_f16_gguf(default_gguf_path(), tmp_path_factory.mktemp("f16") / "smol-f16.gguf")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


@pytest.fixture(scope="module")
def f16_blob(server: LiveServer, f16_gguf: Path) -> str:
    digest = _file_digest(f16_gguf)
    with server.client() as client:
        response = client.post(f"/api/blobs/{digest}", content=_chunks(f16_gguf))
    assert response.status_code == 201
    return digest


def test_f16_source_is_really_f16(f16_gguf: Path) -> None:
    header = read_gguf(f16_gguf)
    assert header.file_type_name == "F16"
    assert header.chat_template  # tokenizer metadata kept
    assert {t.type_name for t in header.tensors if len(t.dims) >= 2} == {"F16"}


def test_quantize_q8_0_from_a_model_and_generate(server: LiveServer, f16_blob: str) -> None:
    client = ollama.Client(host=server.url)
    assert client.create(model="smol-f16", files={"model.gguf": f16_blob}).status == "success"
    status, lines = post_lines(
        server, "/api/create", {"model": "smol-q8", "from": "smol-f16", "quantize": "q8_0"}
    )
    assert status == 200, lines
    quantizing = [x for x in lines if x["status"] == "quantizing F16 model to Q8_0"]
    assert quantizing
    total = server.store.blob_size(f16_blob)
    for line in quantizing:
        assert line["digest"] == "0000000000000000000" and line["total"] == total
        assert 0 <= line.get("completed", 0) <= total
    assert quantizing[-1]["completed"] == total
    after = [x["status"] for x in lines[lines.index(quantizing[-1]) + 1 :]]
    assert after[0].startswith("creating new layer sha256:")
    assert after[-2:] == ["writing manifest", "success"]
    local = server.store.resolve("smol-q8")
    assert read_gguf(local.model_path).file_type_name == "Q8_0"
    assert local.config.file_type == "Q8_0"
    assert client.show("smol-q8").details.quantization_level == "Q8_0"
    out = client.generate(model="smol-q8", prompt="Hello", options={"num_predict": 4})
    assert out.done and out.eval_count


def test_quantize_q4_k_m_from_files_and_generate(server: LiveServer, f16_blob: str) -> None:
    client = ollama.Client(host=server.url)
    done = client.create(
        model="smol-q4km",
        files={"model.gguf": f16_blob},
        quantize="q4_K_M",
        parameters={"temperature": 0},
    )
    assert done.status == "success"
    local = server.store.resolve("smol-q4km")
    assert read_gguf(local.model_path).file_type_name == "Q4_K_M"
    assert local.model_path.stat().st_size < server.store.blob_size(f16_blob) // 2
    chat = client.chat(
        model="smol-q4km",
        messages=[{"role": "user", "content": "Say hi"}],
        options={"num_predict": 4},
    )
    assert chat.done and chat.eval_count
    # the quantized blob is new; nothing was left in blobs/ besides blobs
    names = [p.name for p in server.store.blobs_dir.iterdir()]
    assert not [n for n in names if n.startswith(".tmp-")]
