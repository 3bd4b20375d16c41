"""`clients.AsyncClient` and `clients.Client` against the real server and the real model."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import server
from clients import (
    AsyncClient,
    ChatResponse,
    Client,
    GenerateResponse,
    ResponseError,
)
from tests.conftest import DEFAULT_MODEL, LiveServer

pytestmark = pytest.mark.anyio

OPTS = {"temperature": 0, "num_predict": 8}
HEX64 = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


def check_final(chunk: GenerateResponse | ChatResponse) -> None:
    """A final chunk carries the server's own counts and durations."""
    assert chunk.done is True
    assert chunk.done_reason in ("stop", "length")
    assert chunk.eval_count is not None and 0 < chunk.eval_count <= 8
    assert chunk.eval_duration and chunk.eval_duration > 0
    assert chunk.prompt_eval_count is not None and chunk.prompt_eval_count >= 0
    assert chunk.total_duration and chunk.total_duration >= chunk.eval_duration
    assert chunk.tokens_per_second == pytest.approx(chunk.eval_count / chunk.eval_duration * 1e9)


async def test_generate(live: LiveServer) -> None:
    async with AsyncClient(live.url) as client:
        r = await client.generate(DEFAULT_MODEL, "What is the capital of France?", options=OPTS)
    assert isinstance(r, GenerateResponse)
    assert r.model == DEFAULT_MODEL and r.response.strip()
    assert r.context and all(isinstance(t, int) for t in r.context)
    check_final(r)


async def test_generate_streamed(live: LiveServer) -> None:
    async with AsyncClient(live.url) as client:
        stream = await client.generate(DEFAULT_MODEL, "Name a color.", stream=True, options=OPTS)
        chunks = [c async for c in stream]
    *parts, final = chunks
    assert parts, "a streamed answer comes in several chunks"
    assert all(c.done is False for c in parts)
    assert len(parts) <= (final.eval_count or 0)
    assert "".join(c.response for c in chunks).strip()
    check_final(final)


async def test_chat_and_chat_streamed(live: LiveServer) -> None:
    messages = [{"role": "user", "content": "Say hello."}]
    async with AsyncClient(live.url) as client:
        whole = await client.chat(DEFAULT_MODEL, messages, options=OPTS)
        stream = await client.chat(DEFAULT_MODEL, messages, stream=True, options=OPTS)
        chunks = [c async for c in stream]
    assert whole.message.role == "assistant" and (whole.message.content or "").strip()
    check_final(whole)
    *parts, final = chunks
    assert parts and all(c.message.role == "assistant" and not c.done for c in parts)
    assert "".join(c.message.content or "" for c in chunks).strip()
    check_final(final)


def test_sync_client_generate_and_chat(live: LiveServer) -> None:
    with Client(live.url) as client:
        r = client.generate(DEFAULT_MODEL, "Count to three.", options=OPTS)
        chunks = list(client.generate(DEFAULT_MODEL, "Count to three.", stream=True, options=OPTS))
        c = client.chat(DEFAULT_MODEL, [{"role": "user", "content": "Hi"}], options=OPTS)
        chat_chunks = list(
            client.chat(
                DEFAULT_MODEL, [{"role": "user", "content": "Hi"}], stream=True, options=OPTS
            )
        )
    check_final(r)
    assert r.response.strip()
    check_final(chunks[-1])
    assert len(chunks) >= 2 and "".join(x.response for x in chunks).strip()
    check_final(c)
    assert c.message.content
    check_final(chat_chunks[-1])
    assert "".join(x.message.content or "" for x in chat_chunks).strip()


async def test_list_show_ps_version(live: LiveServer) -> None:
    async with AsyncClient(live.url) as client:
        await client.generate(DEFAULT_MODEL, "Hi", options=OPTS)  # loaded, for ps
        listed = await client.list()
        shown = await client.show(DEFAULT_MODEL)
        running = await client.ps()
        version = await client.version()

    entry = next(m for m in listed.models if m.name == DEFAULT_MODEL)
    assert entry.size and entry.size > 10_000_000
    assert entry.digest and HEX64.match(entry.digest)
    assert entry.modified_at is not None and entry.modified_at <= datetime.now(UTC)
    assert entry.details is not None and entry.details.format == "gguf"

    assert shown.template and "<|im_start|>" in shown.template
    assert shown.parameters and "stop" in shown.parameters
    assert shown.modelfile and shown.modelfile.startswith("# Modelfile")
    assert shown.capabilities and "completion" in shown.capabilities
    assert shown.model_info and shown.model_info["general.architecture"] == "llama"
    assert shown.details is not None and shown.details.quantization_level

    loaded = next(m for m in running.models if m.name == DEFAULT_MODEL)
    assert loaded.size and loaded.size > 0
    assert loaded.digest == entry.digest
    assert loaded.context_length == 2048
    assert loaded.expires_at is not None and loaded.expires_at > datetime.now(UTC)

    assert version.version == server.__version__


def test_sync_list_show_ps_version(live: LiveServer) -> None:
    with Client(live.url) as client:
        assert any(m.name == DEFAULT_MODEL for m in client.list().models)
        assert client.show(DEFAULT_MODEL).template
        assert isinstance(client.ps().models, list)
        assert client.version().version == server.__version__


async def test_unknown_model_is_a_404_response_error(live: LiveServer) -> None:
    async with AsyncClient(live.url) as client:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: client.generate("no-such-model:1b", "hi"),
            lambda: client.chat("no-such-model:1b", [{"role": "user", "content": "hi"}]),
            lambda: client.show("no-such-model:1b"),
        ]
        for call in calls:
            with pytest.raises(ResponseError) as info:
                await call()
            assert info.value.status_code == 404
            assert "not found" in info.value.error
        # A stream fails when it is iterated, before any chunk.
        stream = await client.generate("no-such-model:1b", "hi", stream=True)
        with pytest.raises(ResponseError) as info:
            await anext(stream)
        assert info.value.status_code == 404
    with Client(live.url) as sync, pytest.raises(ResponseError) as sinfo:
        list(sync.chat("no-such-model:1b", [{"role": "user", "content": "hi"}], stream=True))
    assert sinfo.value.status_code == 404


async def test_server_echoes_the_transaction_id(live: LiveServer) -> None:
    tx = f"tx-{uuid.uuid4().hex}"
    async with AsyncClient(live.url) as client:
        r = await client.generate(
            DEFAULT_MODEL, "Hi", options=OPTS, headers={"X-Transaction-Id": tx}
        )
        stream = await client.chat(
            DEFAULT_MODEL,
            [{"role": "user", "content": "Hi"}],
            stream=True,
            options=OPTS,
            headers={"X-Transaction-Id": tx + "-chat"},
        )
        chunks = [c async for c in stream]
        with pytest.raises(ResponseError) as info:
            await client.show("no-such-model:1b", headers={"X-Transaction-Id": tx + "-err"})
    assert r.transaction_id == tx
    assert {c.transaction_id for c in chunks} == {tx + "-chat"}
    error_headers = {k.lower(): v for k, v in info.value.headers.items()}
    assert error_headers.get("x-transaction-id") == tx + "-err"


async def test_embed(live: LiveServer, embed_model: str) -> None:
    async with AsyncClient(live.url) as client:
        one = await client.embed(embed_model, "The sky is blue.")
        two = await client.embed(embed_model, ["The sky is blue.", "Grass is green."])
        short = await client.embed(embed_model, "The sky is blue.", dimensions=32)
    assert len(one.embeddings) == 1 and len(two.embeddings) == 2
    dim = len(one.embeddings[0])
    assert dim > 32 and all(len(v) == dim for v in two.embeddings)
    for vector in [*one.embeddings, *two.embeddings, *short.embeddings]:
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-3)
    assert one.embeddings[0] == pytest.approx(two.embeddings[0], abs=1e-4)
    assert two.embeddings[0] != pytest.approx(two.embeddings[1], abs=1e-3)
    assert len(short.embeddings[0]) == 32
    assert two.prompt_eval_count and two.prompt_eval_count > (one.prompt_eval_count or 0)


def test_sync_embed_and_errors(live: LiveServer, embed_model: str) -> None:
    with Client(live.url) as client:
        r = client.embed(embed_model, ["a", "b", "c"])
        assert len(r.embeddings) == 3
        with pytest.raises(ResponseError) as missing:
            client.embed("no-such-model:1b", "a")
        with pytest.raises(ResponseError) as unable:
            client.embed(DEFAULT_MODEL, "a")  # a model without pooling cannot embed
    assert missing.value.status_code == 404
    assert unable.value.status_code == 400 and "embed" in unable.value.error
