"""The workloads, identical for every server, and the numbers each one yields."""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.drivers import Driver, StreamResult
from bench.text import Corpus, Message

# Prompt indices into the corpus, so every server sees exactly the same prompts.
WARMUP_INDEX = 900
LONG_INDEX = 700


@dataclass
class StreamStats:
    """Concurrent streaming: throughput and latency."""

    clients: int
    streams: int
    aggregate_tps: float | None
    per_stream_tps: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    mean_tokens: float
    finishes: dict[str, int]
    errors: list[str] = field(default_factory=list)


@dataclass
class ChatStats:
    """A long chat re-sent with one new turn: cold vs warm time to first token."""

    history_tokens: int
    cold_ttft: float | None
    warm_ttft: float | None
    prompt_tokens: int | None
    warm_evaluated: int | None
    errors: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        """Cold TTFT / warm TTFT."""
        if self.cold_ttft is None or not self.warm_ttft:
            return None
        return self.cold_ttft / self.warm_ttft


@dataclass
class LongStats:
    """One stream of several context windows: speed per window."""

    num_ctx: int
    requested: int
    tokens: int
    finish: str | None
    window_tps: list[float | None]
    errors: list[str] = field(default_factory=list)

    @property
    def last_over_first(self) -> float | None:
        """Speed of the last full window relative to the first."""
        if len(self.window_tps) < 2 or not self.window_tps[0] or self.window_tps[-1] is None:
            return None
        return self.window_tps[-1] / self.window_tps[0]


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


async def warmup(client: httpx.AsyncClient, driver: Driver, corpus: Corpus) -> StreamResult:
    """One short request: loads the model and pages the weights in."""
    path, body = driver.completion(corpus.prompt(WARMUP_INDEX, 32), 8)
    return await driver.stream(client, path, body)


async def concurrent_streams(
    client: httpx.AsyncClient,
    driver: Driver,
    corpus: Corpus,
    *,
    clients: int,
    rounds: int,
    max_tokens: int,
    offset: int = 0,
) -> StreamStats:
    """``rounds`` bursts of ``clients`` simultaneous streams of ``max_tokens`` tokens.

    ``offset`` picks a different, uncached set of prompts (for a rerun).
    """
    results: list[StreamResult] = []
    total_tokens = 0
    total_wall = 0.0
    for r in range(rounds):
        requests = [
            driver.completion(
                corpus.prompt(1000 * offset + 100 * clients + r * clients + i), max_tokens
            )
            for i in range(clients)
        ]
        burst = await asyncio.gather(*(driver.stream(client, p, b) for p, b in requests))
        ok = [s for s in burst if s.error is None and s.ended is not None]
        if ok:
            total_wall += max(s.ended or 0.0 for s in ok) - min(s.started for s in ok)
            total_tokens += sum(s.tokens for s in ok)
        results.extend(burst)
    ok = [s for s in results if s.error is None]
    ttfts = [s.ttft for s in ok if s.ttft is not None]
    rates = [s.decode_rate for s in ok if s.decode_rate is not None]
    return StreamStats(
        clients=clients,
        streams=len(results),
        aggregate_tps=total_tokens / total_wall if total_wall > 0 else None,
        per_stream_tps=statistics.median(rates) if rates else None,
        ttft_p50=percentile(ttfts, 50),
        ttft_p95=percentile(ttfts, 95),
        mean_tokens=statistics.mean(s.tokens for s in ok) if ok else 0.0,
        finishes=dict(Counter(str(s.finish) for s in ok)),
        errors=[s.error for s in results if s.error is not None],
    )


async def chat_cache(
    client: httpx.AsyncClient,
    driver: Driver,
    corpus: Corpus,
    *,
    history_tokens: int,
    rounds: int,
    max_tokens: int = 32,
    offset: int = 0,
) -> ChatStats:
    """Cold: a long history plus a question. Warm: the same history, the answer, a new question.

    ``offset`` starts every history differently, so a rerun is cold again.
    """
    colds: list[float] = []
    warms: list[float] = []
    errors: list[str] = []
    prompt_tokens = warm_evaluated = None
    for r in range(rounds):
        history = corpus.history(start=3 + 17 * r, tokens=history_tokens, tag=f"{offset}.{r}")
        first = [*history, Message("user", "Summarise the last clause in one sentence.")]
        cold = await driver.stream(client, *driver.chat(first, max_tokens))
        if cold.error or cold.ttft is None:
            errors.append(cold.error or "cold request produced no token")
            continue
        second = [
            *first,
            Message("assistant", cold.text),
            Message("user", "Who does that clause protect?"),
        ]
        warm = await driver.stream(client, *driver.chat(second, max_tokens))
        if warm.error or warm.ttft is None:
            errors.append(warm.error or "warm request produced no token")
            continue
        colds.append(cold.ttft)
        warms.append(warm.ttft)
        prompt_tokens = cold.prompt_tokens
        warm_evaluated = warm.prompt_evaluated
    return ChatStats(
        history_tokens=history_tokens,
        cold_ttft=statistics.median(colds) if colds else None,
        warm_ttft=statistics.median(warms) if warms else None,
        prompt_tokens=prompt_tokens,
        warm_evaluated=warm_evaluated,
        errors=errors,
    )


async def long_stream(
    client: httpx.AsyncClient,
    driver: Driver,
    corpus: Corpus,
    *,
    num_ctx: int,
    windows: int = 3,
    offset: int = 0,
) -> LongStats:
    """One stream of ``windows * num_ctx`` tokens; tokens per second in each window."""
    requested = windows * num_ctx
    path, body = driver.completion(corpus.prompt(LONG_INDEX + 1000 * offset, 32), requested)
    result = await driver.stream(client, path, body)
    return LongStats(
        num_ctx=num_ctx,
        requested=requested,
        tokens=result.tokens,
        finish=result.finish,
        window_tps=[window_rate(result, k * num_ctx, (k + 1) * num_ctx) for k in range(windows)],
        errors=[result.error] if result.error else [],
    )


def window_rate(result: StreamResult, start: int, end: int) -> float | None:
    """Tokens per second between generated token ``start`` and ``end`` (None if not reached)."""
    events = result.events
    if not events or events[-1][1] < end:
        return None
    t0, n0 = next(((t, n) for t, n in events if n >= max(start, 1)), events[0])
    t1, n1 = next((t, n) for t, n in events if n >= end)
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


# Issue #4 item 4 fills this slot: embedding 256 short texts, quantserve vs llama-cpp-python's
# ``Llama.embed`` called per text, reported as a ratio.
EMBED_PENDING = "pending (issue #4: 256 short texts vs Llama.embed per text)"
