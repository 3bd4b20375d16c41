"""Every generation endpoint respects the model's capabilities (Ollama's 400s), checked before
the model is loaded: completion vs embedding, vision, insert (suffix), tools, thinking."""

from __future__ import annotations

from typing import Any

import ollama
import openai
import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer

HI: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def oai(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def _error(live: LiveServer, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    with live.client() as http:
        r = http.post(path, json=body)
    return r.status_code, r.json()["error"]


def test_embedding_models_do_not_generate(live: LiveServer, embed_model: str) -> None:
    assert _error(live, "/api/chat", {"model": embed_model, "messages": HI}) == (
        400,
        f'"{embed_model}" does not support chat',
    )
    status, message = _error(live, "/api/generate", {"model": embed_model, "prompt": "hi"})
    assert (status, message) == (400, f'"{embed_model}" does not support generate')
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/v1/chat/completions", {"model": embed_model, "messages": HI}),
        ("/v1/completions", {"model": embed_model, "prompt": "hi"}),
    ]
    for path, body in cases:
        status, error = _error(live, path, body)
        assert status == 400 and error["type"] == "invalid_request_error"
        assert "does not support" in error["message"]


def test_insert_needs_a_suffix_template(live: LiveServer, tools_model: str) -> None:
    body = {"prompt": "def add(a, b):", "suffix": "    return c", "stream": False}
    status, message = _error(live, "/api/generate", {"model": DEFAULT_MODEL, **body})
    assert (status, message) == (400, f"{DEFAULT_MODEL} does not support insert")
    with live.client() as http:
        rendered = http.post(
            "/api/generate", json={"model": tools_model, **body, "_debug_render_only": True}
        ).json()["_debug_info"]["rendered_template"]
        assert rendered == "<|fim_prefix|>def add(a, b):<|fim_suffix|>    return c<|fim_middle|>"
        r = http.post(
            "/v1/completions",
            json={
                "model": tools_model,
                "prompt": "def add(a, b):",
                "suffix": "    return c",
                "max_tokens": 4,
            },
        )
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")


def test_images_need_vision(live: LiveServer) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=live.url).chat(
            DEFAULT_MODEL, messages=[{"role": "user", "content": "what?", "images": [b"\x89PNG"]}]
        )
    assert info.value.status_code == 400
    assert info.value.error == f"{DEFAULT_MODEL} does not support vision"
    status, message = _error(
        live, "/api/generate", {"model": DEFAULT_MODEL, "prompt": "what?", "images": ["iVBORw0K"]}
    )
    assert (status, message) == (400, f"{DEFAULT_MODEL} does not support vision")


def test_thinking_needs_a_thinking_template(
    live: LiveServer, oai: openai.OpenAI, thinking_model: str
) -> None:
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/api/chat", {"messages": HI}),
        ("/api/generate", {"prompt": "hi"}),
    ]
    for path, extra in requests:
        status, message = _error(live, path, {"model": DEFAULT_MODEL, "think": True, **extra})
        assert (status, message) == (400, f'"{DEFAULT_MODEL}" does not support thinking')
    with pytest.raises(openai.BadRequestError, match="does not support thinking"):
        oai.chat.completions.create(model=DEFAULT_MODEL, messages=HI, reasoning_effort="low")
    # A thinking template: the prompt opens <think>, the output goes to "thinking".
    r = ollama.Client(host=live.url).chat(
        thinking_model, messages=HI, think=True, options={"num_predict": 8, "temperature": 0}
    )
    assert r.message.thinking and not r.message.content
    c = oai.chat.completions.create(
        model=thinking_model, messages=HI, reasoning_effort="high", max_tokens=8, temperature=0
    )
    assert c.choices[0].message.model_extra and c.choices[0].message.model_extra["reasoning"]
    off = ollama.Client(host=live.url).chat(
        thinking_model, messages=HI, think=False, options={"num_predict": 8, "temperature": 0}
    )
    assert off.message.content and not off.message.thinking


def test_the_server_still_serves(live: LiveServer) -> None:
    r = ollama.Client(host=live.url).chat(DEFAULT_MODEL, messages=HI, options={"num_predict": 2})
    assert r.done
