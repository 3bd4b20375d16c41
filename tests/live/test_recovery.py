"""Bad token ids never reach llama.cpp; a dead engine thread is replaced on the next request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = start_server(tmp_path_factory.mktemp("rec"), num_parallel=1, context_length=512)
    yield s
    s.stop()


def _generate(server: LiveServer, **extra: object) -> object:
    body = {"model": DEFAULT_MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    with server.client() as http:
        return http.post("/api/generate", json={**body, **extra})


@pytest.mark.parametrize("context", [[10**9], [-5], [1, 2, 49152]])
def test_out_of_range_context_tokens_are_400(server: LiveServer, context: list[int]) -> None:
    r = _generate(server, context=context)
    assert r.status_code == 400  # type: ignore[attr-defined]
    assert "error" in r.json()  # type: ignore[attr-defined]
    assert _generate(server).status_code == 200  # type: ignore[attr-defined]


def test_dead_engine_is_replaced(server: LiveServer) -> None:
    assert _generate(server).status_code == 200  # type: ignore[attr-defined]
    (loaded,) = server.scheduler().loaded()
    loaded.runner.stop()  # the engine thread ends, as it would after a fatal error
    assert not loaded.runner.alive
    with server.client() as http:
        assert http.get("/ready").status_code == 503
    r = _generate(server)
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    (again,) = server.scheduler().loaded()
    assert again.runner is not loaded.runner and again.runner.alive
    with server.client() as http:
        assert http.get("/ready").status_code == 200


def test_stop_never_loads_a_model(server: LiveServer) -> None:
    body = {"model": DEFAULT_MODEL, "keep_alive": 0, "stream": False}
    with server.client() as http:
        assert http.post("/api/generate", json=body).json()["done_reason"] == "unload"
        assert http.get("/api/ps").json()["models"] == []
        loads = server.scheduler().load_count
        r = http.post("/api/generate", json=body).json()
        chat = http.post("/api/chat", json={**body, "messages": []}).json()
    assert r["done_reason"] == chat["done_reason"] == "unload"
    assert server.scheduler().load_count == loads  # nothing was loaded just to unload it
