"""`clients.Orchestrator` against the real server: telemetry from the server's own numbers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from clients import AsyncClient, Orchestrator, ResponseError
from tests.conftest import DEFAULT_MODEL, LiveServer

pytestmark = pytest.mark.anyio

OPTS = {"temperature": 0, "num_predict": 8}


async def test_streamed_submit_reports_server_counts_speed_and_ttft(
    live: LiveServer, recording_transport: Any
) -> None:
    tx = f"orch-{uuid.uuid4().hex}"
    async with (
        AsyncClient(live.url, transport=recording_transport) as client,
        Orchestrator(client, watchdog_interval=60) as orch,
    ):
        t = await orch.submit(DEFAULT_MODEL, "Name a fruit.", options=OPTS, transaction_id=tx)
        stats = orch.stats()

    assert t.transaction_id == tx and t.model == DEFAULT_MODEL
    assert t.text.strip() and t.done_reason in ("stop", "length")
    assert t.attempts == 1
    # Counts and durations are the server's (final chunk), not estimated from the text.
    assert t.eval_count is not None and 0 < t.eval_count <= 8
    assert t.eval_duration_ns and t.eval_duration_ns > 0
    assert t.total_duration_ns and t.total_duration_ns >= t.eval_duration_ns
    assert t.prompt_eval_count is not None
    assert t.tokens_per_second == pytest.approx(t.eval_count / t.eval_duration_ns * 1e9)
    assert t.ttft_s is not None and 0 < t.ttft_s <= t.latency_s
    assert 0 <= t.queue_s <= t.latency_s

    assert stats.submitted == stats.succeeded == 1
    assert stats.failed == stats.retried == stats.in_flight == stats.waiting == 0
    assert stats.tokens_generated == t.eval_count
    assert stats.latency is not None and stats.latency.count == 1
    assert stats.latency.p50 == pytest.approx(t.latency_s)
    assert stats.ttft is not None and stats.ttft.p99 == pytest.approx(t.ttft_s)

    # The id went out as X-Transaction-Id and the server echoed it back.
    [exchange] = recording_transport.exchanges
    assert exchange.request_headers["x-transaction-id"] == tx
    assert exchange.response_headers.get("x-transaction-id") == tx


async def test_chat_submit_unstreamed_and_concurrent(live: LiveServer) -> None:
    messages = [{"role": "user", "content": "Say yes."}]
    async with AsyncClient(live.url) as client, Orchestrator(client, max_concurrency=2) as orch:
        whole = await orch.submit(DEFAULT_MODEL, messages=messages, options=OPTS, stream=False)
        many = await asyncio.gather(
            *(orch.submit(DEFAULT_MODEL, f"Say {n}.", options=OPTS) for n in range(3))
        )
        stats = orch.stats()

    assert whole.text.strip() and whole.ttft_s is None  # TTFT needs a stream
    assert whole.eval_count and whole.tokens_per_second
    assert len({t.transaction_id for t in [whole, *many]}) == 4  # a fresh uuid each
    assert all(t.eval_count and t.ttft_s is not None for t in many)
    assert stats.succeeded == 4 and stats.failed == 0 and stats.in_flight == 0
    assert stats.tokens_generated == sum(t.eval_count or 0 for t in [whole, *many])
    assert stats.latency is not None and stats.latency.count == 4
    assert stats.ttft is not None and stats.ttft.count == 3


async def test_unknown_model_fails_without_retry_and_keeps_the_transaction_id(
    live: LiveServer,
) -> None:
    async with (
        AsyncClient(live.url) as client,
        Orchestrator(client, max_retries=3, backoff_base=0.01) as orch,
    ):
        with pytest.raises(ResponseError) as info:
            await orch.submit("no-such-model:1b", "hi", transaction_id="tx-missing")
        stats = orch.stats()
    assert info.value.status_code == 404
    assert info.value.transaction_id == "tx-missing"
    headers = {k.lower(): v for k, v in info.value.headers.items()}
    assert headers.get("x-transaction-id") == "tx-missing"  # echoed on errors too
    assert stats.failed == 1 and stats.retried == 0 and stats.succeeded == 0
