"""Failure paths on dedicated real servers: a saturated queue (503, retried) and a mid-stream error.

Waits are bounded by `WAIT_S` (a deadline for a condition, never an assertion on speed). The one
long generation is cancelled as soon as the test no longer needs it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clients import AsyncClient, Orchestrator, ResponseError
from tests.conftest import DEFAULT_MODEL, LiveServer, start_server

pytestmark = pytest.mark.anyio

WAIT_S = 300.0
# A raw counting prompt: the model keeps counting, so the generation runs until cancelled.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"
LONG = {"temperature": 0, "num_predict": 4096}
SHORT = {"temperature": 0, "num_predict": 4}


@pytest.fixture(scope="module")
def saturable(live_store: Path) -> Iterator[LiveServer]:
    """One slot and a queue of one: a running request plus a queued one fill it."""
    srv = start_server(live_store, num_parallel=1, max_queue=1)
    yield srv
    srv.stop()


@pytest.fixture
def doomed(live_store: Path) -> Iterator[LiveServer]:
    """A server whose engine the test stops mid-request (so nothing else may use it)."""
    srv = start_server(live_store, num_parallel=1)
    yield srv
    srv.stop()


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


def runner_of(srv: LiveServer) -> Any:
    return next(m.runner for m in srv.scheduler().loaded() if m.name == DEFAULT_MODEL)


async def stream_until_cancelled(client: AsyncClient, started: asyncio.Event) -> None:
    stream: AsyncIterator[Any] = await client.generate(
        DEFAULT_MODEL, COUNTING, raw=True, stream=True, options=LONG
    )
    async for _ in stream:
        started.set()
    raise AssertionError("the long generation ended before the test cancelled it")


async def test_orchestrator_retries_a_503_until_the_queue_drains(saturable: LiveServer) -> None:
    sched = saturable.scheduler()
    async with AsyncClient(saturable.url) as client:
        await client.generate(DEFAULT_MODEL, keep_alive="10m")  # load: the queue is for requests
        started = asyncio.Event()
        running = asyncio.create_task(stream_until_cancelled(client, started))
        await asyncio.wait_for(started.wait(), WAIT_S)
        queued = asyncio.create_task(client.generate(DEFAULT_MODEL, "Hi", options=SHORT))
        await wait_until(lambda: sched.waiting() >= 1, "the second request to queue")

        # Saturated: a plain request is refused at once with 503 and Retry-After.
        with pytest.raises(ResponseError) as refused:
            await client.generate(DEFAULT_MODEL, "Hi", options=SHORT)
        assert refused.value.status_code == 503
        assert refused.value.retry_after is not None and refused.value.retry_after >= 0

        async with Orchestrator(client, max_retries=1000, backoff_max=0.2) as orch:
            submitted = asyncio.create_task(orch.submit(DEFAULT_MODEL, "Hi", options=SHORT))
            await wait_until(lambda: orch.stats().retried >= 1 or submitted.done(), "a retried 503")
            assert not submitted.done(), "the submission ended while the queue was full"
            running.cancel()  # the client goes away: the server frees the slot
            [outcome] = await asyncio.gather(running, return_exceptions=True)
            assert isinstance(outcome, asyncio.CancelledError)  # it ran until cancelled
            telemetry = await asyncio.wait_for(submitted, WAIT_S)
            stats = orch.stats()
        second = await asyncio.wait_for(queued, WAIT_S)

    assert second.done and second.eval_count
    assert telemetry.attempts >= 2 and telemetry.text.strip()
    assert telemetry.eval_count and 0 < telemetry.eval_count <= 4
    assert stats.retried >= 1 and stats.succeeded == 1 and stats.failed == 0


async def test_an_error_after_the_first_chunk_raises_response_error(doomed: LiveServer) -> None:
    async with AsyncClient(doomed.url) as client:
        stream = await client.generate(DEFAULT_MODEL, COUNTING, raw=True, stream=True, options=LONG)
        first = await anext(stream)
        assert first.done is False and first.response
        # Stop the engine under the running request: the server has already sent 200 and a
        # chunk, so the failure arrives as a final {"error": ...} line.
        await asyncio.to_thread(runner_of(doomed).stop)
        with pytest.raises(ResponseError) as info:
            async for _ in stream:
                pass
    assert info.value.status_code == 200
    assert "unloaded" in info.value.error
