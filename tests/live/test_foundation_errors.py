"""Issue #2 item 8: errors in Ollama's shapes, before and after the first streamed byte.

Ollama's rule: an error before any byte is streamed gets a real status code and
``{"error": ...}``; once the 200 stream has begun, the error is one final NDJSON line
``{"error": ...}``. The engine has no legitimate way to fail half-way through a generation on
demand, so the rule itself is exercised on the real app (real middleware, handlers and
``respond``) under a real uvicorn, with an event source that fails where we tell it to. The
real model is used for what it can show: a request that the engine cannot decode must be
refused up front and must not disturb another client's stream.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import ollama
import pytest
import uvicorn
from fastapi import Request, Response
from fastapi.routing import APIRoute

from server.api.generation import merge_generate
from server.api.streaming import respond
from server.app import create_app
from server.errors import InvalidRequest, ModelNotFound
from server.settings import load_settings
from tests.conftest import DEFAULT_MODEL, LiveServer, free_port

Event = dict[str, Any]
FIRST = {"model": "m", "created_at": "2026-01-01T00:00:00Z", "response": "partial", "done": False}


async def _events(fail: str) -> AsyncGenerator[Event, None]:
    if fail == "before":
        raise ModelNotFound("model 'm' not found")
    yield FIRST
    if fail == "server-error":
        raise InvalidRequest("the request failed half-way")
    if fail == "crash":
        raise RuntimeError("an unexpected bug")
    yield {**FIRST, "response": "", "done": True, "done_reason": "stop"}


async def _failing_generate(request: Request) -> Response:
    body = json.loads(await request.body())
    return await respond(
        request, _events(body["prompt"]), stream=body.get("stream", True), merge=merge_generate
    )


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app, with /api/generate answered by an event source that fails on demand."""
    port = free_port()
    settings = load_settings(
        host=f"127.0.0.1:{port}",
        models=tmp_path_factory.mktemp("empty-store"),
        embed_default_model=False,
        origins="https://app.example.com, https://*.trusted.dev",
    )
    app = create_app(settings)
    # Ahead of the real /api/generate route, so the official client can be pointed at it.
    app.router.routes.insert(0, APIRoute("/api/generate", _failing_generate, methods=["POST"]))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def _stream(url: str, prompt: str) -> tuple[int, str, list[Event]]:
    with (
        httpx.Client(base_url=url, timeout=60) as c,
        c.stream("POST", "/api/generate", json={"model": "m", "prompt": prompt}) as r,
    ):
        lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
        return r.status_code, r.headers["content-type"], lines


def test_error_before_the_first_byte_has_its_status(failing: str) -> None:
    status, ctype, lines = _stream(failing, "before")
    assert status == 404
    assert ctype.startswith("application/json")
    assert lines[0]["error"] == "model 'm' not found"


def test_error_after_the_first_byte_is_a_final_ndjson_line(failing: str) -> None:
    status, ctype, lines = _stream(failing, "server-error")
    assert status == 200
    assert ctype.startswith("application/x-ndjson")
    assert lines[0] == FIRST
    # Ollama's line is {"error": ...}; quantserve may add its transaction id next to it.
    assert lines[-1]["error"] == "the request failed half-way"
    assert set(lines[-1]) <= {"error", "transaction_id"}
    assert len(lines) == 2


def test_unexpected_exception_mid_stream_is_a_generic_error_line(failing: str) -> None:
    status, _, lines = _stream(failing, "crash")
    assert status == 200
    assert lines[0] == FIRST
    assert isinstance(lines[-1]["error"], str)
    assert set(lines[-1]) <= {"error", "transaction_id"}
    assert "unexpected bug" not in lines[-1]["error"]  # internals are logged, not sent


def test_non_streamed_error_has_its_status(failing: str) -> None:
    with httpx.Client(base_url=failing, timeout=60) as c:
        r = c.post("/api/generate", json={"model": "m", "prompt": "server-error", "stream": False})
    assert r.status_code == 400
    assert r.json()["error"] == "the request failed half-way"


def test_the_ollama_client_raises_on_the_error_line(failing: str) -> None:
    client = ollama.Client(host=failing)
    parts = []
    with pytest.raises(ollama.ResponseError) as info:
        for part in client.generate("m", "server-error", stream=True):
            parts.append(part.response)
    assert parts == ["partial"]
    assert info.value.error == "the request failed half-way"


def test_a_clean_stream_has_no_error_line(failing: str) -> None:
    status, _, lines = _stream(failing, "ok")
    assert status == 200
    assert [line["done"] for line in lines] == [False, True]


# -- the real engine ------------------------------------------------------------------------------
def test_out_of_vocabulary_context_is_refused_up_front(live: LiveServer) -> None:
    # Token ids the model does not have are a client error (400), not an engine failure.
    body = {"model": DEFAULT_MODEL, "prompt": "hi", "context": [10_000_000], "stream": False}
    with live.client() as c:
        r = c.post("/api/generate", json=body)
    assert r.status_code == 400, r.text
    assert isinstance(r.json()["error"], str)


def test_a_bad_request_does_not_break_another_clients_stream(live: LiveServer) -> None:
    lines: list[Event] = []
    started = threading.Event()

    def stream() -> None:
        body = {
            "model": DEFAULT_MODEL,
            "prompt": "1, 2, 3, 4, 5, 6, 7, 8,",
            "raw": True,
            "options": {"temperature": 0, "num_predict": 16},
        }
        with live.client() as c, c.stream("POST", "/api/generate", json=body) as r:
            for line in r.iter_lines():
                if line.strip():
                    lines.append(json.loads(line))
                    started.set()

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        assert started.wait(120)
        bad = {"model": DEFAULT_MODEL, "prompt": "hi", "context": [10_000_000], "stream": False}
        with live.client() as c:
            c.post("/api/generate", json=bad)
    finally:
        worker.join(120)
    assert not any("error" in line for line in lines), lines[-1]
    assert lines[-1]["done"] is True
    assert lines[-1]["eval_count"] == 16


def test_server_keeps_serving_after_errors(live: LiveServer) -> None:
    with live.client() as c:
        c.post("/api/generate", content=b"{bad")
        c.post("/api/generate", json={"model": "nope", "prompt": "x"})
    out = ollama.Client(host=live.url).generate(
        DEFAULT_MODEL, "Say hi.", options={"temperature": 0, "num_predict": 2}
    )
    assert out.done and out.eval_count == 2


def test_no_default_model_when_embedding_is_off(failing: str) -> None:
    # QUANTSERVE_EMBED_DEFAULT_MODEL=false: a fresh store stays empty.
    with httpx.Client(base_url=failing, timeout=60) as c:
        assert c.get("/api/tags").json() == {"models": []}
        r = c.post("/api/chat", json={"model": DEFAULT_MODEL, "messages": []})
    assert r.status_code == 404
    assert r.json()["error"] == f"model '{DEFAULT_MODEL}' not found"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),  # OLLAMA_ORIGINS
        ("https://ui.trusted.dev", True),  # OLLAMA_ORIGINS wildcard
        ("http://localhost:3000", True),  # Ollama's built-in origins
        ("http://127.0.0.1:8080", True),
        ("https://evil.example", False),
        ("https://app.example.com.evil.example", False),
    ],
)
def test_cors_allows_ollama_origins(failing: str, origin: str, *, allowed: bool) -> None:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    with httpx.Client(base_url=failing, timeout=60) as c:
        preflight = c.options("/api/tags", headers=headers)
        simple = c.get("/api/tags", headers={"Origin": origin})
    for r in (preflight, simple):
        assert (r.headers.get("access-control-allow-origin") == origin) is allowed
