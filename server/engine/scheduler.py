"""Which models are loaded: one load at a time, keep_alive expiry, LRU eviction, a bounded queue.

Every generation holds a :class:`Lease` on a loaded model for its whole life. The number of
requests *waiting* — leased but not yet in a slot, plus those waiting for a load — is bounded by
``max_queue`` for loaded and unloaded models alike (Ollama's #7758 lets requests for a loaded
model bypass its queue); beyond it, :class:`QueueFull` is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from models.local import LocalModel
from models.manifest import ModelConfig
from server.engine.llama_backend import BackendError
from server.engine.memory import check_kv_type, model_memory_bytes
from server.engine.params import LoadParams
from server.engine.runner import Runner
from server.errors import ModelLoadFailed, QueueFull

logger = logging.getLogger(__name__)

RunnerFactory = Callable[[str, Path, LoadParams], Runner]


@dataclass(eq=False)
class LoadedModel:
    """A resident model and its bookkeeping."""

    key: str
    name: str
    digest: str
    runner: Runner
    load: LoadParams
    keep_alive: float | None
    config: ModelConfig
    size_bytes: int = 0
    kv_bytes: int = 0
    leases: int = 0
    expires_at: float | None = None  # wall clock; None = never
    last_used: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Lease:
    """A request's hold on a loaded model; ``load_seconds`` > 0 when this request loaded it."""

    model: LoadedModel
    load_seconds: float

    @property
    def runner(self) -> Runner:
        """The model's runner."""
        return self.model.runner


def model_key(local: LocalModel) -> str:
    """The case-insensitive identity of a model name."""
    return "/".join(local.name.key)


class Scheduler:
    """Owns the loaded runners."""

    def __init__(
        self,
        *,
        max_loaded: int,
        max_queue: int,
        load_timeout: float | None,
        runner_factory: RunnerFactory = Runner,
    ) -> None:
        self.max_loaded = max_loaded or 3
        self.max_queue = max_queue
        self.load_timeout = load_timeout
        self._factory = runner_factory
        self._loaded: dict[str, LoadedModel] = {}
        self._load_lock = asyncio.Lock()
        self._loading_waiters = 0
        self.load_count = 0

    # -- admission ----------------------------------------------------------------------------
    def waiting(self) -> int:
        """Requests admitted but not yet generating (queued for a slot or for a load)."""
        queued = sum(max(0, m.leases - m.runner.active) for m in self._loaded.values())
        return queued + self._loading_waiters

    def check_admission(self) -> None:
        """Raise QueueFull when the waiting line is full."""
        if self.waiting() >= self.max_queue:
            raise QueueFull()

    @asynccontextmanager
    async def lease(
        self, local: LocalModel, load: LoadParams, keep_alive: float | None
    ) -> AsyncIterator[Lease]:
        """Hold a loaded model (loading it if needed) for the duration of a request."""
        self.check_admission()
        key, digest = model_key(local), local.digest
        t0 = time.perf_counter()
        loaded = self._loaded.get(key)
        loaded_now = False
        if loaded is not None and not loaded.runner.alive and loaded.leases == 0:
            # The engine thread died (it logged why): replace it rather than fail for ever.
            logger.error("engine for %s is not running; reloading it", loaded.name)
            await self._unload(loaded)
            loaded = None
        if loaded is None or loaded.load != load or loaded.digest != digest:
            self._loading_waiters += 1
            try:
                loaded, loaded_now = await self._ensure_loaded(local, load, keep_alive)
            finally:
                self._loading_waiters -= 1
        loaded.leases += 1
        loaded.keep_alive = keep_alive
        loaded.idle.clear()
        if loaded.timer is not None:
            loaded.timer.cancel()
            loaded.timer = None
        try:
            yield Lease(loaded, time.perf_counter() - t0 if loaded_now else 0.0)
        finally:
            self._release(loaded)

    def _release(self, loaded: LoadedModel) -> None:
        loaded.leases -= 1
        loaded.last_used = time.monotonic()
        if loaded.leases > 0:
            return
        loaded.idle.set()
        ka = loaded.keep_alive
        if ka is None:
            loaded.expires_at = None
            return
        loaded.expires_at = time.time() + ka
        loop = asyncio.get_running_loop()
        loaded.timer = loop.call_later(ka, lambda: loop.create_task(self._expire(loaded)))

    async def _expire(self, loaded: LoadedModel) -> None:
        if loaded.leases == 0 and self._loaded.get(loaded.key) is loaded:
            await self._unload(loaded)

    # -- loading ------------------------------------------------------------------------------
    async def _ensure_loaded(
        self, local: LocalModel, load: LoadParams, keep_alive: float | None
    ) -> tuple[LoadedModel, bool]:
        async with self._load_lock:  # one load at a time
            current = self._loaded.get(model_key(local))
            if current is not None and current.load == load and current.digest == local.digest:
                return current, False
            if current is not None:
                # Different load-time options (or a new digest): reload once it is idle.
                await current.idle.wait()
                await self._unload(current)
            while len(self._loaded) >= self.max_loaded:
                await self._evict_one()
            return await self._load(local, load, keep_alive), True

    async def _evict_one(self) -> None:
        idle = [m for m in self._loaded.values() if m.leases == 0]
        if idle:
            await self._unload(min(idle, key=lambda m: m.last_used))
            return
        # Every model is busy: wait for the first to become idle (never evict a busy model).
        waits = [asyncio.ensure_future(m.idle.wait()) for m in self._loaded.values()]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _load(
        self, local: LocalModel, load: LoadParams, keep_alive: float | None
    ) -> LoadedModel:
        name = local.name.display
        runner = self._factory(name, local.model_path, load)
        logger.info("loading %s (num_ctx=%d, parallel=%d)", name, load.num_ctx, load.num_parallel)
        try:
            await asyncio.wait_for(asyncio.wrap_future(runner.start()), self.load_timeout)
        except TimeoutError:
            runner.stop(timeout=0)
            raise ModelLoadFailed(f"timed out loading model {name}") from None
        except (BackendError, OSError, ValueError) as exc:
            raise ModelLoadFailed(f"failed to load model {name}: {exc}") from None
        assert runner.model is not None
        geometry = runner.model.geometry()
        try:
            check_kv_type(geometry, load.kv_cache_type, flash_attention=load.flash_attention)
        except ValueError as exc:
            await asyncio.to_thread(runner.stop)
            raise ModelLoadFailed(str(exc)) from None
        cells = load.num_ctx * load.num_parallel
        loaded = LoadedModel(
            key=model_key(local),
            name=name,
            digest=local.digest,
            config=local.config,
            runner=runner,
            load=load,
            keep_alive=keep_alive,
            size_bytes=model_memory_bytes(geometry.size_bytes, geometry, cells, load.kv_cache_type),
            kv_bytes=model_memory_bytes(0, geometry, cells, load.kv_cache_type),
        )
        loaded.idle.set()
        self._loaded[loaded.key] = loaded
        self.load_count += 1
        logger.info("loaded %s in %.2fs", name, runner.load_seconds)
        return loaded

    async def _unload(self, loaded: LoadedModel) -> None:
        if self._loaded.get(loaded.key) is loaded:
            del self._loaded[loaded.key]
        if loaded.timer is not None:
            loaded.timer.cancel()
        logger.info("unloading %s", loaded.name)
        await asyncio.to_thread(loaded.runner.stop)

    # -- control ------------------------------------------------------------------------------
    async def unload(self, key: str) -> bool:
        """Unload a model now if it is idle, else once its requests finish."""
        loaded = self._loaded.get(key)
        if loaded is None:
            return False
        if loaded.leases:
            loaded.keep_alive = 0
            return True
        await self._unload(loaded)
        return True

    def loaded(self) -> list[LoadedModel]:
        """Resident models, latest expiry first (as /api/ps sorts them)."""
        never = float("inf")
        return sorted(
            self._loaded.values(),
            key=lambda m: never if m.expires_at is None or m.leases else m.expires_at,
            reverse=True,
        )

    def get(self, key: str) -> LoadedModel | None:
        """A resident model by key."""
        return self._loaded.get(key)

    def engines_alive(self) -> bool:
        """Whether every resident model's engine thread is running."""
        return all(m.runner.alive for m in self._loaded.values())

    async def shutdown(self) -> None:
        """Stop every runner."""
        for loaded in list(self._loaded.values()):
            await self._unload(loaded)
