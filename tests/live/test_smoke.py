"""Smoke: the real server answers the official ollama client."""

from __future__ import annotations

import ollama

from tests.conftest import DEFAULT_MODEL, LiveServer


def test_generate_and_chat(live: LiveServer) -> None:
    client = ollama.Client(host=live.url)
    r = client.generate(
        DEFAULT_MODEL,
        "What is the capital of France?",
        options={"temperature": 0, "num_predict": 16},
    )
    assert r.done and r.response
    c = client.chat(
        DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Say hello"}],
        options={"temperature": 0, "num_predict": 8},
    )
    assert c.message.content
