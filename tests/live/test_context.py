"""The sliding context window, prompt truncation and the num_predict bound."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ollama
import pytest

from server.engine.params import GenerationParams
from server.engine.templates import ChatMessage
from tests.conftest import DEFAULT_MODEL, LiveServer, start_server

NUM_CTX = 128
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"  # greedy continues counting for ever


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("ctx"), context_length=NUM_CTX, num_parallel=2)
    yield server
    server.stop()


def _runner(live: LiveServer) -> Any:
    (loaded,) = [m for m in live.scheduler().loaded() if m.name == DEFAULT_MODEL]
    return loaded.runner


def test_generation_slides_past_the_window(small: LiveServer) -> None:
    client = ollama.Client(host=small.url)
    n = 3 * NUM_CTX
    r = client.generate(
        DEFAULT_MODEL, COUNTING, raw=True, options={"temperature": 0, "num_predict": n}
    )
    assert r.done_reason == "length"
    assert r.eval_count == n
    assert _runner(small).counters.context_shifts >= 2
    # Still counting correctly after several shifts: the window slid, nothing collapsed.
    numbers = [int(x) for x in r.response.replace(",", " ").split() if x.isdigit()]
    assert numbers[:5] == [13, 14, 15, 16, 17]
    assert numbers[-1] > 80
    assert numbers == list(range(13, 13 + len(numbers)))


def test_shift_false_stops_at_the_window(small: LiveServer) -> None:
    with small.client() as http:
        r = http.post(
            "/api/generate",
            json={
                "model": DEFAULT_MODEL,
                "prompt": COUNTING,
                "raw": True,
                "shift": False,
                "stream": False,
                "options": {"temperature": 0, "num_predict": 2 * NUM_CTX},
            },
        ).json()
    assert r["done_reason"] == "length"
    # The window holds NUM_CTX tokens; the token sampled from its last position is the one
    # more that is returned (it never needs a cell).
    assert r["prompt_eval_count"] + r["eval_count"] == NUM_CTX + 1


def test_unbounded_num_predict_is_capped(small: LiveServer) -> None:
    # num_predict -1 on a model that never stops: capped at 10 x num_ctx (here num_ctx 32).
    r = ollama.Client(host=small.url).generate(
        DEFAULT_MODEL,
        COUNTING,
        raw=True,
        options={"temperature": 0, "num_predict": -1, "num_ctx": 32},
    )
    assert r.done_reason == "length"
    assert r.eval_count == 10 * 32


def test_long_raw_prompt_is_truncated_or_refused(small: LiveServer) -> None:
    prompt = "The sky is blue. " * 60  # about 300 tokens
    body: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "prompt": prompt,
        "raw": True,
        "stream": False,
        "options": {"temperature": 0, "num_predict": 4},
    }
    with small.client() as http:
        ok = http.post("/api/generate", json=body).json()
        refused = http.post("/api/generate", json={**body, "truncate": False})
    assert ok["done_reason"] == "length"
    assert ok["prompt_eval_count"] < NUM_CTX
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "num_ctx=128" in error and "longer than the context length" in error


def test_long_chat_drops_oldest_turns_and_keeps_system_and_last(small: LiveServer) -> None:
    service = small.app_state["service"]
    client = ollama.Client(host=small.url)
    client.generate(DEFAULT_MODEL, "")  # load
    runner = _runner(small)
    local = service.resolve(DEFAULT_MODEL)
    template = service.template(local, runner)
    msgs = [ChatMessage("system", "SYSTEM-MARKER you are terse.")]
    for i in range(8):
        msgs.append(ChatMessage("user", f"question {i}: " + "tell me more about the ocean. " * 6))
        msgs.append(ChatMessage("assistant", f"answer {i}: " + "the ocean is deep and wide. " * 6))
    msgs.append(ChatMessage("user", "LAST-MARKER what did I ask first?"))
    prepared = service.prepare_chat(runner, template, msgs, GenerationParams())
    text = runner.model.detokenize(prepared.tokens)
    assert len(prepared.tokens) < NUM_CTX
    assert prepared.dropped_messages > 0
    assert "SYSTEM-MARKER" in text and "LAST-MARKER" in text
    assert "question 0:" not in text  # the oldest turns went first
    assert "answer 7:" in text  # the newest kept

    wire = [{"role": m.role, "content": m.content} for m in msgs]
    with small.client() as http:
        ok = http.post(
            "/api/chat",
            json={
                "model": DEFAULT_MODEL,
                "messages": wire,
                "stream": False,
                "options": {"num_predict": 2},
            },
        )
        refused = http.post(
            "/api/chat",
            json={"model": DEFAULT_MODEL, "messages": wire, "truncate": False, "stream": False},
        )
    assert ok.status_code == 200
    assert ok.json()["prompt_eval_count"] < NUM_CTX
    assert refused.status_code == 400


def test_still_serving(small: LiveServer) -> None:
    with small.client() as http:
        assert http.get("/").text == "Ollama is running"
