"""Every AsyncClient method sends Ollama's wire request: method, path and exact JSON body."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients import (
    AsyncClient,
    ChatResponse,
    Client,
    DetokenizeResponse,
    EmbedResponse,
    GenerateResponse,
    ListResponse,
    Message,
    Options,
    ProcessResponse,
    ProgressResponse,
    ShowResponse,
    TokenizeResponse,
    Tool,
    ToolCall,
    ToolCallFunction,
    ToolFunction,
    VersionResponse,
)

pytestmark = pytest.mark.anyio

DIGEST = "sha256:" + "ab" * 32
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": ["string", "null"], "default": None}},
    "required": ["city"],
}
FINAL = {"model": "m", "created_at": "2026-01-01T00:00:00.123456789Z", "done": True}

# Each call is written once and run on both clients: awaited on AsyncClient, plain on Client.
Call = Callable[[Any], Any]

# (id, call, HTTP method, path, expected JSON body, response JSON, expected return type)
CASES: list[tuple[str, Call, str, str, Any, Any, type | None]] = [
    (
        "generate-minimal",
        lambda c: c.generate("m", "hi"),
        "POST",
        "/api/generate",
        {"model": "m", "prompt": "hi", "stream": False},
        {**FINAL, "response": "hello"},
        GenerateResponse,
    ),
    (
        "generate-all-params",
        lambda c: c.generate(
            "m",
            "def f(",
            suffix="return 1",
            system="be brief",
            template="{{ .Prompt }}",
            context=[1, 2, 3],
            raw=True,
            format=SCHEMA,
            images=[b"\x89PNG"],
            options=Options(temperature=0.5, stop=["\n"], num_ctx=4096),
            keep_alive=0,
            think="low",
        ),
        "POST",
        "/api/generate",
        {
            "model": "m",
            "prompt": "def f(",
            "suffix": "return 1",
            "system": "be brief",
            "template": "{{ .Prompt }}",
            "context": [1, 2, 3],
            "raw": True,
            "format": SCHEMA,
            "images": [base64.b64encode(b"\x89PNG").decode()],
            "options": {"temperature": 0.5, "stop": ["\n"], "num_ctx": 4096},
            "keep_alive": 0,
            "think": "low",
            "stream": False,
        },
        {**FINAL, "response": "x"},
        GenerateResponse,
    ),
    (
        "chat",
        lambda c: c.chat(
            "m",
            [
                {"role": "system", "content": "be brief"},
                Message(
                    role="assistant",
                    content="",
                    tool_calls=[
                        ToolCall(function=ToolCallFunction(name="weather", arguments={"c": "X"}))
                    ],
                ),
                {"role": "tool", "content": "sunny", "tool_name": "weather"},
            ],
            tools=[
                Tool(function=ToolFunction(name="weather", parameters=SCHEMA)),
                {"type": "function", "function": {"name": "time", "description": "now"}},
            ],
            format="json",
            options={"seed": 42, "custom_key": "kept"},
            keep_alive="10m",
            think=True,
        ),
        "POST",
        "/api/chat",
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "weather", "arguments": {"c": "X"}}}],
                },
                {"role": "tool", "content": "sunny", "tool_name": "weather"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "weather", "parameters": SCHEMA}},
                {"type": "function", "function": {"name": "time", "description": "now"}},
            ],
            "format": "json",
            "options": {"seed": 42, "custom_key": "kept"},
            "keep_alive": "10m",
            "think": True,
            "stream": False,
        },
        {**FINAL, "message": {"role": "assistant", "content": "hi"}},
        ChatResponse,
    ),
    (
        "embed",
        lambda c: c.embed(
            "e", ["a", "b"], truncate=False, dimensions=2, keep_alive=-1, options={"num_ctx": 512}
        ),
        "POST",
        "/api/embed",
        {
            "model": "e",
            "input": ["a", "b"],
            "truncate": False,
            "dimensions": 2,
            "keep_alive": -1,
            "options": {"num_ctx": 512},
        },
        {"model": "e", "embeddings": [[0.6, 0.8], [1.0, 0.0]]},
        EmbedResponse,
    ),
    (
        "embed-str",
        lambda c: c.embed("e", "one"),
        "POST",
        "/api/embed",
        {"model": "e", "input": "one"},
        {"embeddings": [[1.0]]},
        EmbedResponse,
    ),
    (
        "show",
        lambda c: c.show("m", verbose=True),
        "POST",
        "/api/show",
        {"model": "m", "verbose": True},
        {"modelfile": "FROM x", "model_info": {"general.architecture": "llama"}},
        ShowResponse,
    ),
    ("ps", lambda c: c.ps(), "GET", "/api/ps", None, {"models": []}, ProcessResponse),
    ("list", lambda c: c.list(), "GET", "/api/tags", None, {"models": []}, ListResponse),
    (
        "version",
        lambda c: c.version(),
        "GET",
        "/api/version",
        None,
        {"version": "0.1.0"},
        VersionResponse,
    ),
    (
        "pull",
        lambda c: c.pull("m", insecure=True),
        "POST",
        "/api/pull",
        {"model": "m", "insecure": True, "stream": False},
        {"status": "success"},
        ProgressResponse,
    ),
    (
        "push",
        lambda c: c.push("ns/m:tag"),
        "POST",
        "/api/push",
        {"model": "ns/m:tag", "stream": False},
        {"status": "success"},
        ProgressResponse,
    ),
    (
        "create",
        lambda c: c.create(
            "mine",
            from_="base:latest",
            files={"model.gguf": DIGEST},
            adapters={"lora.gguf": DIGEST},
            template="{{ .Prompt }}",
            system="sys",
            license=["MIT", "Apache"],
            parameters={"num_ctx": 8192, "stop": ["<|end|>"]},
            messages=[{"role": "user", "content": "hi"}],
            quantize="q4_K_M",
        ),
        "POST",
        "/api/create",
        {
            "model": "mine",
            "from": "base:latest",
            "files": {"model.gguf": DIGEST},
            "adapters": {"lora.gguf": DIGEST},
            "template": "{{ .Prompt }}",
            "system": "sys",
            "license": ["MIT", "Apache"],
            "parameters": {"num_ctx": 8192, "stop": ["<|end|>"]},
            "messages": [{"role": "user", "content": "hi"}],
            "quantize": "q4_K_M",
            "stream": False,
        },
        {"status": "success"},
        ProgressResponse,
    ),
    (
        "copy",
        lambda c: c.copy("a", "b"),
        "POST",
        "/api/copy",
        {"source": "a", "destination": "b"},
        None,
        None,
    ),
    ("delete", lambda c: c.delete("a"), "DELETE", "/api/delete", {"model": "a"}, None, None),
    (
        "stop",
        lambda c: c.stop("m"),
        "POST",
        "/api/generate",
        {"model": "m", "prompt": "", "keep_alive": 0, "stream": False},
        {**FINAL, "response": "", "done_reason": "unload"},
        GenerateResponse,
    ),
    (
        "tokenize",
        lambda c: c.tokenize("m", "hello"),
        "POST",
        "/api/tokenize",
        {"model": "m", "content": "hello"},
        {"tokens": [1, 2]},
        TokenizeResponse,
    ),
    (
        "detokenize",
        lambda c: c.detokenize("m", (1, 2)),
        "POST",
        "/api/detokenize",
        {"model": "m", "tokens": [1, 2]},
        {"content": "hello"},
        DetokenizeResponse,
    ),
]


@pytest.mark.parametrize(
    ("call", "method", "path", "body", "answer", "returns"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_method_sends_the_wire_request(
    call: Call,
    method: str,
    path: str,
    body: Any,
    answer: Any,
    returns: type | None,
    recorder: Any,
    body_of: Any,
) -> None:
    recorder = recorder(
        lambda _: httpx.Response(200, json=answer) if answer is not None else httpx.Response(200)
    )
    async with AsyncClient("http://ollama.test:11434", transport=recorder.transport) as client:
        result = await call(client)
    (request,) = recorder.requests
    assert request.method == method
    assert request.url.path == path
    assert body_of(request) == body
    assert result is None if returns is None else isinstance(result, returns)


@pytest.mark.parametrize(
    ("call", "method", "path", "body", "answer", "returns"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_sync_client_sends_the_same_wire_request(
    call: Call,
    method: str,
    path: str,
    body: Any,
    answer: Any,
    returns: type | None,
    recorder: Any,
    body_of: Any,
) -> None:
    recorder = recorder(
        lambda _: httpx.Response(200, json=answer) if answer is not None else httpx.Response(200)
    )
    with Client("http://ollama.test:11434", transport=recorder.transport) as client:
        result = call(client)
    (request,) = recorder.requests
    assert (request.method, request.url.path, body_of(request)) == (method, path, body)
    assert result is None if returns is None else isinstance(result, returns)


async def test_every_method_sends_per_call_headers(recorder: Any) -> None:
    recorder = recorder(lambda _: httpx.Response(200, json={"version": "1"}))
    async with AsyncClient("h", headers={"X-Client": "c"}, transport=recorder.transport) as client:
        await client.version(headers={"X-Transaction-Id": "t1"})
    (request,) = recorder.requests
    assert request.headers["x-transaction-id"] == "t1"
    assert request.headers["x-client"] == "c"
    assert request.headers["user-agent"].startswith("quantserve-clients/")


@pytest.mark.parametrize(("status", "exists"), [(200, True), (404, False)])
async def test_blob_exists_is_a_head_request(status: int, exists: bool, recorder: Any) -> None:
    recorder = recorder(lambda _: httpx.Response(status))
    async with AsyncClient("h", transport=recorder.transport) as client:
        assert await client.blob_exists(DIGEST) is exists
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("HEAD", f"/api/blobs/{DIGEST}")


async def test_blob_digest_is_validated_before_it_becomes_a_path(recorder: Any) -> None:
    recorder = recorder(lambda _: httpx.Response(200))
    async with AsyncClient("h", transport=recorder.transport) as client:
        with pytest.raises(ValueError, match="invalid blob digest"):
            await client.blob_exists("sha256:../../etc/passwd")
    assert recorder.requests == []


def _blob_server(recorder: Any, existing: set[str]) -> Any:
    def respond(request: httpx.Request) -> httpx.Response:
        digest = request.url.path.removeprefix("/api/blobs/")
        if request.method == "HEAD":
            return httpx.Response(200 if digest in existing else 404)
        assert f"sha256:{hashlib.sha256(request.content).hexdigest()}" == digest
        existing.add(digest)
        return httpx.Response(201)

    return recorder(respond)


async def test_create_blob_uploads_a_file_under_its_sha256(tmp_path: Path, recorder: Any) -> None:
    data = bytes(range(256)) * 5000  # > 1 MiB: several upload chunks
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    recorder = _blob_server(recorder, set())
    async with AsyncClient("h", transport=recorder.transport) as client:
        digest = await client.create_blob(path)
    assert digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    head, post = recorder.requests
    assert (head.method, post.method) == ("HEAD", "POST")
    assert post.url.path == f"/api/blobs/{digest}"
    assert post.content == data
    assert post.headers["content-type"] == "application/octet-stream"


async def test_create_blob_skips_a_blob_the_server_has(recorder: Any) -> None:
    digest = f"sha256:{hashlib.sha256(b'abc').hexdigest()}"
    recorder = _blob_server(recorder, {digest})
    async with AsyncClient("h", transport=recorder.transport) as client:
        assert await client.create_blob(b"abc") == digest
    assert [r.method for r in recorder.requests] == ["HEAD"]
