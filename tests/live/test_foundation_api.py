"""Issue #2 acceptance: the Ollama API on the real model (tags, show, ps, generate, chat).

Everything runs against the session's real uvicorn serving smollm2:135m through llama.cpp,
through the official ``ollama`` client where it fits and raw HTTP where the wire matters.
Generations are tiny; nothing asserts on timing.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import ollama
import pytest

from models.defaults import DEFAULT_SYSTEM, DEFAULT_TEMPLATE
from tests.conftest import DEFAULT_MODEL, LiveServer

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# A raw prompt whose greedy continuation is all but certain (no near-ties): " 9, 10, 11, ..."
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"
GREEDY = {"temperature": 0, "num_predict": 12}
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def _client(live: LiveServer) -> ollama.Client:
    return ollama.Client(host=live.url, timeout=300)


def _post_ndjson(live: LiveServer, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with live.client() as c, c.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in r.iter_lines() if line.strip()]


def _post_json(live: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with live.client() as c:
        r = c.post(path, json={**body, "stream": False})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    out: dict[str, Any] = r.json()
    return out


def _parse_time(value: str) -> datetime:
    assert RFC3339.match(value), value
    # Python < 3.11 cannot read nanoseconds: keep microseconds.
    head, _, frac = value.rstrip("Z").partition(".")
    stamp = f"{head}.{(frac or '0')[:6].ljust(6, '0')}+00:00" if value.endswith("Z") else value
    return datetime.fromisoformat(stamp)


def _ensure_loaded(live: LiveServer) -> None:
    _post_json(live, "/api/generate", {"model": DEFAULT_MODEL, "prompt": ""})


def test_root_and_version(live: LiveServer) -> None:
    with live.client() as c:
        root = c.get("/")
        assert root.status_code == 200 and root.text == "Ollama is running"
        assert c.head("/").status_code == 200
        version = c.get("/api/version").json()["version"]
    assert re.match(r"^\d+\.\d+\.\d+", version)


# -- /api/tags, /api/show, /api/ps --------------------------------------------------------------
def test_tags_lists_the_default_model_with_ollama_fields(live: LiveServer) -> None:
    with live.client() as c:
        r = c.get("/api/tags")
        head = c.head("/api/tags")
    assert r.status_code == 200 and head.status_code == 200
    (entry,) = [m for m in r.json()["models"] if m["name"] == DEFAULT_MODEL]
    assert set(entry) >= {"name", "model", "modified_at", "size", "digest", "details"}
    assert entry["model"] == DEFAULT_MODEL
    manifest = live.store.read_manifest_bytes(DEFAULT_MODEL)
    # digest: sha256 of the manifest file, no prefix; size: config plus every layer.
    assert entry["digest"] == hashlib.sha256(manifest).hexdigest()
    parsed = json.loads(manifest)
    assert entry["size"] == parsed["config"]["size"] + sum(x["size"] for x in parsed["layers"])
    _parse_time(entry["modified_at"])
    details = entry["details"]
    assert details["format"] == "gguf"
    assert details["family"] == "llama"
    assert details["families"] == ["llama"]
    assert re.match(r"^\d+(\.\d+)?[KMBT]$", details["parameter_size"])
    assert details["quantization_level"] == "Q4_1"

    listed = _client(live).list()
    (model,) = [m for m in listed.models if m.model == DEFAULT_MODEL]
    assert model.digest == entry["digest"]
    assert model.size == entry["size"]
    assert model.details is not None and model.details.quantization_level == "Q4_1"


def test_show_has_every_field(live: LiveServer) -> None:
    body = _post_json(live, "/api/show", {"model": DEFAULT_MODEL})
    assert set(body) >= {
        "license",
        "modelfile",
        "parameters",
        "template",
        "system",
        "details",
        "model_info",
        "capabilities",
        "modified_at",
    }
    assert body["template"] == DEFAULT_TEMPLATE
    assert body["system"] == DEFAULT_SYSTEM
    assert "Apache" in body["license"]
    assert re.search(r'^stop\s+"<\|im_end\|>"$', body["parameters"], re.M)
    assert re.search(r"^FROM \S+", body["modelfile"], re.M)
    assert "PARAMETER stop <|im_start|>" in body["modelfile"]  # unquoted, as Ollama writes it
    assert "TEMPLATE" in body["modelfile"]
    assert body["details"]["quantization_level"] == "Q4_1"
    assert body["details"]["context_length"] > 0
    assert body["details"]["embedding_length"] > 0
    info = body["model_info"]
    assert info["general.architecture"] == "llama"
    assert info["general.parameter_count"] > 100_000_000
    assert info["llama.context_length"] == body["details"]["context_length"]
    assert info["llama.embedding_length"] == body["details"]["embedding_length"]
    assert not info["tokenizer.ggml.tokens"]  # big arrays only when verbose
    assert "completion" in body["capabilities"]
    _parse_time(body["modified_at"])

    verbose = _post_json(live, "/api/show", {"model": DEFAULT_MODEL, "verbose": True})
    assert len(verbose["model_info"]["tokenizer.ggml.tokens"]) > 40_000
    # "name" is Ollama's deprecated spelling of "model".
    assert _post_json(live, "/api/show", {"name": DEFAULT_MODEL})["template"] == DEFAULT_TEMPLATE

    shown = _client(live).show(DEFAULT_MODEL)
    assert shown.template == DEFAULT_TEMPLATE
    assert shown.modelinfo is not None and shown.modelinfo["general.architecture"] == "llama"
    assert shown.capabilities is not None and "completion" in shown.capabilities


def test_ps_lists_the_loaded_model(live: LiveServer) -> None:
    _ensure_loaded(live)
    with live.client() as c:
        tags = {m["name"]: m for m in c.get("/api/tags").json()["models"]}
        body = c.get("/api/ps").json()
    (entry,) = [m for m in body["models"] if m["name"] == DEFAULT_MODEL]
    assert set(entry) >= {
        "name",
        "model",
        "size",
        "size_vram",
        "digest",
        "details",
        "expires_at",
        "context_length",
    }
    assert entry["model"] == DEFAULT_MODEL
    assert entry["digest"] == tags[DEFAULT_MODEL]["digest"]
    assert entry["size"] > 0 and isinstance(entry["size_vram"], int)
    assert entry["context_length"] == live.settings.engine.context_length
    assert entry["details"] == tags[DEFAULT_MODEL]["details"]
    assert _parse_time(entry["expires_at"]) > datetime.now(UTC)

    (model,) = [m for m in _client(live).ps().models if m.model == DEFAULT_MODEL]
    assert model.expires_at is not None and model.expires_at > datetime.now(UTC)
    assert model.context_length == entry["context_length"]


# -- generate and chat ----------------------------------------------------------------------------
def _check_chunk(chunk: dict[str, Any]) -> None:
    assert chunk["model"] == DEFAULT_MODEL
    _parse_time(chunk["created_at"])
    assert isinstance(chunk["done"], bool)


def _check_final(final: dict[str, Any]) -> None:
    assert final["done"] is True
    assert final["done_reason"] in ("stop", "length")
    for key in METRICS:
        assert isinstance(final[key], int) and final[key] >= 0, key
    assert final["prompt_eval_count"] >= 1 and final["eval_count"] >= 1
    assert final["total_duration"] >= final["eval_duration"]


@pytest.mark.parametrize("raw", [False, True], ids=["templated", "raw"])
def test_generate_streamed_equals_non_streamed(live: LiveServer, raw: bool) -> None:
    prompt = COUNTING if raw else "Count from one to five."
    body = {"model": DEFAULT_MODEL, "prompt": prompt, "raw": raw, "options": GREEDY}
    whole = _post_json(live, "/api/generate", body)
    chunks = _post_ndjson(live, "/api/generate", body)
    for chunk in chunks:
        _check_chunk(chunk)
        assert isinstance(chunk["response"], str)
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert "".join(c["response"] for c in chunks) == whole["response"]
    assert whole["response"]
    final = chunks[-1]
    _check_final(final)
    _check_final(whole)
    assert final["eval_count"] == whole["eval_count"]
    assert final["done_reason"] == whole["done_reason"]
    if raw:
        assert "context" not in whole and "context" not in final  # omitted in raw mode
    else:
        for out in (whole, final):
            assert all(isinstance(t, int) for t in out["context"])
            assert len(out["context"]) >= out["prompt_eval_count"] + out["eval_count"]

    client = _client(live)
    streamed = list(client.generate(DEFAULT_MODEL, prompt, raw=raw, options=GREEDY, stream=True))
    assert "".join(p.response or "" for p in streamed) == whole["response"]
    single = client.generate(DEFAULT_MODEL, prompt, raw=raw, options=GREEDY)
    assert single.response == whole["response"]
    assert single.done and single.eval_count == whole["eval_count"]


def test_chat_streamed_equals_non_streamed(live: LiveServer) -> None:
    messages = [{"role": "user", "content": "Count from one to five."}]
    body = {"model": DEFAULT_MODEL, "messages": messages, "options": GREEDY}
    whole = _post_json(live, "/api/chat", body)
    chunks = _post_ndjson(live, "/api/chat", body)
    for chunk in chunks:
        _check_chunk(chunk)
        assert chunk["message"]["role"] == "assistant"
        assert isinstance(chunk["message"]["content"], str)
    assert [c["done"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    text = "".join(c["message"]["content"] for c in chunks)
    assert text == whole["message"]["content"] and text
    assert whole["message"]["role"] == "assistant"
    for final in (whole, chunks[-1]):
        _check_final(final)
        assert "context" not in final  # chat has no context

    client = _client(live)
    streamed = list(client.chat(DEFAULT_MODEL, messages=messages, options=GREEDY, stream=True))
    assert "".join(p.message.content or "" for p in streamed) == text
    single = client.chat(DEFAULT_MODEL, messages=messages, options=GREEDY)
    assert single.message.content == text and single.message.role == "assistant"


def test_generate_final_chunk_has_every_metric(live: LiveServer) -> None:
    final = _client(live).generate(DEFAULT_MODEL, "Say hi.", options=GREEDY)
    for key in METRICS:
        assert isinstance(getattr(final, key), int), key
    assert final.context and final.created_at and RFC3339.match(final.created_at)
    assert final.done_reason in ("stop", "length")


@pytest.mark.parametrize("n", [1, 3, 16])
def test_num_predict_is_exact(live: LiveServer, n: int) -> None:
    options = {"temperature": 0, "num_predict": n}
    out = _post_json(
        live, "/api/generate", {"model": DEFAULT_MODEL, "prompt": COUNTING, "options": options}
    )
    assert out["eval_count"] == n
    assert out["done_reason"] == "length"
    assert len(out["context"]) > n
    chunks = _post_ndjson(
        live, "/api/generate", {"model": DEFAULT_MODEL, "prompt": COUNTING, "options": options}
    )
    assert chunks[-1]["eval_count"] == n and chunks[-1]["done_reason"] == "length"
    assert "".join(c["response"] for c in chunks) == out["response"]

    chat = _client(live).chat(
        DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        options=options,
    )
    assert chat.eval_count == n and chat.done_reason == "length"


def test_stop_strings_cut_the_output(live: LiveServer) -> None:
    body: dict[str, Any] = {
        "model": DEFAULT_MODEL,
        "prompt": COUNTING,
        "raw": True,
        "options": {"temperature": 0, "num_predict": 16},
    }
    baseline = _post_json(live, "/api/generate", body)["response"]
    # A stop string that spans several tokens, in the middle of the greedy output.
    assert ", 11," in baseline, baseline
    for stop in ([", 11,"], ["never appears", ", 11,"], [", 1", ", 11,"]):
        options = {**body["options"], "stop": stop}
        expected = baseline[: min(baseline.index(s) for s in stop if s in baseline)]
        whole = _post_json(live, "/api/generate", {**body, "options": options})
        assert whole["response"] == expected
        assert whole["done_reason"] == "stop"
        chunks = _post_ndjson(live, "/api/generate", {**body, "options": options})
        assert "".join(c["response"] for c in chunks) == expected
        assert chunks[-1]["done_reason"] == "stop"

    # Through the client, on chat, with the model's own stop strings still active.
    chat = _client(live).chat(
        DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Count from one to ten, digits and commas."}],
        options={"temperature": 0, "num_predict": 16},
    )
    text = chat.message.content
    assert len(text) > 4, text
    stop = text[2:5]
    stopped = _client(live).chat(
        DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Count from one to ten, digits and commas."}],
        options={"temperature": 0, "num_predict": 16, "stop": [stop]},
    )
    assert stopped.message.content == text[: text.index(stop)]
    assert stopped.done_reason == "stop"


def test_same_seed_same_text_at_temperature(live: LiveServer) -> None:
    client = _client(live)
    prompt = "Write one sentence about the sea."

    def sample(seed: int) -> str:
        options = {"temperature": 0.9, "seed": seed, "num_predict": 12}
        return client.generate(DEFAULT_MODEL, prompt, options=options).response or ""

    first, again = sample(42), sample(42)
    assert first == again
    # ... and the seed is what made them equal: other seeds sample other texts.
    others = {sample(seed) for seed in (1, 2, 3, 4)}
    assert len(others | {first}) >= 3


# -- errors ------------------------------------------------------------------------------------
def _assert_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["error"]
    assert isinstance(message, str) and message
    return message


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", {"model": "x", "prompt": "hi"}),
        ("/api/generate", {"model": "x", "prompt": "hi", "stream": False}),
        ("/api/chat", {"model": "x", "messages": [{"role": "user", "content": "hi"}]}),
        ("/api/show", {"model": "x"}),
    ],
)
def test_unknown_model_is_404(live: LiveServer, path: str, body: dict[str, Any]) -> None:
    with live.client() as c:
        assert _assert_error(c.post(path, json=body), 404) == "model 'x' not found"


def test_unknown_model_through_the_client(live: LiveServer) -> None:
    client = _client(live)
    with pytest.raises(ollama.ResponseError) as info:
        client.generate("no-such-model", "hi")
    assert info.value.status_code == 404
    assert info.value.error == "model 'no-such-model' not found"
    with pytest.raises(ollama.ResponseError) as info:
        list(
            client.chat(
                "no-such-model:7b", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    assert info.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as info:
        client.show("no-such-model")
    assert info.value.status_code == 404


M = DEFAULT_MODEL
BAD_BODIES: list[tuple[str, bytes | dict[str, Any]]] = [
    ("/api/generate", b""),
    ("/api/generate", b"{bad json"),
    ("/api/generate", b"[1, 2]"),
    ("/api/generate", b'"just a string"'),
    ("/api/generate", b'{"model": "smollm2:135m", "options": {"temperature": NaN}}'),
    ("/api/generate", b'{"model": "smollm2:135m", "options": {"temperature": Infinity}}'),
    ("/api/generate", {"model": M, "prompt": "x", "options": {"temperature": "hot"}}),
    ("/api/generate", {"model": M, "prompt": "x", "options": {"num_predict": False}}),
    ("/api/generate", {"model": M, "prompt": "x", "options": {"top_k": "40"}}),
    ("/api/generate", {"model": M, "prompt": "x", "options": {"stop": 5}}),
    ("/api/generate", {"model": M, "prompt": "x", "options": {"seed": [1]}}),
    ("/api/generate", {"model": M, "prompt": "x", "options": {"top_p": 2}}),
    ("/api/generate", {"model": M, "prompt": "x", "options": []}),
    ("/api/generate", {"model": M, "prompt": 5}),
    ("/api/generate", {"model": M, "prompt": "x", "stream": "yes"}),
    ("/api/generate", {"model": M, "prompt": "x", "stream": 1}),
    ("/api/generate", {"model": M, "prompt": "x", "raw": "true"}),
    ("/api/generate", {"model": M, "prompt": "x", "truncate": "no"}),
    ("/api/generate", {"model": M, "prompt": "x", "context": ["1"]}),
    ("/api/generate", {"model": M, "prompt": "x", "keep_alive": "5x"}),
    ("/api/generate", {"model": M, "prompt": "x", "keep_alive": True}),
    ("/api/generate", {"model": M, "prompt": "x", "format": "yaml"}),
    ("/api/generate", {"model": M, "prompt": "x", "context": ["a"]}),
    ("/api/generate", {"model": "../x", "prompt": "x"}),
    ("/api/generate", {"model": "a/../../b", "prompt": "x"}),
    ("/api/generate", {"model": "x:../../y", "prompt": "x"}),
    ("/api/generate", {"model": "", "prompt": "x"}),
    ("/api/generate", {"model": 7, "prompt": "x"}),
    ("/api/chat", b"{bad json"),
    ("/api/chat", {"model": M, "messages": "hi"}),
    ("/api/chat", {"model": M, "messages": [{"content": "no role"}]}),
    ("/api/chat", {"model": M, "messages": [{"role": "user", "content": 1}]}),
    ("/api/chat", {"model": M, "messages": [], "options": {"temperature": "hot"}}),
    ("/api/chat", {"model": "", "messages": []}),
    ("/api/chat", {"model": "../x", "messages": []}),
    ("/api/show", b"{bad json"),
    ("/api/show", {"model": "../x"}),
    ("/api/show", {"model": ""}),
    ("/api/show", {"model": M, "verbose": "very"}),
]


@pytest.mark.parametrize(("path", "body"), BAD_BODIES)
def test_malformed_requests_are_400_never_422(
    live: LiveServer, path: str, body: bytes | dict[str, Any]
) -> None:
    with live.client() as c:
        if isinstance(body, bytes):
            r = c.post(path, content=body, headers={"content-type": "application/json"})
        else:
            r = c.post(path, json=body)
    _assert_error(r, 400)


def test_invalid_model_name_message(live: LiveServer) -> None:
    with live.client() as c:
        message = _assert_error(c.post("/api/generate", json={"model": "../x"}), 400)
    assert "name" in message


def test_malformed_request_through_the_client(live: LiveServer) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        _client(live).generate(DEFAULT_MODEL, "hi", options={"temperature": "hot"})  # type: ignore[dict-item]
    assert info.value.status_code == 400


def test_unknown_and_historical_options_are_ignored(live: LiveServer) -> None:
    options = {**GREEDY, "num_predict": 2, "no_such_option": 1, "mirostat": 0, "tfs_z": 1.0}
    out = _post_json(
        live, "/api/generate", {"model": DEFAULT_MODEL, "prompt": COUNTING, "options": options}
    )
    assert out["done"] and out["eval_count"] == 2


def test_images_on_a_text_only_model_are_400(live: LiveServer) -> None:
    image = "iVBORw0KGgo="
    with live.client() as c:
        r = c.post(
            "/api/generate", json={"model": DEFAULT_MODEL, "prompt": "what?", "images": [image]}
        )
        _assert_error(r, 400)
        messages = [{"role": "user", "content": "what?", "images": [image]}]
        r = c.post("/api/chat", json={"model": DEFAULT_MODEL, "messages": messages})
        _assert_error(r, 400)


@pytest.mark.parametrize(
    "extra", [{"system": "be brief"}, {"template": "{{ .Prompt }}"}, {"context": [1, 2, 3]}]
)
def test_raw_mode_refuses_system_template_and_context(
    live: LiveServer, extra: dict[str, Any]
) -> None:
    body = {"model": DEFAULT_MODEL, "prompt": "hi", "raw": True, **extra}
    with live.client() as c:
        message = _assert_error(c.post("/api/generate", json=body), 400)
    assert message == "raw mode does not support template, system, or context"


def test_null_flags_take_their_defaults(live: LiveServer) -> None:
    # Go leaves a field at its default on JSON null: "stream": null still streams.
    body = {"model": DEFAULT_MODEL, "prompt": COUNTING, "options": {**GREEDY, "num_predict": 2}}
    chunks = _post_ndjson(live, "/api/generate", {**body, "stream": None, "raw": None})
    assert chunks[-1]["done"] and chunks[-1]["eval_count"] == 2
