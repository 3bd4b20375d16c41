"""Continuous batching on one context: no crossed streams, per-slot options, prompt cache."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ollama

from tests.conftest import DEFAULT_MODEL, LiveServer

# Raw prompts whose greedy continuation is all but certain at every step (margins far above
# float noise), each unmistakably its own: a stream that crossed would show another sequence.
PROMPTS = [
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "100, 99, 98, 97, 96, 95, 94,",
    "1000, 2000, 3000, 4000, 5000,",
    "2, 4, 6, 8, 10, 12, 14, 16,",
    "10, 20, 30, 40, 50, 60, 70,",
    "a, b, c, d, e, f, g, h,",
    "5, 10, 15, 20, 25, 30, 35,",
    "50, 49, 48, 47, 46, 45, 44,",
]
GREEDY = {"temperature": 0, "num_predict": 24}


def _generate(
    live: LiveServer, prompt: str, options: dict[str, Any], *, raw: bool = False
) -> ollama.GenerateResponse:
    return ollama.Client(host=live.url).generate(DEFAULT_MODEL, prompt, options=options, raw=raw)


def _raw(live: LiveServer, prompt: str) -> ollama.GenerateResponse:
    return _generate(live, prompt, GREEDY, raw=True)


def _runner(live: LiveServer) -> Any:
    (loaded,) = [m for m in live.scheduler().loaded() if m.name == DEFAULT_MODEL]
    return loaded.runner


def test_concurrent_requests_do_not_cross(live: LiveServer) -> None:
    solo = {p: _raw(live, p).response for p in PROMPTS}
    runner = _runner(live)
    decodes_before = runner.counters.decode_calls
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        batched = dict(zip(PROMPTS, pool.map(lambda p: _raw(live, p), PROMPTS), strict=True))
    decodes = runner.counters.decode_calls - decodes_before
    # 8 requests x (prefill + 24 tokens) took far fewer decode calls than 8 x 25 run one by
    # one: requests really shared batches.
    assert decodes < len(PROMPTS) * 25 * 0.75
    # Greedy decoding in a batch equals the solo run, token for token. (Batched and
    # single-sequence matrix products may differ in the last float bits, which can flip a
    # near-tie; these prompts have no near-ties, so the whole 24 tokens must agree.)
    for prompt, response in batched.items():
        assert response.response == solo[prompt], prompt
        assert response.eval_count == 24
    assert len({r.response for r in batched.values()}) == len(PROMPTS)


def test_options_hold_per_slot(live: LiveServer) -> None:
    cases = [
        ("Count from 1 to 50 separated by commas.", {"temperature": 0, "num_predict": 5}),
        ("Count from 1 to 50 separated by commas.", {"temperature": 0, "num_predict": 17}),
        (
            "Count from 1 to 50 separated by commas.",
            {"temperature": 0, "num_predict": 40, "stop": ["5"]},
        ),
    ]
    with ThreadPoolExecutor(len(cases)) as pool:
        out = list(pool.map(lambda c: _generate(live, c[0], c[1]), cases))
    assert (out[0].eval_count, out[0].done_reason) == (5, "length")
    assert (out[1].eval_count, out[1].done_reason) == (17, "length")
    assert out[2].done_reason == "stop"
    assert "5" not in out[2].response
    assert out[2].eval_count is not None and out[2].eval_count < 40


def test_multi_turn_chat_pays_only_for_the_new_turn(live: LiveServer) -> None:
    client = ollama.Client(host=live.url)
    history = [
        {"role": "system", "content": "You are a concise assistant. " * 20},
        {"role": "user", "content": "Tell me about the Eiffel Tower in two sentences."},
    ]
    first = client.chat(DEFAULT_MODEL, messages=history, options=GREEDY)
    history += [
        {"role": "assistant", "content": first.message.content},
        {"role": "user", "content": "And how tall is it?"},
    ]
    runner = _runner(live)
    cached_before = runner.counters.prompt_tokens_cached
    second = client.chat(DEFAULT_MODEL, messages=history, options=GREEDY)
    reused = runner.counters.prompt_tokens_cached - cached_before
    assert first.prompt_eval_count is not None and second.prompt_eval_count is not None
    # The whole first exchange came from the cache; only the new turn was evaluated.
    assert reused >= first.prompt_eval_count
    assert second.prompt_eval_count < 40 < first.prompt_eval_count


def test_identical_prompt_is_served_from_cache(live: LiveServer) -> None:
    prompt = "Explain photosynthesis briefly. " * 10 + "1, 2, 3, 4, 5, 6,"
    first = _raw(live, prompt)
    second = _raw(live, prompt)
    assert first.prompt_eval_count is not None and first.prompt_eval_count > 50
    # A fully cached prompt still evaluates its last token, to get logits to sample from.
    assert second.prompt_eval_count == 1
    assert second.response == first.response
