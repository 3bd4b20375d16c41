"""What the orchestrator reports: per-submission telemetry and rolling statistics.

Percentiles use the nearest-rank method on a sorted copy of the window: the p-th percentile of
n samples is the ``ceil(p * n / 100)``-th smallest, so it is always one of the samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["ExecutionTelemetry", "OrchestratorStats", "Percentiles", "nearest_rank"]


@dataclass(frozen=True, slots=True)
class ExecutionTelemetry:
    """The outcome of one successful submission.

    `latency_s` and `ttft_s` run from the `submit()` call, so they include waiting for a
    concurrency slot and any retries (`queue_s` is the waiting part). `ttft_s` is the time to the
    first chunk carrying text or thinking, and ``None`` when the answer was not streamed.
    """

    transaction_id: str
    model: str
    text: str
    thinking: str
    done_reason: str | None
    latency_s: float
    ttft_s: float | None
    queue_s: float
    attempts: int
    prompt_eval_count: int | None
    eval_count: int | None
    eval_duration_ns: int | None
    total_duration_ns: int | None
    tokens_per_second: float | None


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Nearest-rank p50/p95/p99 of `count` samples (seconds)."""

    p50: float
    p95: float
    p99: float
    count: int

    @classmethod
    def from_samples(cls, samples: Iterable[float]) -> Percentiles | None:
        """Percentiles of `samples`, or ``None`` when there are none."""
        ordered = sorted(samples)
        if not ordered:
            return None
        return cls(
            p50=nearest_rank(ordered, 50),
            p95=nearest_rank(ordered, 95),
            p99=nearest_rank(ordered, 99),
            count=len(ordered),
        )


def nearest_rank(ordered: Sequence[float], p: float) -> float:
    """The `p`-th percentile of sorted, non-empty `ordered` by the nearest-rank method."""
    # p * n / 100 rather than p / 100 * n: exact for integer p and n (0.95 * 100 is not 95).
    rank = max(1, math.ceil(p * len(ordered) / 100))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class OrchestratorStats:
    """A snapshot of the counters and of the rolling latency/TTFT percentiles.

    `in_flight` submissions hold a concurrency slot; `waiting` ones wait for a slot or back off
    before a retry. Percentiles cover successful submissions in the window (``None`` if empty).
    """

    timestamp: float
    submitted: int
    succeeded: int
    failed: int
    cancelled: int
    retried: int
    in_flight: int
    waiting: int
    tokens_generated: int
    latency: Percentiles | None
    ttft: Percentiles | None
