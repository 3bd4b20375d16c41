"""Scheduler unit tests: a stand-in runner whose load we control (no model needed here).

The real engine is exercised by tests/live; these pin down the scheduling rules themselves:
the queue bound also counts requests waiting for a load, concurrent loads coalesce, LRU
eviction takes only idle models, keep_alive 0 unloads after the request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from models.defaults import ensure_default_model
from models.local import LocalModel
from models.names import ModelName
from models.store import ModelStore
from server.engine.llama_backend import ModelGeometry
from server.engine.params import LoadParams
from server.engine.scheduler import Scheduler
from server.errors import QueueFull

pytestmark = pytest.mark.anyio
LOAD = LoadParams(num_ctx=512, num_batch=64, num_thread=1, num_parallel=1)


class _Model:
    def geometry(self) -> ModelGeometry:
        return ModelGeometry(1, 1, 1, 32, 32, 32, 512, 10, 1, 100)


class StubRunner:
    """Loads when ``gate`` is set; records stops."""

    gate = threading.Event()
    stopped: list[str] = []  # noqa: RUF012 - shared log for the test

    def __init__(self, name: str, path: Path, load: LoadParams) -> None:
        self.name, self.model, self.load_seconds = name, _Model(), 0.0
        self.active = self.waiting = 0
        self.alive = True

    def start(self) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        threading.Thread(
            target=lambda: (self.gate.wait(), fut.set_result(None)), daemon=True
        ).start()
        return fut

    def stop(self, timeout: float | None = None) -> None:
        self.stopped.append(self.name)


@pytest.fixture
def local(tmp_path: Path) -> LocalModel:
    store = ModelStore(tmp_path)
    ensure_default_model(store)
    return store.resolve("smollm2:135m")


def other(local: LocalModel, name: str) -> LocalModel:
    return replace(local, name=ModelName.parse(name), digest=name)


@pytest.fixture(autouse=True)
def _reset() -> None:
    StubRunner.gate = threading.Event()
    StubRunner.stopped = []


def scheduler(**kw: Any) -> Scheduler:
    kw.setdefault("max_loaded", 1)
    kw.setdefault("max_queue", 2)
    return Scheduler(load_timeout=None, runner_factory=StubRunner, **kw)  # type: ignore[arg-type]


async def until(check: Any) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_requests_waiting_for_a_load_count_toward_the_queue(local: LocalModel) -> None:
    sched = scheduler()

    async def use() -> None:
        async with sched.lease(local, LOAD, 60):
            pass

    waiters = [asyncio.create_task(use()) for _ in range(2)]
    await until(lambda: sched.waiting() == 2)
    with pytest.raises(QueueFull):
        async with sched.lease(local, LOAD, 60):
            pass
    StubRunner.gate.set()
    await asyncio.gather(*waiters)
    assert sched.load_count == 1  # the two waiters shared one load
    await sched.shutdown()


async def test_lru_eviction_takes_only_idle_models(local: LocalModel) -> None:
    StubRunner.gate.set()
    sched = scheduler()
    a, b = other(local, "a"), other(local, "b")
    async with sched.lease(a, LOAD, 60):
        pass
    async with sched.lease(b, LOAD, 60):  # max_loaded 1: a (idle) is evicted
        assert [m.name for m in sched.loaded()] == ["b:latest"]
        assert StubRunner.stopped == ["a:latest"]
        blocked = asyncio.create_task(sched.lease(a, LOAD, 60).__aenter__())
        await asyncio.sleep(0.05)
        assert not blocked.done()  # b is busy: never evicted under a running request
    await blocked
    assert StubRunner.stopped == ["a:latest", "b:latest"]
    await sched.shutdown()


async def test_keep_alive_zero_unloads_after_the_request(local: LocalModel) -> None:
    StubRunner.gate.set()
    sched = scheduler()
    async with sched.lease(local, LOAD, 0):
        assert len(sched.loaded()) == 1
    await until(lambda: not sched.loaded())
    async with sched.lease(local, LOAD, None):  # negative keep_alive: forever
        pass
    await asyncio.sleep(0.05)
    assert sched.loaded()[0].expires_at is None
    await sched.shutdown()
