"""Prometheus metrics on a registry owned by one app (never the global one).

Two sources feed ``/metrics``:

* request figures (count, duration, time to first token, generation speed, rejections), which the
  request middleware (:mod:`server.request_context`) hands to :meth:`Metrics.observe_request`;
* engine figures (tokens, queue, slots, loaded models, KV cache), read from the scheduler and the
  runners at scrape time by :class:`EngineCollector`, so the engine never calls into metrics.

Labels stay bounded: ``route`` is a route template (``other`` for unknown paths), ``status`` an
HTTP status, ``model`` the name of a model that was loaded from the store, ``reason`` one of a
fixed set. Names, units and help texts are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from server.engine.params import LoadParams
from server.engine.runner import Runner, RunnerCounters
from server.engine.scheduler import RunnerFactory, Scheduler

PREFIX = "quantserve_"
OTHER_ROUTE = "other"
GENERATION_ROUTES = frozenset(
    {"/api/generate", "/api/chat", "/v1/chat/completions", "/v1/completions"}
)
# Routes whose final JSON object / NDJSON line carries Ollama's eval_count and eval_duration.
OLLAMA_GENERATION_ROUTES = frozenset({"/api/generate", "/api/chat"})
REJECTION_REASONS = (
    "invalid_request",
    "model_not_found",
    "cancelled",
    "queue_full",
    "unavailable",
    "error",
)

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_SPEED_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def route_label(scope: Scope) -> str:
    """The matched route's template (``/api/show``), never the raw path; ``other`` if none."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else OTHER_ROUTE


def rejection_reason(status: int, *, retry_after: bool) -> str | None:
    """Why a request was turned away, from its status (None for a served request)."""
    if status < 400:
        return None
    if status == 499:
        return "cancelled"
    if status == 404:
        return "model_not_found"
    if status == 503:
        # QueueFull is the only 503 with Retry-After; EngineUnavailable has none.
        return "queue_full" if retry_after else "unavailable"
    return "invalid_request" if status < 500 else "error"


def generation_speed(last_line: bytes) -> float | None:
    """Tokens per second from an Ollama final chunk's ``eval_count`` / ``eval_duration`` (ns)."""
    try:
        final = json.loads(last_line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(final, dict):
        return None
    count, duration = final.get("eval_count"), final.get("eval_duration")
    if not isinstance(count, int) or not isinstance(duration, int) or count <= 0 or duration <= 0:
        return None
    return count / (duration / 1e9)


@dataclass(frozen=True)
class RequestRecord:
    """One answered HTTP request, as the middleware saw it."""

    route: str
    status: int
    duration_s: float
    first_byte_s: float | None = None
    streamed: bool = False
    last_line: bytes | None = None
    retry_after: bool = False


@dataclass
class _Totals:
    """Counter values of runners that are gone, per model (so counters never go down)."""

    prompt_tokens: int = 0
    prompt_tokens_cached: int = 0
    tokens_generated: int = 0
    context_shifts: int = 0
    decode_calls: int = 0
    finished: dict[str, int] = field(default_factory=dict)

    def add(self, c: _Totals) -> None:
        self.prompt_tokens += c.prompt_tokens
        self.prompt_tokens_cached += c.prompt_tokens_cached
        self.tokens_generated += c.tokens_generated
        self.context_shifts += c.context_shifts
        self.decode_calls += c.decode_calls
        for reason, n in c.finished.items():
            self.finished[reason] = self.finished.get(reason, 0) + n

    @classmethod
    def of(cls, c: RunnerCounters) -> _Totals:
        # The engine thread writes these; ints are read atomically, the dict is copied in one go.
        return cls(
            c.prompt_tokens_evaluated,
            c.prompt_tokens_cached,
            c.tokens_generated,
            c.context_shifts,
            c.decode_calls,
            dict(c.requests_finished),
        )


# name (without prefix), kind, help: every engine-side series EngineCollector exports.
ENGINE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("prompt_tokens_total", "counter", "Prompt tokens evaluated by the model (not from cache)."),
    ("prompt_tokens_cached_total", "counter", "Prompt tokens served from a slot's KV cache."),
    ("tokens_generated_total", "counter", "Tokens generated (sampled) by the model."),
    ("context_shifts_total", "counter", "Context shifts (the oldest half of a slot dropped)."),
    ("decode_calls_total", "counter", "llama_decode calls (one batch across all slots each)."),
    ("engine_requests_finished_total", "counter", "Generations finished, by finish reason."),
    ("queue_depth", "gauge", "Requests admitted but not generating yet (all models)."),
    ("requests_waiting", "gauge", "Requests queued for a free slot of the model."),
    ("active_slots", "gauge", "Slots of the model busy with a request."),
    ("slots", "gauge", "Slots (parallel sequences) of the loaded model."),
    ("models_loaded", "gauge", "Models resident in memory."),
    ("model_loads_total", "counter", "Model loads since start."),
    ("model_load_seconds", "gauge", "Seconds the resident model took to load."),
    ("model_memory_bytes", "gauge", "Estimated memory of the loaded model (weights + KV cache)."),
    ("kv_cache_bytes", "gauge", "Bytes of the model's KV cache."),
    ("kv_cache_cells", "gauge", "KV cache cells of the model (num_ctx x slots)."),
    ("kv_cache_cells_used", "gauge", "KV cache cells holding cached tokens."),
)


class EngineCollector:
    """Reads the scheduler and every runner it ever created, at scrape time."""

    def __init__(self) -> None:
        self.scheduler: Scheduler | None = None
        self._runners: list[Runner] = []  # alive or loaded; folded into _retired once gone
        self._retired: dict[str, _Totals] = {}

    def track(self, runner: Runner) -> None:
        """Remember a runner from its creation on (its counters outlive its unload)."""
        # Fold the stopped ones now too, so that unscraped servers do not pile up runners.
        # Every tracked runner was started right after its creation, so "not alive" is final.
        for old in [r for r in self._runners if not r.alive]:
            self._runners.remove(old)
            self._retired.setdefault(old.name, _Totals()).add(_Totals.of(old.counters))
        self._runners.append(runner)

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterable[Metric]:
        fams = self._families()
        if self.scheduler is None:
            return list(fams.values())
        loaded = self.scheduler.loaded()
        resident = {id(m.runner) for m in loaded}
        totals: dict[str, _Totals] = {}
        for name, retired in self._retired.items():
            totals.setdefault(name, _Totals()).add(retired)
        keep: list[Runner] = []
        for runner in self._runners:
            values = _Totals.of(runner.counters)
            totals.setdefault(runner.name, _Totals()).add(values)
            if runner.alive or id(runner) in resident:
                keep.append(runner)
            else:  # stopped for good: its counters are final
                self._retired.setdefault(runner.name, _Totals()).add(values)
        self._runners = keep
        for model, t in sorted(totals.items()):
            fams["prompt_tokens_total"].add_metric([model], t.prompt_tokens)
            fams["prompt_tokens_cached_total"].add_metric([model], t.prompt_tokens_cached)
            fams["tokens_generated_total"].add_metric([model], t.tokens_generated)
            fams["context_shifts_total"].add_metric([model], t.context_shifts)
            fams["decode_calls_total"].add_metric([model], t.decode_calls)
            for reason, n in sorted(t.finished.items()):
                fams["engine_requests_finished_total"].add_metric([model, reason], n)
        fams["queue_depth"].add_metric([], self.scheduler.waiting())
        fams["models_loaded"].add_metric([], len(loaded))
        fams["model_loads_total"].add_metric([], self.scheduler.load_count)
        for m in loaded:
            slots = m.runner.slot_states()
            label = [m.name]
            fams["requests_waiting"].add_metric(label, m.runner.waiting)
            fams["active_slots"].add_metric(label, m.runner.active)
            fams["slots"].add_metric(label, len(slots))
            fams["model_load_seconds"].add_metric(label, m.runner.load_seconds)
            fams["model_memory_bytes"].add_metric(label, m.size_bytes)
            fams["kv_cache_bytes"].add_metric(label, m.kv_bytes)
            fams["kv_cache_cells"].add_metric(label, m.load.num_ctx * m.load.num_parallel)
            fams["kv_cache_cells_used"].add_metric(label, sum(s.cached_tokens for s in slots))
        return list(fams.values())

    @staticmethod
    def _families() -> dict[str, CounterMetricFamily | GaugeMetricFamily]:
        fams: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for name, kind, text in ENGINE_METRICS:
            labels: list[str] = []
            if name not in ("queue_depth", "models_loaded", "model_loads_total"):
                labels = ["model"]
            if name == "engine_requests_finished_total":
                labels = ["model", "reason"]
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            fams[name] = family(PREFIX + name, text, labels=labels)
        return fams


class Metrics:
    """Every quantserve metric, registered on one registry (a fresh one per app by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            PREFIX + "requests_total",
            "HTTP requests answered, by route template and status code (499: client went away).",
            ["route", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from request arrival to the last byte of the response.",
            ["route"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            PREFIX + "time_to_first_token_seconds",
            "Time from request arrival to the first streamed chunk of a streaming generation.",
            ["route"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.generation_speed = Histogram(
            PREFIX + "generation_tokens_per_second",
            "Per-request generation speed: eval_count / eval_duration of the final chunk.",
            ["route"],
            buckets=_SPEED_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            PREFIX + "rejected_requests_total",
            "Requests not served, by reason: " + ", ".join(REJECTION_REASONS) + ".",
            ["route", "reason"],
            registry=r,
        )
        self.engine = EngineCollector()
        r.register(self.engine)
        self.asgi = make_asgi_app(registry=r)

    def track_runners(self, factory: RunnerFactory) -> RunnerFactory:
        """Wrap the scheduler's runner factory so that every runner's counters are kept."""

        def tracked(name: str, path: Path, load: LoadParams) -> Runner:
            runner = factory(name, path, load)
            self.engine.track(runner)
            return runner

        return tracked

    def watch(self, scheduler: Scheduler) -> None:
        """Read this scheduler's models at every scrape."""
        self.engine.scheduler = scheduler

    def observe_request(self, rec: RequestRecord) -> None:
        """Record one answered request."""
        self.requests.labels(rec.route, str(rec.status)).inc()
        self.request_duration.labels(rec.route).observe(rec.duration_s)
        if rec.route == OTHER_ROUTE:
            return
        reason = rejection_reason(rec.status, retry_after=rec.retry_after)
        if reason is not None:
            self.rejected.labels(rec.route, reason).inc()
            return
        if rec.route not in GENERATION_ROUTES or rec.status != 200:
            return
        if rec.streamed and rec.first_byte_s is not None:
            self.time_to_first_token.labels(rec.route).observe(rec.first_byte_s)
        if rec.route in OLLAMA_GENERATION_ROUTES and rec.last_line:
            speed = generation_speed(rec.last_line)
            if speed is not None and math.isfinite(speed):
                self.generation_speed.labels(rec.route).observe(speed)


class MetricsEndpoint:
    """ASGI app for ``/metrics``: serves the registry of the app's lifespan state."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = scope.get("state", {}).get("metrics")
        if not isinstance(metrics, Metrics):
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"metrics not ready\n"})
            return
        await metrics.asgi(scope, receive, send)


def metrics_route() -> Route:
    """The ``GET /metrics`` route (an exact path: no redirect to ``/metrics/``)."""
    return Route("/metrics", MetricsEndpoint(), methods=["GET"], include_in_schema=False)


def metric_names(metrics: Metrics) -> Iterator[tuple[str, str, str]]:
    """(name, type, help) of every metric family on the registry, for docs and tests."""
    for family in metrics.registry.collect():
        yield family.name, family.type, family.documentation
