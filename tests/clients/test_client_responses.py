"""Decoding: NDJSON streams, typed lenient responses, errors before and during a stream."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from clients import (
    AsyncClient,
    ChatResponse,
    ConnectError,
    GenerateResponse,
    ProgressResponse,
    RequestError,
    RequestTimeout,
    ResponseError,
)

pytestmark = pytest.mark.anyio

FINAL = {
    "model": "m",
    "created_at": "2026-01-01T00:00:00.123456789Z",
    "response": "",
    "done": True,
    "done_reason": "stop",
    "total_duration": 5_000_000_000,
    "prompt_eval_count": 7,
    "eval_count": 10,
    "eval_duration": 2_000_000_000,
}


def _client(handler: Any) -> AsyncClient:
    return AsyncClient("h", transport=httpx.MockTransport(handler))


async def test_generate_stream_yields_typed_chunks_and_skips_blank_lines(
    ndjson: Callable[..., httpx.Response],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        response = ndjson(
            {"response": "Hel", "done": False}, {"response": "lo", "done": False}, FINAL
        )
        response.stream = httpx.ByteStream(response.content.replace(b"\n", b"\n\n", 1))
        return response

    async with _client(handler) as client:
        chunks = [c async for c in await client.generate("m", "hi", stream=True)]
    assert all(isinstance(c, GenerateResponse) for c in chunks)
    assert [c.response for c in chunks] == ["Hel", "lo", ""]
    final = chunks[-1]
    assert (final.done, final.done_reason, final.eval_count) == (True, "stop", 10)
    assert final.tokens_per_second == 5.0
    assert final.created_at == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)


async def test_streamed_request_says_stream_true(
    ndjson: Callable[..., httpx.Response], body_of: Any
) -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(body_of(request))
        return ndjson({"message": {"role": "assistant", "content": "x"}, "done": True})

    async with _client(handler) as client:
        chunks = [
            c async for c in await client.chat("m", [{"role": "user", "content": "q"}], stream=True)
        ]
    assert seen == [{"model": "m", "messages": [{"role": "user", "content": "q"}], "stream": True}]
    assert isinstance(chunks[0], ChatResponse)
    assert chunks[0].message.content == "x"


async def test_streamed_chat_tool_calls_are_parsed(ndjson: Callable[..., httpx.Response]) -> None:
    tool_chunk = {
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {"x": 1}}}
            ],
        },
        "done": False,
    }

    async with _client(
        lambda _: ndjson(tool_chunk, {**FINAL, "message": {"role": "assistant"}})
    ) as client:
        chunks = [c async for c in await client.chat("m", [], stream=True)]
    (call,) = chunks[0].message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "f", {"x": 1})


async def test_pull_streams_progress(ndjson: Callable[..., httpx.Response]) -> None:
    lines = [
        {"status": "pulling manifest"},
        {"status": "pulling abc", "digest": "sha256:abc", "total": 10, "completed": 5},
        {"status": "success"},
    ]
    async with _client(lambda _: ndjson(*lines)) as client:
        progress = [p async for p in await client.pull("m", stream=True)]
    assert all(isinstance(p, ProgressResponse) for p in progress)
    assert [(p.status, p.completed) for p in progress] == [
        ("pulling manifest", None),
        ("pulling abc", 5),
        ("success", None),
    ]


async def test_error_line_mid_stream_raises_with_the_http_status(
    ndjson: Callable[..., httpx.Response],
) -> None:
    async with _client(
        lambda _: ndjson({"response": "a", "done": False}, {"error": "model crashed"})
    ) as client:
        received: list[str] = []
        with pytest.raises(ResponseError) as info:
            async for chunk in await client.generate("m", "hi", stream=True):
                received.append(chunk.response)
    assert received == ["a"]
    assert (info.value.error, info.value.status_code) == ("model crashed", 200)


@pytest.mark.parametrize("stream", [False, True])
async def test_error_status_raises_response_error_with_the_error_field(stream: bool) -> None:
    answer = httpx.Response(404, json={"error": "model 'x' not found"})
    async with _client(lambda _: answer) as client:
        with pytest.raises(ResponseError) as info:
            result = await client.generate("x", "hi", stream=stream)
            if stream:
                async for _ in result:  # type: ignore[union-attr]
                    pass
    assert (info.value.error, info.value.status_code) == ("model 'x' not found", 404)
    assert str(info.value) == "model 'x' not found (status code: 404)"


async def test_error_without_json_body_uses_the_text() -> None:
    async with _client(lambda _: httpx.Response(502, text="bad gateway\n")) as client:
        with pytest.raises(ResponseError) as info:
            await client.list()
    assert (info.value.error, info.value.status_code) == ("bad gateway", 502)


async def test_copy_and_delete_raise_on_error_status() -> None:
    async with _client(
        lambda _: httpx.Response(404, json={"error": 'model "a" not found'})
    ) as client:
        with pytest.raises(ResponseError, match="not found"):
            await client.copy("a", "b")
        with pytest.raises(ResponseError, match="not found"):
            await client.delete("a")


async def test_503_exposes_retry_after_and_headers() -> None:
    answer = httpx.Response(503, json={"error": "server busy"}, headers={"Retry-After": "7"})
    async with _client(lambda _: answer) as client:
        with pytest.raises(ResponseError) as info:
            await client.generate("m", "hi")
    assert info.value.status_code == 503
    assert info.value.retry_after == 7.0


def test_retry_after_accepts_http_dates_and_rejects_garbage() -> None:
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=120), usegmt=True)
    later = ResponseError("busy", 503, headers={"retry-after": future}).retry_after
    assert later is not None and 60 < later <= 120
    assert ResponseError("busy", 503, headers={"Retry-After": past}).retry_after == 0.0
    assert ResponseError("busy", 503, headers={"Retry-After": "soon"}).retry_after is None
    assert ResponseError("busy", 503, headers={"Retry-After": "nan"}).retry_after is None
    assert ResponseError("busy", 503).retry_after is None


async def test_invalid_json_in_a_stream_is_a_response_error() -> None:
    async with _client(lambda _: httpx.Response(200, content=b"{not json\n")) as client:
        with pytest.raises(ResponseError, match="invalid response"):
            async for _ in await client.generate("m", "hi", stream=True):
                pass


async def test_response_missing_its_payload_is_a_response_error() -> None:
    async with _client(lambda _: httpx.Response(200, json={"done": True})) as client:
        with pytest.raises(ResponseError, match="invalid response"):
            await client.chat("m", [])


async def test_responses_are_lenient_and_keep_unknown_fields() -> None:
    answer = {"message": {"role": "assistant", "content": "x", "new_field": 1}, "brand_new": [1]}
    async with _client(lambda _: httpx.Response(200, json=answer)) as client:
        response = await client.chat("m", [])
    assert response.done is None and response.eval_count is None
    assert response.tokens_per_second is None
    assert response.model_extra == {"brand_new": [1]}
    assert response.message.model_extra == {"new_field": 1}


async def test_response_exposes_headers_and_echoed_transaction_id(
    ndjson: Callable[..., httpx.Response],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echo = {"X-Transaction-Id": request.headers["X-Transaction-Id"]}
        if request.url.path == "/api/version":
            return httpx.Response(200, json={"version": "1"}, headers=echo)
        return ndjson({"response": "a"}, FINAL, headers=echo)

    async with _client(handler) as client:
        version = await client.version(headers={"X-Transaction-Id": "tx-1"})
        chunks = [
            c
            async for c in await client.generate(
                "m", "p", stream=True, headers={"X-Transaction-Id": "tx-2"}
            )
        ]
    assert version.transaction_id == "tx-1"
    assert version.headers["x-transaction-id"] == "tx-1"
    assert [c.transaction_id for c in chunks] == ["tx-2", "tx-2"]


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectError("refused"), ConnectError),
        (httpx.ConnectTimeout("slow"), ConnectError),
        (httpx.ReadTimeout("slow"), RequestTimeout),
        (httpx.ReadError("reset"), RequestError),
    ],
)
async def test_transport_errors_become_request_errors(raised: Exception, expected: type) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    async with _client(handler) as client:
        with pytest.raises(expected) as info:
            await client.version()
        with pytest.raises(expected):
            async for _ in await client.pull("m", stream=True):
                pass
    assert info.value.__cause__ is raised
    assert isinstance(info.value, RequestTimeout) == isinstance(info.value, TimeoutError)


def test_default_timeout_connects_in_5s_and_never_times_out_a_read() -> None:
    client = AsyncClient("h")
    assert (client.timeout.connect, client.timeout.read) == (5.0, None)
    assert AsyncClient("h", timeout=30).timeout.read == 30
    custom = httpx.Timeout(10.0, read=120.0)
    assert AsyncClient("h", timeout=custom).timeout == custom
