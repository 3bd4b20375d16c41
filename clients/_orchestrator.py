"""`Orchestrator`: bounded, retried, measured submissions on top of `AsyncClient`.

What it fixes in the Java engine it replaces: bodies are typed models (no JSON by string
formatting); token counts and speed come from the server's own `eval_count`/`eval_duration` (no
``len(text) / 4``); latencies live in a bounded window (a `deque`, not a map cleared at 500
entries); and the watchdog reports percentiles (nearest-rank, see `_telemetry`), not an average.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, TypedDict

from ._client import AsyncClient
from ._exceptions import (
    ClientError,
    ConnectError,
    OrchestratorClosed,
    RequestError,
    RequestTimeout,
    ResponseError,
)
from ._requests import FormatInput, KeepAlive, MessageInput, OptionsInput
from ._telemetry import ExecutionTelemetry, OrchestratorStats, Percentiles
from ._types import ChatResponse, GenerateResponse, ThinkLevel

__all__ = ["Orchestrator", "backoff_delay"]

_logger = logging.getLogger(__name__)

TRANSACTION_HEADER = "X-Transaction-Id"


def backoff_delay(
    retry: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait before retry number `retry` (0-based).

    Exponential backoff with full jitter, ``uniform(0, min(cap, base * 2**retry))``; a server's
    `Retry-After` replaces it, still capped at `cap` so that one header cannot stall a submission.
    """
    if retry_after is not None:
        return min(retry_after, cap)
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(retry, 64)))


class _Params(TypedDict):
    # The parameters `submit` passes to both generate and chat.
    options: OptionsInput | None
    format: FormatInput | None
    keep_alive: KeepAlive | None
    think: bool | ThinkLevel | None


@dataclass(slots=True)
class _Job:
    model: str
    prompt: str | None
    messages: Sequence[MessageInput] | None
    params: _Params
    headers: dict[str, str]
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    queue_s: float = 0.0
    attempts: int = 0
    # Once a chunk has arrived the request reached the model: it is never retried after that.
    first_byte: bool = False

    @property
    def transaction_id(self) -> str:
        return self.headers[TRANSACTION_HEADER]


class Orchestrator:
    """Runs generate/chat submissions with bounded concurrency, retries and telemetry.

    Use ``async with Orchestrator(client) as orch:`` (or `start()` / `aclose()`): entering starts
    the watchdog, which every `watchdog_interval` seconds records and logs a `stats()` snapshot
    (the last `watchdog_history` are kept in `snapshots`); closing cancels it and waits for the
    submissions still running (up to `drain_timeout`, then cancels them).

    Only a 503 or a failure to connect is retried, and never once a chunk has arrived;
    `request_timeout` bounds each attempt. The caller owns `client` and closes it.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        max_concurrency: int = 4,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        request_timeout: float | None = 300.0,
        watchdog_interval: float = 10.0,
        watchdog_history: int = 60,
        window_size: int = 1024,
        drain_timeout: float | None = None,
        logger: logging.Logger | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_concurrency < 1 or window_size < 1 or watchdog_history < 1:
            raise ValueError("max_concurrency, window_size and watchdog_history must be >= 1")
        if max_retries < 0 or backoff_base < 0 or backoff_max < 0 or watchdog_interval <= 0:
            raise ValueError("retries and backoff must be >= 0 and watchdog_interval > 0")
        self.client = client
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.request_timeout = request_timeout
        self.watchdog_interval = watchdog_interval
        self.drain_timeout = drain_timeout
        self._log = logger or _logger
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._latencies: deque[float] = deque(maxlen=window_size)
        self._ttfts: deque[float] = deque(maxlen=window_size)
        self._snapshots: deque[OrchestratorStats] = deque(maxlen=watchdog_history)
        self._tasks: set[asyncio.Task[ExecutionTelemetry]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False
        self._submitted = self._succeeded = self._failed = self._cancelled = 0
        self._retried = self._in_flight = self._tokens = 0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose(self.drain_timeout)

    async def start(self) -> None:
        """Start the watchdog (idempotent)."""
        if self._closed:
            raise OrchestratorClosed("the orchestrator is closed")
        if self._watchdog is None:
            self._watchdog = asyncio.create_task(self._watch(), name="orchestrator-watchdog")

    async def aclose(self, drain_timeout: float | None = None) -> None:
        """Refuse new submissions, stop the watchdog and wait for running submissions.

        After `drain_timeout` seconds (``None``: no limit) the ones still running are cancelled,
        and their `submit()` raises `OrchestratorClosed`.
        """
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.wait([self._watchdog])
        running = set(self._tasks)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=drain_timeout)
        if late:
            self._log.warning("orchestrator closing: cancelling %d late submissions", len(late))
            for task in late:
                task.cancel()
            await asyncio.wait(late)

    @property
    def watchdog_running(self) -> bool:
        """Whether the watchdog task is alive."""
        return self._watchdog is not None and not self._watchdog.done()

    @property
    def snapshots(self) -> tuple[OrchestratorStats, ...]:
        """The watchdog's recent snapshots, oldest first."""
        return tuple(self._snapshots)

    def stats(self) -> OrchestratorStats:
        """A snapshot of the counters and the rolling percentiles."""
        running = self._submitted - self._succeeded - self._failed - self._cancelled
        return OrchestratorStats(
            timestamp=time.time(),
            submitted=self._submitted,
            succeeded=self._succeeded,
            failed=self._failed,
            cancelled=self._cancelled,
            retried=self._retried,
            in_flight=self._in_flight,
            waiting=running - self._in_flight,
            tokens_generated=self._tokens,
            latency=Percentiles.from_samples(self._latencies),
            ttft=Percentiles.from_samples(self._ttfts),
        )

    async def submit(
        self,
        model: str,
        prompt: str | None = None,
        *,
        messages: Sequence[MessageInput] | None = None,
        options: OptionsInput | None = None,
        format: FormatInput | None = None,
        keep_alive: KeepAlive | None = None,
        think: bool | ThinkLevel | None = None,
        transaction_id: str | None = None,
        stream: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> ExecutionTelemetry:
        """Generate from `prompt`, or chat on `messages` (exactly one), and measure it.

        `transaction_id` (a uuid4 hex when omitted) is sent as ``X-Transaction-Id``. Streams
        internally (``stream=False`` gives up on TTFT). Errors propagate (`ResponseError`,
        `RequestError`, `RequestTimeout`...) with their `transaction_id` set.
        """
        if self._closed:
            raise OrchestratorClosed("the orchestrator is closed")
        if (prompt is None) == (messages is None):
            raise ValueError("give exactly one of prompt or messages")
        user_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "x-transaction-id"}
        job = _Job(
            model=model,
            prompt=prompt,
            messages=messages,
            params={"options": options, "format": format, "keep_alive": keep_alive, "think": think},
            headers={**user_headers, TRANSACTION_HEADER: transaction_id or uuid.uuid4().hex},
            stream=stream,
        )
        self._submitted += 1
        task = asyncio.create_task(self._execute(job), name=f"submit-{job.transaction_id}")
        self._tasks.add(task)
        # Counted in a done-callback, so that a task cancelled before it ever ran is counted too;
        # it runs before submit() resumes, so stats() is up to date when submit() returns.
        task.add_done_callback(self._finished)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                # Cancelled by aclose() after drain_timeout, not by our caller.
                raise OrchestratorClosed(
                    f"the orchestrator closed before transaction {job.transaction_id} finished"
                ) from None
            raise

    async def _execute(self, job: _Job) -> ExecutionTelemetry:
        try:
            while True:
                try:
                    return await self._attempt(job)
                except (ResponseError, ConnectError) as exc:
                    if not self._retryable(exc, job):
                        raise
                    delay = backoff_delay(
                        job.attempts - 1,
                        base=self.backoff_base,
                        cap=self.backoff_max,
                        retry_after=exc.retry_after if isinstance(exc, ResponseError) else None,
                        rng=self._rng,
                    )
                    self._retried += 1
                    self._log.warning(
                        "transaction %s: attempt %d failed (%s), retrying in %.3fs",
                        job.transaction_id,
                        job.attempts,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
        except ClientError as exc:
            exc.transaction_id = job.transaction_id
            self._log.warning(
                "transaction %s failed after %d attempts: %s", job.transaction_id, job.attempts, exc
            )
            raise

    def _finished(self, task: asyncio.Task[ExecutionTelemetry]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            self._cancelled += 1
        elif task.exception() is not None:
            self._failed += 1
        else:
            self._record(task.result())

    def _retryable(self, exc: ResponseError | ConnectError, job: _Job) -> bool:
        if job.first_byte or job.attempts > self.max_retries:
            return False
        return isinstance(exc, ConnectError) or exc.status_code == 503

    async def _attempt(self, job: _Job) -> ExecutionTelemetry:
        queued = time.perf_counter()
        async with self._slots:
            job.queue_s += time.perf_counter() - queued
            job.attempts += 1
            self._in_flight += 1
            try:
                async with asyncio.timeout(self.request_timeout) as deadline:
                    return await self._run(job)
            except TimeoutError as exc:
                # RequestTimeout is a TimeoutError too: only convert our own deadline.
                if not deadline.expired():
                    raise
                raise RequestTimeout(
                    f"no complete answer within request_timeout={self.request_timeout}s"
                ) from exc
            finally:
                self._in_flight -= 1

    async def _run(self, job: _Job) -> ExecutionTelemetry:
        text: list[str] = []
        thinking: list[str] = []
        ttft: float | None = None
        final: GenerateResponse | ChatResponse | None = None
        async for chunk in self._chunks(job):
            job.first_byte = True
            if isinstance(chunk, ChatResponse):
                piece, thought = chunk.message.content or "", chunk.message.thinking or ""
            else:
                piece, thought = chunk.response, chunk.thinking or ""
            if ttft is None and job.stream and (piece or thought):
                ttft = time.perf_counter() - job.started
            text.append(piece)
            thinking.append(thought)
            if chunk.done:
                final = chunk
        if final is None:
            raise RequestError("the response ended before its final (done) chunk")
        return ExecutionTelemetry(
            transaction_id=job.transaction_id,
            model=job.model,
            text="".join(text),
            thinking="".join(thinking),
            done_reason=final.done_reason,
            latency_s=time.perf_counter() - job.started,
            ttft_s=ttft,
            queue_s=job.queue_s,
            attempts=job.attempts,
            prompt_eval_count=final.prompt_eval_count,
            eval_count=final.eval_count,
            eval_duration_ns=final.eval_duration,
            total_duration_ns=final.total_duration,
            tokens_per_second=final.tokens_per_second,
        )

    async def _chunks(self, job: _Job) -> AsyncIterator[GenerateResponse | ChatResponse]:
        client, params, headers = self.client, job.params, job.headers
        if job.messages is not None:
            if job.stream:
                async for chat in await client.chat(
                    job.model, job.messages, stream=True, headers=headers, **params
                ):
                    yield chat
            else:
                yield await client.chat(job.model, job.messages, headers=headers, **params)
        elif job.stream:
            async for gen in await client.generate(
                job.model, job.prompt, stream=True, headers=headers, **params
            ):
                yield gen
        else:
            yield await client.generate(job.model, job.prompt, headers=headers, **params)

    def _record(self, result: ExecutionTelemetry) -> None:
        self._succeeded += 1
        self._latencies.append(result.latency_s)
        if result.ttft_s is not None:
            self._ttfts.append(result.ttft_s)
        self._tokens += result.eval_count or 0
        self._log.debug(
            "transaction %s done in %.3fs (ttft %s, %s tokens, %d attempts)",
            result.transaction_id,
            result.latency_s,
            result.ttft_s,
            result.eval_count,
            result.attempts,
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog_interval)
            snapshot = self.stats()
            self._snapshots.append(snapshot)
            self._log.info("orchestrator %s", _describe(snapshot))


def _describe(s: OrchestratorStats) -> str:
    def pct(p: Percentiles | None) -> str:
        return "n/a" if p is None else f"p50={p.p50:.3f}s p95={p.p95:.3f}s p99={p.p99:.3f}s"

    return (
        f"in_flight={s.in_flight} waiting={s.waiting} submitted={s.submitted} "
        f"succeeded={s.succeeded} failed={s.failed} retried={s.retried} "
        f"latency[{pct(s.latency)}] ttft[{pct(s.ttft)}]"
    )
