"""Orchestrator: transaction ids, bounded concurrency, retries, timeouts, telemetry, lifecycle."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from clients import (
    AsyncClient,
    ConnectError,
    Orchestrator,
    OrchestratorClosed,
    Percentiles,
    RequestError,
    RequestTimeout,
    ResponseError,
)
from clients._orchestrator import backoff_delay
from clients._telemetry import nearest_rank

pytestmark = pytest.mark.anyio

FINAL = {
    "response": "",
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 5,
    "eval_count": 4,
    "eval_duration": 2_000_000_000,
    "total_duration": 3_000_000_000,
}


def _answer(ndjson: Callable[..., httpx.Response]) -> httpx.Response:
    return ndjson({"response": "Hel", "done": False}, {"response": "lo", "done": False}, FINAL)


def _orchestrator(handler: Any, **kwargs: Any) -> Orchestrator:
    client = AsyncClient("h", transport=httpx.MockTransport(handler))
    kwargs.setdefault("backoff_base", 0.0)
    return Orchestrator(client, **kwargs)


async def test_submit_returns_telemetry_from_the_server_counts(
    ndjson: Callable[..., httpx.Response], body_of: Any
) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return _answer(ndjson)

    async with _orchestrator(handler) as orch:
        result = await orch.submit("m", "hi", options={"temperature": 0}, transaction_id="tx-42")
    assert result.text == "Hello"
    assert (result.transaction_id, result.model, result.done_reason) == ("tx-42", "m", "stop")
    # Real counts from the final chunk, not a guess from the text length.
    assert (result.eval_count, result.prompt_eval_count) == (4, 5)
    assert result.eval_duration_ns == 2_000_000_000
    assert result.tokens_per_second == 2.0
    assert result.attempts == 1
    assert result.ttft_s is not None and 0 <= result.ttft_s <= result.latency_s
    (request,) = requests
    assert request.headers["X-Transaction-Id"] == "tx-42"
    assert body_of(request) == {
        "model": "m",
        "prompt": "hi",
        "stream": True,
        "options": {"temperature": 0},
    }
    stats = orch.stats()
    assert (stats.submitted, stats.succeeded, stats.failed, stats.tokens_generated) == (1, 1, 0, 4)


async def test_transaction_id_is_a_fresh_uuid4_when_missing(
    ndjson: Callable[..., httpx.Response],
) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["X-Transaction-Id"])
        return _answer(ndjson)

    async with _orchestrator(handler) as orch:
        first = await orch.submit("m", "a")
        second = await orch.submit("m", "b", headers={"x-transaction-id": "ignored"})
    assert sent == [first.transaction_id, second.transaction_id]
    assert first.transaction_id != second.transaction_id
    for tx in sent:
        assert uuid.UUID(hex=tx).version == 4 and tx == uuid.UUID(hex=tx).hex


async def test_chat_submission_uses_messages_and_collects_thinking(
    ndjson: Callable[..., httpx.Response], body_of: Any
) -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((request.url.path, body_of(request)))
        return ndjson(
            {"message": {"role": "assistant", "content": "", "thinking": "hmm"}},
            {"message": {"role": "assistant", "content": "4"}},
            {**FINAL, "message": {"role": "assistant", "content": ""}},
        )

    async with _orchestrator(handler) as orch:
        result = await orch.submit("m", messages=[{"role": "user", "content": "2+2?"}], think=True)
    assert (result.text, result.thinking) == ("4", "hmm")
    assert bodies == [
        (
            "/api/chat",
            {
                "model": "m",
                "messages": [{"role": "user", "content": "2+2?"}],
                "stream": True,
                "think": True,
            },
        )
    ]


async def test_submit_needs_exactly_one_of_prompt_and_messages(
    ndjson: Callable[..., httpx.Response],
) -> None:
    orch = _orchestrator(lambda _: _answer(ndjson))
    with pytest.raises(ValueError, match="exactly one"):
        await orch.submit("m")
    with pytest.raises(ValueError, match="exactly one"):
        await orch.submit("m", "p", messages=[])


async def test_ttft_is_measured_at_the_first_non_empty_chunk(
    ndjson: Callable[..., httpx.Response], delayed: Any
) -> None:
    empty, text, final = (
        ndjson({"response": ""}).content,
        ndjson({"response": "x"}).content,
        ndjson(FINAL).content,
    )

    def handler(request: httpx.Request) -> httpx.Response:
        # The first (empty) chunk arrives at once, the first token 0.2 s later.
        return httpx.Response(200, content=delayed([(0, empty), (0.2, text), (0, final)]))

    async with _orchestrator(handler) as orch:
        result = await orch.submit("m", "p")
    assert result.ttft_s is not None and result.ttft_s >= 0.2


async def test_unstreamed_submission_has_no_ttft(body_of: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert body_of(request)["stream"] is False
        if request.url.path == "/api/chat":
            return httpx.Response(
                200, json={**FINAL, "message": {"role": "assistant", "content": "c"}}
            )
        return httpx.Response(200, json={**FINAL, "response": "whole"})

    async with _orchestrator(handler) as orch:
        result = await orch.submit("m", "p", stream=False)
        chat = await orch.submit("m", messages=[{"role": "user", "content": "q"}], stream=False)
    assert (result.text, result.ttft_s, result.eval_count) == ("whole", None, 4)
    assert (chat.text, chat.ttft_s) == ("c", None)
    assert orch.stats().ttft is None
    assert orch.stats().latency is not None


async def test_concurrency_never_exceeds_max_concurrency(
    ndjson: Callable[..., httpx.Response],
) -> None:
    active = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return _answer(ndjson)

    async with _orchestrator(handler, max_concurrency=3) as orch:
        results = await asyncio.gather(*(orch.submit("m", str(i)) for i in range(12)))
    assert peak == 3
    assert len({r.transaction_id for r in results}) == 12
    assert orch.stats().succeeded == 12


async def test_503_is_retried_then_succeeds(ndjson: Callable[..., httpx.Response]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return httpx.Response(503, json={"error": "server busy, please try again."})
        return _answer(ndjson)

    async with _orchestrator(handler, max_retries=3) as orch:
        result = await orch.submit("m", "p")
    assert (calls, result.attempts, result.text) == (3, 3, "Hello")
    stats = orch.stats()
    assert (stats.retried, stats.succeeded, stats.failed) == (2, 1, 0)


async def test_connect_errors_are_retried(ndjson: Callable[..., httpx.Response]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused")
        return _answer(ndjson)

    async with _orchestrator(handler) as orch:
        result = await orch.submit("m", "p")
    assert result.attempts == 2
    assert orch.stats().retried == 1


async def test_retries_stop_after_max_retries() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused")

    async with _orchestrator(handler, max_retries=2) as orch:
        with pytest.raises(ConnectError) as info:
            await orch.submit("m", "p", transaction_id="tx-x")
    assert calls == 3
    assert info.value.transaction_id == "tx-x"
    stats = orch.stats()
    assert (stats.retried, stats.failed, stats.succeeded) == (2, 1, 0)


@pytest.mark.parametrize("status", [400, 404, 500])
async def test_other_errors_are_not_retried(status: int) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"error": "nope"})

    async with _orchestrator(handler, max_retries=5) as orch:
        with pytest.raises(ResponseError) as info:
            await orch.submit("m", "p")
    assert (calls, info.value.status_code) == (1, status)
    assert (orch.stats().retried, orch.stats().failed) == (0, 1)


async def test_error_line_mid_stream_is_not_retried(ndjson: Callable[..., httpx.Response]) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return ndjson({"response": "a"}, {"error": "server busy"})

    async with _orchestrator(handler, max_retries=5) as orch:
        with pytest.raises(ResponseError, match="server busy"):
            await orch.submit("m", "p")
    assert calls == 1


async def test_retry_after_replaces_the_jittered_backoff(
    ndjson: Callable[..., httpx.Response],
) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "0"})
        return _answer(ndjson)

    # Jitter alone would sleep up to 10^6 s; Retry-After: 0 makes the retry immediate.
    orch = _orchestrator(handler, backoff_base=1e6, backoff_max=1e6, rng=random.Random(1))
    with anyio.fail_after(5):
        async with orch:
            result = await orch.submit("m", "p")
    assert result.attempts == 2


def test_backoff_is_full_jitter_bounded_by_the_cap() -> None:
    rng = random.Random(7)
    for retry in range(80):
        ceiling = min(4.0, 0.1 * 2**retry)
        delays = [
            backoff_delay(retry, base=0.1, cap=4.0, retry_after=None, rng=rng) for _ in range(50)
        ]
        assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter: the delays spread over the whole range rather than sitting at the ceiling.
    late = [backoff_delay(10, base=0.1, cap=4.0, retry_after=None, rng=rng) for _ in range(200)]
    assert min(late) < 1.0 < 3.0 < max(late)


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    rng = random.Random(0)
    assert backoff_delay(0, base=1.0, cap=30.0, retry_after=7.0, rng=rng) == 7.0
    assert backoff_delay(0, base=1.0, cap=30.0, retry_after=3600.0, rng=rng) == 30.0


async def test_request_timeout_fails_the_submission() -> None:
    never = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable")

    async with _orchestrator(handler, request_timeout=0.05, max_retries=3) as orch:
        with pytest.raises(RequestTimeout) as info:
            await orch.submit("m", "p", transaction_id="slow")
    assert isinstance(info.value, TimeoutError)
    assert info.value.transaction_id == "slow"
    stats = orch.stats()
    assert (stats.failed, stats.retried, stats.in_flight, stats.waiting) == (1, 0, 0, 0)


async def test_a_stream_without_its_final_chunk_is_a_failure(
    ndjson: Callable[..., httpx.Response],
) -> None:
    async with _orchestrator(lambda _: ndjson({"response": "cut"})) as orch:
        with pytest.raises(RequestError, match="final"):
            await orch.submit("m", "p")
    assert orch.stats().failed == 1


def test_percentiles_by_nearest_rank_on_a_known_set() -> None:
    samples = list(range(1, 101))
    random.Random(3).shuffle(samples)
    p = Percentiles.from_samples(float(s) for s in samples)
    assert p == Percentiles(p50=50.0, p95=95.0, p99=99.0, count=100)
    ten = Percentiles.from_samples([float(x) for x in range(10, 0, -1)])
    assert ten == Percentiles(p50=5.0, p95=10.0, p99=10.0, count=10)
    assert Percentiles.from_samples([]) is None
    assert Percentiles.from_samples([0.7]) == Percentiles(0.7, 0.7, 0.7, 1)
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 25) == 1.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 100) == 4.0


async def test_latency_window_is_bounded(ndjson: Callable[..., httpx.Response]) -> None:
    async with _orchestrator(lambda _: _answer(ndjson), window_size=3) as orch:
        for i in range(5):
            await orch.submit("m", str(i))
    stats = orch.stats()
    assert stats.latency is not None and stats.latency.count == 3
    assert stats.ttft is not None and stats.ttft.count == 3
    assert (stats.succeeded, stats.tokens_generated) == (5, 20)


class _Ticks(logging.Handler):
    """Collects watchdog log lines; `enough` is set after `n` of them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.enough = n, asyncio.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("orchestrator in_flight="):
            self.lines.append(record.getMessage())
            if len(self.lines) >= self.n:
                self.enough.set()


async def test_watchdog_records_snapshots_and_stops_on_exit(
    ndjson: Callable[..., httpx.Response],
) -> None:
    ticks = _Ticks(3)
    logger = logging.getLogger("test.orchestrator.watchdog")
    logger.setLevel(logging.INFO)
    logger.addHandler(ticks)
    orch = _orchestrator(
        lambda _: _answer(ndjson), watchdog_interval=0.01, watchdog_history=2, logger=logger
    )
    assert not orch.watchdog_running
    async with orch:
        assert orch.watchdog_running
        await orch.submit("m", "p")
        # Count only ticks after the submission, so the last snapshots include it.
        ticks.lines.clear()
        ticks.enough.clear()
        with anyio.fail_after(5):
            await ticks.enough.wait()
    logger.removeHandler(ticks)
    assert not orch.watchdog_running
    snapshots = orch.snapshots
    assert len(snapshots) == 2  # bounded by watchdog_history
    assert snapshots[-1].succeeded == 1
    assert snapshots[-1].latency is not None and snapshots[-1].latency.count == 1
    assert snapshots[0].timestamp <= snapshots[1].timestamp
    assert "latency[p50=" in ticks.lines[-1]
    await asyncio.sleep(0.05)
    assert orch.snapshots == snapshots


async def test_close_waits_for_in_flight_submissions(ndjson: Callable[..., httpx.Response]) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        entered.set()
        await release.wait()
        return _answer(ndjson)

    orch = _orchestrator(handler)
    await orch.start()
    submission = asyncio.create_task(orch.submit("m", "p"))
    await entered.wait()
    assert orch.stats().in_flight == 1
    closing = asyncio.create_task(orch.aclose())
    for _ in range(10):
        await asyncio.sleep(0)
    assert not closing.done()
    assert not orch.watchdog_running
    with pytest.raises(OrchestratorClosed):
        await orch.submit("m", "refused")
    release.set()
    await closing
    assert submission.done() and submission.result().text == "Hello"


async def test_close_cancels_submissions_after_the_drain_timeout() -> None:
    entered = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    orch = _orchestrator(handler, request_timeout=None)
    submission = asyncio.create_task(orch.submit("m", "p"))
    await entered.wait()
    await orch.aclose(drain_timeout=0.05)
    with pytest.raises(OrchestratorClosed):
        await submission
    assert orch.stats().cancelled == 1


async def test_cancelling_the_caller_cancels_the_submission(
    ndjson: Callable[..., httpx.Response],
) -> None:
    entered = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with _orchestrator(handler) as orch:
        submission = asyncio.create_task(orch.submit("m", "p"))
        await entered.wait()
        submission.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submission
        await asyncio.sleep(0)
        stats = orch.stats()
    assert (stats.cancelled, stats.in_flight, stats.waiting) == (1, 0, 0)


def test_invalid_settings_are_refused() -> None:
    client = AsyncClient("h")
    with pytest.raises(ValueError):
        Orchestrator(client, max_concurrency=0)
    with pytest.raises(ValueError):
        Orchestrator(client, watchdog_interval=0)
