"""/api/embed, /api/embeddings: real pooled embeddings, batched as sequences of one decode."""

from __future__ import annotations

import math

import ollama
import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def _runner(live: LiveServer, name: str) -> object:
    for m in live.scheduler().loaded():
        if m.name == name.removesuffix(":latest") or m.name == name:
            return m.runner
    raise AssertionError(f"{name} is not loaded")


def test_embed_many_inputs_in_one_batch(live: LiveServer, embed_model: str) -> None:
    client = ollama.Client(host=live.url)
    client.embed(embed_model, "warm up")  # loads the model and its embedding context
    runner = _runner(live, embed_model)
    before = runner.counters.embed_batches  # type: ignore[attr-defined]
    texts = [f"sentence number {i} about cats and dogs" for i in range(12)]
    r = client.embed(embed_model, texts)
    assert len(r.embeddings) == len(texts)
    assert all(len(v) == 576 for v in r.embeddings)
    assert all(abs(_norm(v) - 1.0) < 1e-4 for v in r.embeddings)
    # Twelve inputs, one decode: separate sequences of one batch, not one call each.
    assert runner.counters.embed_batches - before == 1  # type: ignore[attr-defined]
    assert r.prompt_eval_count and r.prompt_eval_count >= len(texts)


def test_embedding_is_deterministic_and_batch_independent(
    live: LiveServer, embed_model: str
) -> None:
    client = ollama.Client(host=live.url)
    alone = client.embed(embed_model, "the quick brown fox").embeddings[0]
    batched = client.embed(embed_model, ["hello world", "the quick brown fox"]).embeddings[1]
    assert max(abs(a - b) for a, b in zip(alone, batched, strict=True)) < 1e-3
    other = client.embed(embed_model, "an unrelated sentence about finance").embeddings[0]
    same = sum(a * b for a, b in zip(alone, batched, strict=True))
    different = sum(a * b for a, b in zip(alone, other, strict=True))
    assert same > different


def test_dimensions_truncate_and_renormalise(live: LiveServer, embed_model: str) -> None:
    r = ollama.Client(host=live.url).embed(embed_model, "short text", dimensions=64)
    assert len(r.embeddings[0]) == 64
    assert abs(_norm(r.embeddings[0]) - 1.0) < 1e-4


def test_legacy_embeddings_are_not_normalised(live: LiveServer, embed_model: str) -> None:
    with live.client() as http:
        r = http.post("/api/embeddings", json={"model": embed_model, "prompt": "short text"})
    assert r.status_code == 200
    vec = r.json()["embedding"]
    assert len(vec) == 576
    assert abs(_norm(vec) - 1.0) > 1e-2


def test_too_long_input_with_truncate_false_is_400(live: LiveServer, embed_model: str) -> None:
    text = "word " * 5000
    with live.client() as http:
        r = http.post("/api/embed", json={"model": embed_model, "input": text, "truncate": False})
        assert r.status_code == 400
        assert "exceeds the context length" in r.json()["error"]
        ok = http.post("/api/embed", json={"model": embed_model, "input": text})
    assert ok.status_code == 200
    assert len(ok.json()["embeddings"]) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": DEFAULT_MODEL, "input": "x"}, 400),  # no pooling: not an embedding model
        ({"model": "no-such-model", "input": "x"}, 404),
        ({"model": "smollm2-embed", "input": 123}, 400),
        ({"model": "smollm2-embed", "input": ["ok", 5]}, 400),
        ({"model": "smollm2-embed", "input": "x", "dimensions": 100000}, 400),
    ],
)
def test_bad_embed_requests(
    live: LiveServer, embed_model: str, body: dict[str, object], status: int
) -> None:
    with live.client() as http:
        r = http.post("/api/embed", json=body)
        assert r.status_code == status, r.text
        assert r.json()["error"]
        assert http.get("/").status_code == 200


def test_empty_input_loads_and_returns_nothing(live: LiveServer, embed_model: str) -> None:
    with live.client() as http:
        r = http.post("/api/embed", json={"model": embed_model, "input": []})
    assert r.status_code == 200
    assert r.json()["embeddings"] == []
