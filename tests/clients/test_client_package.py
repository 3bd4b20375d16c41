"""The package surface: exports, layering, and wire parity with the official ollama client."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import ollama
import pytest
from ollama import _types as ollama_types

import clients
from clients import _requests

pytestmark = pytest.mark.anyio


def test_all_is_complete_and_sorted() -> None:
    public = {
        name
        for name, value in vars(clients).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__
    }
    assert public == set(clients.__all__)
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions.
    key = [(not n.isupper(), not n[0].isupper(), n) for n in clients.__all__]
    assert key == sorted(key)
    assert len(set(clients.__all__)) == len(clients.__all__)


def test_importing_clients_never_imports_the_server_or_llama_cpp() -> None:
    code = (
        "import sys, clients; "
        "bad = [m for m in ('server', 'models', 'llama_cpp', 'fastapi') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("params", "request_model", "explicit"),
    [
        (_requests.GenerateParams, _requests.GenerateRequest, {"model", "prompt", "stream"}),
        (_requests.ChatParams, _requests.ChatRequest, {"model", "messages", "stream"}),
        (_requests.EmbedParams, _requests.EmbedRequest, {"model", "input"}),
        (_requests.CreateParams, _requests.CreateRequest, {"model", "stream"}),
    ],
)
def test_method_params_match_the_request_models(
    params: type, request_model: type[_requests.ApiRequest], explicit: set[str]
) -> None:
    assert set(params.__annotations__) | explicit == set(request_model.model_fields)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (_requests.GenerateRequest, ollama_types.GenerateRequest),
        (_requests.ChatRequest, ollama_types.ChatRequest),
        (_requests.EmbedRequest, ollama_types.EmbedRequest),
        (_requests.CreateRequest, ollama_types.CreateRequest),
        (_requests.PullRequest, ollama_types.PullRequest),
        (_requests.ShowRequest, ollama_types.ShowRequest),
        (_requests.CopyRequest, ollama_types.CopyRequest),
        (_requests.DeleteRequest, ollama_types.DeleteRequest),
    ],
)
def test_request_field_names_are_ollamas(ours: type[Any], theirs: type[Any]) -> None:
    assert set(ours.model_fields) <= set(theirs.model_fields) | {"verbose"}


Call = Callable[[Any], Awaitable[Any]]

# The same call made through ollama-python and through our client.
PARITY: list[tuple[str, Call]] = [
    (
        "generate",
        lambda c: c.generate(
            "m",
            "hi",
            system="s",
            options={"temperature": 0.1, "stop": ["\n"]},
            keep_alive="5m",
            format="json",
            images=[b"\x89PNG"],
            context=[1, 2],
        ),
    ),
    (
        "chat",
        lambda c: c.chat(
            "m",
            [{"role": "user", "content": "hi"}],
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "description": "d",
                        "parameters": {
                            "type": "object",
                            "properties": {"a": {"type": "string", "description": "x"}},
                            "required": ["a"],
                        },
                    },
                }
            ],
            think=True,
            keep_alive=0,
        ),
    ),
    ("embed", lambda c: c.embed("m", ["a", "b"], dimensions=3, truncate=True)),
    ("pull", lambda c: c.pull("m", insecure=False)),
    ("push", lambda c: c.push("m", insecure=True)),
    (
        "create",
        lambda c: c.create(
            "x",
            from_="m",
            system="s",
            template="{{ .Prompt }}",
            parameters={"num_ctx": 1024},
            quantize="q8_0",
            files={"a.gguf": "sha256:" + "0" * 64},
        ),
    ),
    ("show", lambda c: c.show("m")),
    ("copy", lambda c: c.copy("a", "b")),
    ("delete", lambda c: c.delete("a")),
    ("list", lambda c: c.list()),
    ("ps", lambda c: c.ps()),
]

ANSWERS: dict[str, Any] = {
    "/api/chat": {"message": {"role": "assistant", "content": "x"}},
    "/api/embed": {"embeddings": [[1.0]]},
    "/api/pull": {"status": "success"},
    "/api/push": {"status": "success"},
    "/api/create": {"status": "success"},
    "/api/show": {"model_info": {}},
    "/api/tags": {"models": []},
    "/api/ps": {"models": []},
    "/api/generate": {"response": "x"},
}


@pytest.mark.parametrize("call", [p[1] for p in PARITY], ids=[p[0] for p in PARITY])
async def test_wire_requests_match_the_official_ollama_client(call: Call) -> None:
    sent: dict[str, list[Any]] = {"ollama": [], "ours": []}

    def handler_for(name: str) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content) if request.content else None
            sent[name].append((request.method, request.url.path, body))
            answer = ANSWERS.get(request.url.path)
            return httpx.Response(200, json=answer) if answer else httpx.Response(200)

        return handler

    theirs = ollama.AsyncClient("h", transport=httpx.MockTransport(handler_for("ollama")))
    async with clients.AsyncClient("h", transport=httpx.MockTransport(handler_for("ours"))) as ours:
        await call(theirs)
        await call(ours)
    assert sent["ours"] == sent["ollama"]
