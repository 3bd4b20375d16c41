"""/v1/*: the official openai client against the real server and model."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer

HELLO: list[Any] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def test_chat_completion(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO, max_tokens=6)
    assert re.fullmatch(r"chatcmpl-\d{1,3}", r.id)
    assert r.object == "chat.completion" and r.system_fingerprint == "fp_ollama"
    assert r.model == DEFAULT_MODEL
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.completion_tokens <= 6
    assert r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=HELLO,
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finish = chunks[-2].choices[0]
    assert finish.finish_reason == "length" and not finish.delta.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text


def test_stream_wire_format_ends_with_done(live: LiveServer) -> None:
    body = {"model": DEFAULT_MODEL, "messages": HELLO, "max_tokens": 3, "stream": True}
    with live.client() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    # Without include_usage there is no usage chunk: the last JSON event is the finish chunk.
    last = json.loads(events[-2].removeprefix("data: "))
    assert last["choices"][0]["delta"] == {} and last["choices"][0]["finish_reason"] == "length"


def test_text_parts_are_the_same_message(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": "Hello\nthere"}], max_tokens=1
    )
    parts: list[Any] = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]
    split = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[{"role": "user", "content": parts}], max_tokens=1
    )
    assert plain.usage and split.usage
    assert split.usage.prompt_tokens == plain.usage.prompt_tokens


def test_sampling_defaults_are_openai_s(client: openai.OpenAI) -> None:
    """Unset temperature/top_p mean 1.0 (as Ollama's OpenAI layer), not the native 0.8/0.9."""
    messages: list[Any] = [{"role": "user", "content": "Write a short poem about rain."}]

    def sample(**kwargs: Any) -> str:
        r = client.chat.completions.create(
            model=DEFAULT_MODEL, messages=messages, max_tokens=16, seed=7, **kwargs
        )
        return r.choices[0].message.content or ""

    defaulted = sample()
    assert defaulted == sample(temperature=1.0, top_p=1.0)
    assert defaulted == sample(extra_body={"options": {"temperature": 1.0}})


def test_llama_options_as_extra_body(live: LiveServer, client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=HELLO,
        max_tokens=2,
        extra_body={"num_ctx": 1024, "top_k": 5},
    )
    assert r.choices[0].message.content is not None
    loaded = [m for m in live.scheduler().loaded() if m.name == DEFAULT_MODEL]
    assert any(m.load.num_ctx == 1024 for m in loaded)
    # Back to the server's num_ctx so other tests share one load.
    client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO, max_tokens=1)


def test_stop_and_max_tokens(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Name three fruits."}]
    free = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=messages, max_tokens=12, temperature=0
    )
    text = free.choices[0].message.content or ""
    assert free.choices[0].finish_reason == "length"
    stop = text.split()[2]
    stopped = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=messages, max_tokens=12, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == text[: text.index(stop)]


def test_penalties_change_greedy_output(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Write the letter a twenty times: a a a a"}]

    def greedy(**kwargs: Any) -> str:
        r = client.chat.completions.create(
            model=DEFAULT_MODEL, messages=messages, max_tokens=20, temperature=0, **kwargs
        )
        return r.choices[0].message.content or ""

    plain = greedy()
    assert plain == greedy(frequency_penalty=0.0, presence_penalty=0.0)
    assert greedy(frequency_penalty=2.0) != plain
    assert greedy(presence_penalty=2.0) != plain


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model=DEFAULT_MODEL, prompt="The sky is", max_tokens=4)
    assert re.fullmatch(r"cmpl-\d{1,3}", r.id) and r.object == "text_completion"
    assert r.choices[0].text and r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 4
    chunks = list(
        client.completions.create(
            model=DEFAULT_MODEL,
            prompt="The sky is",
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert DEFAULT_MODEL in ids
    one = client.models.retrieve(DEFAULT_MODEL)
    assert one.id == DEFAULT_MODEL and one.owned_by == "library" and one.created > 0
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.body["type"] == "not_found_error"  # type: ignore[index]


def test_embeddings_float_and_base64(client: openai.OpenAI, embed_model: str) -> None:
    r = client.embeddings.create(model=embed_model, input=["a cat", "a dog"])
    assert [d.index for d in r.data] == [0, 1]
    vector = r.data[0].embedding
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens
    # The client asks for base64 by default and decodes it; ask for the raw string too.
    with httpx.Client(base_url=str(client.base_url)) as http:
        raw = http.post(
            "embeddings",
            json={"model": embed_model, "input": "a cat", "encoding_format": "base64"},
        ).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vector, atol=1e-6)
    short = client.embeddings.create(model=embed_model, input="a cat", dimensions=32)
    assert len(short.data[0].embedding) == 32


def test_embedding_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError, match="must not be empty"):
        client.embeddings.create(model=DEFAULT_MODEL, input=[])
    with pytest.raises(openai.BadRequestError, match="does not support embeddings"):
        client.embeddings.create(model=DEFAULT_MODEL, input="x")


def test_unknown_model_is_openai_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    error = info.value.body
    assert isinstance(error, dict)
    assert error["type"] == "not_found_error" and "no-such-model" in error["message"]
    assert error["param"] is None and error["code"] is None


BAD: list[tuple[dict[str, Any], str]] = [
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "content"),
    ({"messages": [{"role": "user", "content": 5}]}, "content"),
    ({"messages": []}, "messages"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": float("inf")}, "temperature"),
    ({"temperature": 3}, "temperature"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"stop": [1]}, "stop"),
    ({"seed": "x"}, "seed"),
    ({"n": 2}, "n"),
    ({"num_ctx": "big"}, "num_ctx"),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 7}}}},
        "$.type",
    ),
    ({"response_format": {"type": "xml"}}, "response_format"),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ]
        },
        "data URI",
    ),
    ({"tool_choice": "required"}, "tool_choice requires tools"),
]


@pytest.mark.parametrize(("fields", "where"), BAD)
def test_bad_inputs_are_400_with_a_message(
    live: LiveServer, fields: dict[str, Any], where: str
) -> None:
    body = {"model": DEFAULT_MODEL, "messages": HELLO, "max_tokens": 2, **fields}
    with live.client() as http:
        r = http.post("/v1/chat/completions", content=json.dumps(body))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert where in error["message"]


def test_bad_input_through_the_client_then_still_serving(client: openai.OpenAI) -> None:
    # (The client refuses to send NaN itself; the raw-HTTP cases above send NaN and Infinity.)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO, max_tokens=-5)
    assert "max_tokens" in str(info.value)
    r = client.chat.completions.create(model=DEFAULT_MODEL, messages=HELLO, max_tokens=2)
    assert r.choices[0].message.content


def test_images_need_a_vision_model(client: openai.OpenAI) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": content}]
        )
    assert "does not support vision" in str(info.value)
