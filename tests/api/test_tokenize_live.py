"""/api/tokenize and /api/detokenize with the model's own vocabulary."""

from __future__ import annotations

import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer

TEXTS = ["Hello world", "  spaces,\ttabs\nand newlines ", "héllo wörld — 你好 🙂", ""]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(live: LiveServer, text: str) -> None:
    with live.client() as http:
        r = http.post("/api/tokenize", json={"model": DEFAULT_MODEL, "content": text})
        assert r.status_code == 200, r.text
        tokens = r.json()["tokens"]
        assert all(isinstance(t, int) for t in tokens) and (tokens or not text)
        back = http.post("/api/detokenize", json={"model": DEFAULT_MODEL, "tokens": tokens})
    assert back.status_code == 200 and back.json() == {"content": text}


def test_tokens_are_the_ones_the_prompt_uses(live: LiveServer) -> None:
    """Tokenizing the rendered prompt gives the prompt tokens a generation reports in context."""
    request = {"model": DEFAULT_MODEL, "prompt": "The quick brown fox", "stream": False}
    with live.client() as http:
        rendered = http.post("/api/generate", json={**request, "_debug_render_only": True}).json()
        text = rendered["_debug_info"]["rendered_template"]
        tokens = http.post(
            "/api/tokenize", json={"model": DEFAULT_MODEL, "content": text, "add_special": True}
        ).json()["tokens"]
        r = http.post("/api/generate", json={**request, "options": {"num_predict": 1}}).json()
    assert r["context"][: len(tokens)] == tokens
    assert len(r["context"]) == len(tokens) + r.get("eval_count", 0)
    with live.client() as http:
        special = http.post(
            "/api/tokenize", json={"model": DEFAULT_MODEL, "content": "<|im_start|>"}
        ).json()["tokens"]
    assert len(special) == 1  # special tokens in the text are parsed as such


@pytest.mark.parametrize("tokens", [[-1], [49152], [1, 2, 10**9]])
def test_out_of_range_ids_are_400(live: LiveServer, tokens: list[int]) -> None:
    with live.client() as http:
        r = http.post("/api/detokenize", json={"model": DEFAULT_MODEL, "tokens": tokens})
    assert r.status_code == 400
    assert "invalid token id" in r.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/tokenize", {"model": DEFAULT_MODEL}, 400),
        ("/api/tokenize", {"model": DEFAULT_MODEL, "content": 5}, 400),
        ("/api/tokenize", {"model": "", "content": "x"}, 400),
        ("/api/tokenize", {"model": "no-such-model", "content": "x"}, 404),
        ("/api/detokenize", {"model": DEFAULT_MODEL, "tokens": ["1"]}, 400),
        ("/api/detokenize", {"model": DEFAULT_MODEL, "tokens": [1.5]}, 400),
        ("/api/detokenize", {"model": DEFAULT_MODEL}, 400),
    ],
)
def test_bad_requests(live: LiveServer, path: str, body: dict[str, object], status: int) -> None:
    with live.client() as http:
        r = http.post(path, json=body)
    assert r.status_code == status and r.json()["error"]
