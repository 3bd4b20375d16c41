"""Metrics without a server: per-app registries, label mapping, speed parsing, the docs table."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from server.metrics import (
    ENGINE_METRICS,
    OTHER_ROUTE,
    Metrics,
    RequestRecord,
    generation_speed,
    metric_names,
    rejection_reason,
    route_label,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_two_apps_do_not_share_a_registry() -> None:
    # With the global registry the second Metrics() raises "Duplicated timeseries".
    first, second = Metrics(), Metrics()
    first.observe_request(RequestRecord("/api/tags", 200, 0.01))
    assert b'quantserve_requests_total{route="/api/tags",status="200"} 1.0' in generate_latest(
        first.registry
    )
    assert b"/api/tags" not in generate_latest(second.registry)


def test_route_label_is_the_template_or_other() -> None:
    route = SimpleNamespace(path="/api/blobs/{digest}")
    assert route_label({"route": route, "path": "/api/blobs/sha256-abc"}) == "/api/blobs/{digest}"
    assert route_label({"path": "/no/such/thing"}) == OTHER_ROUTE


@pytest.mark.parametrize(
    ("status", "retry_after", "reason"),
    [
        (200, False, None),
        (400, False, "invalid_request"),
        (405, False, "invalid_request"),
        (404, False, "model_not_found"),
        (499, False, "cancelled"),
        (503, True, "queue_full"),
        (503, False, "unavailable"),
        (500, False, "error"),
    ],
)
def test_rejection_reasons(status: int, retry_after: bool, reason: str | None) -> None:
    assert rejection_reason(status, retry_after=retry_after) == reason


def test_generation_speed_from_the_final_chunk() -> None:
    assert generation_speed(b'{"done":true,"eval_count":20,"eval_duration":2000000000}') == 10.0
    assert generation_speed(b'{"done":true,"eval_count":0,"eval_duration":5}') is None
    assert generation_speed(b'{"error":"boom"}') is None
    assert generation_speed(b"not json") is None
    assert generation_speed(b"[1,2]") is None


def test_unknown_routes_are_never_rejections_or_generations() -> None:
    m = Metrics()
    m.observe_request(RequestRecord(OTHER_ROUTE, 404, 0.001))
    text = generate_latest(m.registry).decode()
    assert 'quantserve_requests_total{route="other",status="404"} 1.0' in text
    assert "quantserve_rejected_requests_total{" not in text


def test_ttft_and_speed_only_for_served_generations() -> None:
    m = Metrics()
    final = b'{"done":true,"eval_count":10,"eval_duration":1000000000}'
    m.observe_request(RequestRecord("/api/generate", 200, 1.0, 0.2, True, final))
    m.observe_request(RequestRecord("/api/generate", 200, 1.0, 1.0, False, final))  # not streamed
    m.observe_request(RequestRecord("/api/tags", 200, 0.1, 0.1, False, b"{}"))
    m.observe_request(RequestRecord("/api/generate", 503, 0.0, 0.0, False, None, True))
    text = generate_latest(m.registry).decode()
    assert 'quantserve_time_to_first_token_seconds_count{route="/api/generate"} 1.0' in text
    assert 'quantserve_generation_tokens_per_second_count{route="/api/generate"} 2.0' in text
    assert 'quantserve_generation_tokens_per_second_sum{route="/api/generate"} 20.0' in text
    assert 'reason="queue_full",route="/api/generate"} 1.0' in text
    assert "/api/tags" not in text.split("quantserve_time_to_first_token_seconds")[1]


def _exposed(name: str, kind: str) -> str:
    return name + "_total" if kind == "counter" else name


def test_docs_list_every_metric_with_its_help() -> None:
    doc = DOCS.read_text()
    families = list(metric_names(Metrics()))
    assert len(families) == 5 + len(ENGINE_METRICS)
    for name, kind, help_text in families:
        row = re.search(rf"^\| `{_exposed(name, kind)}` \|.*$", doc, re.MULTILINE)
        assert row, f"{name} is not documented in docs/metrics.md"
        assert help_text in row.group(0), f"help text of {name} differs from docs/metrics.md"
        assert f"| {kind} |" in row.group(0)


def test_counters_of_replaced_runners_are_kept() -> None:
    # Real (never started) runners: the metrics must add up every runner a model ever had.
    from server.engine.params import LoadParams
    from server.engine.runner import Runner
    from server.engine.scheduler import Scheduler

    m = Metrics()
    factory = m.track_runners(Runner)
    load = LoadParams(num_ctx=64, num_batch=8, num_thread=1, num_parallel=1)
    first = factory("m:1", Path("unused.gguf"), load)
    first.counters.tokens_generated = 5
    first.counters.requests_finished["stop"] = 1
    second = factory("m:1", Path("unused.gguf"), load)  # `first` is folded in here
    second.counters.tokens_generated = 2
    second.counters.requests_finished["stop"] = 1
    m.watch(Scheduler(max_loaded=1, max_queue=4, load_timeout=None))
    for _ in range(2):  # scraping twice counts nothing twice
        text = generate_latest(m.registry).decode()
        assert 'quantserve_tokens_generated_total{model="m:1"} 7.0' in text
        assert 'quantserve_engine_requests_finished_total{model="m:1",reason="stop"} 2.0' in text
        assert "quantserve_models_loaded 0.0" in text
