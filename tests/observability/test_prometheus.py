"""A real Prometheus (Debian's package, installed by ``make prometheus``) scrapes a real server.

Prometheus runs on loopback with a 1 s scrape interval; after a few requests, PromQL queries
through its HTTP API must return the request and token counts the server reported.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer, free_port, start_server
from tests.observability.metrics_helpers import wait_for

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: quantserve
    static_configs:
      - targets: ["{target}"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("prom-store"), num_parallel=2)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def prometheus(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `make prometheus` (make test does)")
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(SCRAPE_CONFIG.format(target=server.host))
    port = free_port()
    log = (home / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url, proc, home / "prometheus.log"), "prometheus to start", 120)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        log.close()


def _ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"prometheus exited ({proc.returncode}): {log.read_text()[-2000:]}")
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def query(url: str, promql: str) -> float | None:
    """The single value of an instant query, or None while it has no result."""
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    if not result:
        return None
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_sees_requests_and_tokens(server: LiveServer, prometheus: str) -> None:
    options = {"temperature": 0, "num_predict": 4}
    finals: list[dict[str, Any]] = []
    with server.client() as client:
        for prompt in ("Name a planet.", "Name a river."):
            r = client.post(
                "/api/generate",
                json={
                    "model": DEFAULT_MODEL,
                    "prompt": prompt,
                    "stream": False,
                    "options": options,
                },
            )
            assert r.status_code == 200, r.text
            finals.append(r.json())
        r = client.post(
            "/api/chat",
            json={
                "model": DEFAULT_MODEL,
                "messages": [{"role": "user", "content": "Name a tree."}],
                "stream": False,
                "options": options,
            },
        )
        assert r.status_code == 200, r.text
        finals.append(r.json())
        assert client.post("/api/generate", json={"model": "no-such-model"}).status_code == 404
    runner = server.scheduler().loaded()[0].runner
    expected = {
        'sum(quantserve_requests_total{route="/api/generate",status="200"})': 2,
        'sum(quantserve_requests_total{route="/api/chat",status="200"})': 1,
        'sum(quantserve_rejected_requests_total{reason="model_not_found"})': 1,
        f'quantserve_prompt_tokens_total{{model="{DEFAULT_MODEL}"}}': sum(
            f["prompt_eval_count"] for f in finals
        ),
        f'quantserve_tokens_generated_total{{model="{DEFAULT_MODEL}"}}': (
            runner.counters.tokens_generated
        ),
        'sum(quantserve_generation_tokens_per_second_count{route=~"/api/(generate|chat)"})': 3,
        "quantserve_models_loaded": 1,
    }
    assert runner.counters.tokens_generated > 0

    seen: dict[str, float | None] = {}

    def all_seen() -> bool:
        seen.update({q: query(prometheus, q) for q in expected})
        return seen == expected

    try:
        wait_for(all_seen, "Prometheus to scrape the expected counts", timeout=120)
    except AssertionError:
        assert seen == expected  # shows which query disagrees
        raise
    up = query(prometheus, 'up{job="quantserve"}')
    assert up == 1
