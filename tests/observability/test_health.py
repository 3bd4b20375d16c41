"""/, /health and /ready on a dedicated server whose store and engine the tests break."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("health-store"), num_parallel=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def assert_live(client: httpx.Client) -> None:
    assert client.get("/").text == "Ollama is running"
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_when_all_is_well(client: httpx.Client) -> None:
    assert_live(client)
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


def test_not_ready_when_the_store_root_is_a_file(client: httpx.Client, server: LiveServer) -> None:
    root = server.store.root
    moved = root.with_name(root.name + ".moved")
    root.rename(moved)
    root.write_text("not a directory")
    try:
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        assert "not a directory" in r.json()["reason"]
        assert_live(client)
    finally:
        root.unlink()
        moved.rename(root)
    assert client.get("/ready").status_code == 200


def test_not_ready_when_the_manifests_cannot_be_listed(
    client: httpx.Client, server: LiveServer
) -> None:
    manifests = server.store.root / "manifests"
    moved = manifests.with_name("manifests.moved")
    manifests.rename(moved)
    manifests.write_text("")
    try:
        r = client.get("/ready")
        assert r.status_code == 503
        assert r.json()["reason"].startswith("store unreadable")
    finally:
        manifests.unlink()
        moved.rename(manifests)
    assert client.get("/ready").status_code == 200


def test_not_ready_when_an_engine_thread_stops(client: httpx.Client, server: LiveServer) -> None:
    # Runs last: it kills the module's engine. A stream in flight ends with an error line that
    # carries the request's transaction id.
    body = {
        "model": DEFAULT_MODEL,
        "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,",
        "raw": True,
        "options": {"temperature": 0, "num_predict": 1500},
    }
    headers = {"X-Transaction-Id": "stream-tx-9"}
    with client.stream("POST", "/api/generate", json=body, headers=headers) as r:
        assert r.headers["x-transaction-id"] == "stream-tx-9"
        lines = r.iter_lines()
        assert json.loads(next(lines))["done"] is False
        runner = server.scheduler().loaded()[0].runner
        runner.stop()
        assert not runner.alive
        last = json.loads([line for line in lines if line][-1])
    assert last["error"]
    assert last["transaction_id"] == "stream-tx-9"
    r = client.get("/ready")
    assert r.status_code == 503
    assert f"engine thread stopped for {DEFAULT_MODEL}" in r.json()["reason"]
    assert r.json()["models"] == [{"name": DEFAULT_MODEL, "engine": "stopped"}]
    assert_live(client)


def test_store_check_accepts_a_missing_root(tmp_path: Path) -> None:
    from server.api.routes.health import store_problem

    assert store_problem(tmp_path / "not-yet") is None
    assert store_problem(tmp_path) is None
    (tmp_path / "file").write_text("")
    assert store_problem(tmp_path / "file") is not None
