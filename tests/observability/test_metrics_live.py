"""/metrics on a real server with the real model: request, token, queue, slot and KV figures.

One dedicated server (2 slots, a waiting line of 1) so the counts are this module's alone.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer, start_server
from tests.observability.metrics_helpers import Samples, scrape, value, wait_for

GEN = "/api/generate"
# A raw counting prompt keeps the model going until the stream is closed.
COUNTING = {"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,", "raw": True}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("metrics-store"), num_parallel=2, max_queue=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def generate(client: httpx.Client, prompt: str, n: int = 4, **extra: Any) -> dict[str, Any]:
    body = {"model": DEFAULT_MODEL, "prompt": prompt, "stream": False, **extra}
    body["options"] = {"temperature": 0, "num_predict": n}
    r = client.post(GEN, json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def generate_streamed(client: httpx.Client, prompt: str, n: int = 4) -> dict[str, Any]:
    body = {
        "model": DEFAULT_MODEL,
        "prompt": prompt,
        "options": {"temperature": 0, "num_predict": n},
    }
    with client.stream("POST", GEN, json=body) as r:
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.iter_lines() if line]
    final: dict[str, Any] = lines[-1]
    assert final["done"]
    return final


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_generations_are_counted(client: httpx.Client) -> None:
    before = scrape(client)
    finals = [
        generate(client, "Name a color."),
        generate(client, "Name a color."),  # same prompt: served from the slot's cache
        generate_streamed(client, "Name a fruit."),
    ]
    after = scrape(client)
    model, route = {"model": DEFAULT_MODEL}, {"route": GEN}
    assert delta(after, before, "quantserve_requests_total", **route, status="200") == 3
    assert delta(after, before, "quantserve_request_duration_seconds_count", **route) == 3
    assert delta(after, before, "quantserve_prompt_tokens_total", **model) == sum(
        f["prompt_eval_count"] for f in finals
    )
    assert delta(after, before, "quantserve_prompt_tokens_cached_total", **model) > 0
    assert delta(after, before, "quantserve_tokens_generated_total", **model) > 0
    finished = delta(
        after, before, "quantserve_engine_requests_finished_total", **model, reason="length"
    )
    assert finished == sum(f["done_reason"] == "length" for f in finals)
    # Time to first token: the streamed request only; generation speed: all three.
    assert delta(after, before, "quantserve_time_to_first_token_seconds_count", **route) == 1
    assert delta(after, before, "quantserve_generation_tokens_per_second_count", **route) == 3
    speeds = [f["eval_count"] / f["eval_duration"] * 1e9 for f in finals]
    got = delta(after, before, "quantserve_generation_tokens_per_second_sum", **route)
    assert got == pytest.approx(sum(speeds), rel=1e-6)


def test_tokens_generated_matches_eval_count(client: httpx.Client) -> None:
    before = scrape(client)
    finals = [generate(client, "Name an animal.", n=3), generate(client, "Name a city.", n=3)]
    after = scrape(client)
    got = delta(after, before, "quantserve_tokens_generated_total", model=DEFAULT_MODEL)
    assert got == sum(f["eval_count"] for f in finals)


def test_engine_gauges(client: httpx.Client, server: LiveServer) -> None:
    generate(client, "Hello there.")
    model = {"model": DEFAULT_MODEL}

    def released() -> Samples | None:
        m = scrape(client)
        return m if value(m, "quantserve_active_slots", **model) == 0 else None

    s = wait_for(released, "the slots to be released")
    assert value(s, "quantserve_models_loaded") == 1
    assert value(s, "quantserve_model_loads_total") == 1
    assert value(s, "quantserve_slots", **model) == 2
    assert value(s, "quantserve_queue_depth") == 0
    assert value(s, "quantserve_requests_waiting", **model) == 0
    assert value(s, "quantserve_kv_cache_cells", **model) == 2048 * 2
    loaded = server.scheduler().loaded()[0]
    cached = sum(slot.cached_tokens for slot in loaded.runner.slot_states())
    assert value(s, "quantserve_kv_cache_cells_used", **model) == cached > 0
    assert value(s, "quantserve_kv_cache_bytes", **model) == loaded.kv_bytes > 0
    assert value(s, "quantserve_model_memory_bytes", **model) == loaded.size_bytes
    assert value(s, "quantserve_model_load_seconds", **model) == loaded.runner.load_seconds > 0


def test_labels_stay_bounded(client: httpx.Client) -> None:
    before = scrape(client)
    assert client.get("/api/no/such/path/12345").status_code == 404
    ghost = client.post(GEN, json={"model": "ghost-model-xyz", "prompt": "hi"})
    assert ghost.status_code == 404
    assert client.post(GEN, content=b"{not json").status_code == 400
    text = client.get("/metrics").text
    assert "ghost-model-xyz" not in text
    assert "/api/no/such" not in text
    after = scrape(client)
    assert delta(after, before, "quantserve_requests_total", route="other", status="404") == 1
    rejected = "quantserve_rejected_requests_total"
    assert delta(after, before, rejected, route=GEN, reason="model_not_found") == 1
    assert delta(after, before, rejected, route=GEN, reason="invalid_request") == 1
    models = {dict(labels).get("model") for (_, labels) in after} - {None}
    assert models == {DEFAULT_MODEL}


def _open_stream(client: httpx.Client) -> tuple[httpx.Response, Iterator[str]]:
    body = {"model": DEFAULT_MODEL, **COUNTING, "options": {"temperature": 0, "num_predict": 1500}}
    response = client.send(client.build_request("POST", GEN, json=body), stream=True)
    assert response.status_code == 200
    lines = response.iter_lines()
    next(lines)  # the first token: this request holds a slot
    # Keep the iterator: dropping it closes the connection (httpcore closes on GeneratorExit).
    return response, lines


def test_queue_depth_queue_full_and_cancellations(client: httpx.Client, server: LiveServer) -> None:
    before = scrape(client)
    model = {"model": DEFAULT_MODEL}
    with server.client() as c1, server.client() as c2, server.client() as c3:
        streams = [_open_stream(c1), _open_stream(c2)]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(generate, c3, "Say yes.", 2)
            wait_for(
                lambda: value(scrape(client), "quantserve_queue_depth") == 1,
                "the third request to wait for a slot",
            )
            s = scrape(client)
            assert value(s, "quantserve_active_slots", **model) == 2
            assert value(s, "quantserve_requests_waiting", **model) == 1
            full = client.post(GEN, json={"model": DEFAULT_MODEL, "prompt": "x", "stream": False})
            assert full.status_code == 503
            assert full.headers["retry-after"]
            for r, _ in streams:  # the clients go away mid-stream
                r.close()
            assert waiting.result(timeout=120)["done"]
    rejected = "quantserve_rejected_requests_total"

    def settled() -> Samples | None:
        s = scrape(client)
        return s if delta(s, before, rejected, route=GEN, reason="cancelled") == 2 else None

    after = wait_for(settled, "both disconnects to be counted")
    assert delta(after, before, rejected, route=GEN, reason="queue_full") == 1
    assert delta(after, before, "quantserve_requests_total", route=GEN, status="499") == 2
    assert delta(after, before, "quantserve_requests_total", route=GEN, status="503") == 1
    assert delta(after, before, "quantserve_requests_total", route=GEN, status="200") == 1
    wait_for(
        lambda: value(scrape(client), "quantserve_active_slots", **model) == 0,
        "the engine to free both slots",
    )


def test_counters_survive_an_unload(client: httpx.Client, server: LiveServer) -> None:
    # Runs last: it unloads the module's model.
    generate(client, "One more.", keep_alive=0)
    model = {"model": DEFAULT_MODEL}
    wait_for(lambda: value(scrape(client), "quantserve_models_loaded") == 0, "the model to unload")
    s = scrape(client)
    assert value(s, "quantserve_tokens_generated_total", **model) > 0
    assert value(s, "quantserve_prompt_tokens_total", **model) > 0
    assert ("quantserve_slots", frozenset(model.items())) not in s  # gauges: resident models only
    before_reload = value(s, "quantserve_tokens_generated_total", **model)
    generate(client, "And again.")
    s = scrape(client)
    assert value(s, "quantserve_model_loads_total") == 2
    assert value(s, "quantserve_tokens_generated_total", **model) > before_reload


def test_metrics_path_is_exact(client: httpx.Client, tmp_path: Path) -> None:
    r = client.get("/metrics", follow_redirects=False)
    assert r.status_code == 200
    assert "# HELP quantserve_requests_total" in r.text
