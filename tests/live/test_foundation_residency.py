"""Issue #2 item 7: keep_alive load/unload/expiry, OLLAMA_MAX_LOADED_MODELS LRU eviction, and a
client that goes away mid-request (the next request is still served).

Dedicated servers with one slot per model (so a generation nobody reads would block the next
request), at most two models loaded, and a 7-minute default keep_alive.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from models.store import ModelStore
from tests.conftest import DEFAULT_MODEL, LiveServer, start_server

MODEL_B = "smollm2-b:latest"
MODEL_C = "smollm2-c:latest"
DEFAULT_KEEP_ALIVE = 7 * 60
FAR_FUTURE_YEAR = 2200
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"


def _add_models(store: ModelStore) -> None:
    """Two more models on the default model's blob, with their own params (loaded separately)."""
    base = store.resolve(DEFAULT_MODEL)
    blob = "sha256:" + base.model_path.name.removeprefix("sha256-")
    for name, temperature in ((MODEL_B, 0.1), (MODEL_C, 0.2)):
        store.create_model(
            name,
            model_blob=blob,
            template=base.template,
            params={"stop": ["<|im_end|>"], "temperature": temperature},
            config=base.config,
        )


def _server(root: Path, **overrides: Any) -> LiveServer:
    server = start_server(root, num_parallel=1, **overrides)
    _add_models(server.store)
    return server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = _server(tmp_path_factory.mktemp("residency"), max_loaded_models=2, keep_alive="7m")
    yield server
    server.stop()


def _gen(srv: LiveServer, model: str = DEFAULT_MODEL, **body: Any) -> dict[str, Any]:
    with srv.client() as c:
        r = c.post("/api/generate", json={"model": model, "stream": False, **body})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _chat(srv: LiveServer, model: str = DEFAULT_MODEL, **body: Any) -> dict[str, Any]:
    with srv.client() as c:
        r = c.post("/api/chat", json={"model": model, "stream": False, **body})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _ps(srv: LiveServer) -> dict[str, dict[str, Any]]:
    with srv.client() as c:
        models = c.get("/api/ps").json()["models"]
    return {m["name"]: m for m in models}


def _expires(srv: LiveServer, model: str = DEFAULT_MODEL) -> datetime:
    value = _ps(srv)[model]["expires_at"]
    head, _, frac = value.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6].ljust(6, '0')}+00:00")


def _wait_for(condition: Callable[[], bool], what: str, deadline_s: float = 120) -> None:
    """Poll until ``condition`` holds (a deadline against hangs, not a timing assertion)."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def _unload_all(srv: LiveServer) -> None:
    for name in list(_ps(srv)):
        _gen(srv, name, prompt="", keep_alive=0)
    _wait_for(lambda: not _ps(srv), "every model unloaded")


# -- load / unload ------------------------------------------------------------------------------
def test_empty_prompt_loads_and_keep_alive_zero_unloads(srv: LiveServer) -> None:
    _unload_all(srv)
    loaded = _gen(srv, prompt="")
    assert loaded["done"] is True and loaded["done_reason"] == "load"
    assert loaded["response"] == ""
    assert DEFAULT_MODEL in _ps(srv)
    unloaded = _gen(srv, prompt="", keep_alive=0)
    assert unloaded["done"] is True and unloaded["done_reason"] == "unload"
    _wait_for(lambda: DEFAULT_MODEL not in _ps(srv), "unload after keep_alive 0")


def test_empty_chat_loads_and_keep_alive_zero_unloads(srv: LiveServer) -> None:
    _unload_all(srv)
    loaded = _chat(srv, messages=[])
    assert loaded["done_reason"] == "load"
    assert loaded["message"] == {"role": "assistant", "content": ""}
    assert DEFAULT_MODEL in _ps(srv)
    assert _chat(srv, messages=[], keep_alive=0)["done_reason"] == "unload"
    _wait_for(lambda: DEFAULT_MODEL not in _ps(srv), "unload after keep_alive 0")


def test_load_and_unload_through_the_client(srv: LiveServer) -> None:
    client = ollama.Client(host=srv.url, timeout=300)
    assert client.generate(DEFAULT_MODEL, "").done_reason == "load"
    assert DEFAULT_MODEL in {m.model for m in client.ps().models}
    assert client.generate(DEFAULT_MODEL, "", keep_alive=0).done_reason == "unload"
    _wait_for(lambda: DEFAULT_MODEL not in _ps(srv), "unload after keep_alive 0")


def test_keep_alive_zero_unloads_after_a_generation(srv: LiveServer) -> None:
    out = _gen(srv, prompt=COUNTING, raw=True, keep_alive=0, options={"num_predict": 2})
    assert out["eval_count"] == 2  # the request itself was served in full
    _wait_for(lambda: DEFAULT_MODEL not in _ps(srv), "unload right after the request")


# -- expires_at -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keep_alive", "seconds"),
    [(600, 600), (90.5, 90.5), ("1h", 3600), ("30m", 1800), ("1h30m", 5400), (None, 420)],
)
def test_expires_at_reflects_keep_alive(
    srv: LiveServer, keep_alive: str | float | None, seconds: float
) -> None:
    body: dict[str, Any] = {"prompt": ""}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    before = datetime.now(UTC).timestamp()
    _gen(srv, **body)
    expires = _expires(srv).timestamp()
    after = datetime.now(UTC).timestamp()
    assert before + seconds - 1 <= expires <= after + seconds + 1


@pytest.mark.parametrize("keep_alive", [-1, -0.5, "-1m", "-1"])
def test_negative_keep_alive_is_forever(srv: LiveServer, keep_alive: str | float) -> None:
    _gen(srv, prompt="", keep_alive=keep_alive)
    assert _expires(srv).year >= FAR_FUTURE_YEAR
    _gen(srv, prompt="", keep_alive="5m")  # back to a finite value
    assert _expires(srv).year < FAR_FUTURE_YEAR


@pytest.mark.parametrize("keep_alive", [1, "1s"])
def test_model_unloads_when_keep_alive_expires(srv: LiveServer, keep_alive: str | int) -> None:
    _gen(srv, prompt=COUNTING, raw=True, keep_alive=keep_alive, options={"num_predict": 1})
    _wait_for(lambda: DEFAULT_MODEL not in _ps(srv), "expiry after keep_alive")


def test_a_new_request_resets_the_timer(srv: LiveServer) -> None:
    _gen(srv, prompt="", keep_alive="2m")
    first = _expires(srv)
    _gen(srv, prompt="", keep_alive="1h")  # the latest request's keep_alive sticks
    assert (_expires(srv) - first).total_seconds() > 3000


def test_ps_is_sorted_by_expiry(srv: LiveServer) -> None:
    _unload_all(srv)
    _gen(srv, MODEL_B, prompt="", keep_alive="10m")
    _gen(srv, DEFAULT_MODEL, prompt="", keep_alive="1h")
    with srv.client() as c:
        names = [m["name"] for m in c.get("/api/ps").json()["models"]]
    assert names == [DEFAULT_MODEL, MODEL_B]


# -- max loaded models ------------------------------------------------------------------------
def test_least_recently_used_idle_model_is_evicted(srv: LiveServer) -> None:
    _unload_all(srv)
    _gen(srv, DEFAULT_MODEL, prompt="")
    _gen(srv, MODEL_B, prompt="")
    assert set(_ps(srv)) == {DEFAULT_MODEL, MODEL_B}
    _gen(srv, DEFAULT_MODEL, prompt=COUNTING, raw=True, options={"num_predict": 1})  # A is used
    out = _gen(srv, MODEL_C, prompt=COUNTING, raw=True, options={"num_predict": 2})
    assert out["eval_count"] == 2
    assert set(_ps(srv)) == {DEFAULT_MODEL, MODEL_C}  # B was the least recently used


def test_one_model_at_most(tmp_path: Path) -> None:
    server = _server(tmp_path, max_loaded_models=1, keep_alive="-1m")
    try:
        _gen(server, DEFAULT_MODEL, prompt="")
        ps = _ps(server)
        assert list(ps) == [DEFAULT_MODEL]
        assert _expires(server).year >= FAR_FUTURE_YEAR  # OLLAMA_KEEP_ALIVE<0: forever
        _gen(server, MODEL_B, prompt="")
        assert list(_ps(server)) == [MODEL_B]  # evicted, even though kept "forever"
    finally:
        server.stop()


def test_a_busy_model_is_not_evicted(tmp_path: Path) -> None:
    server = _server(tmp_path, max_loaded_models=1)
    try:
        lines: list[dict[str, Any]] = []
        first = threading.Event()

        def stream() -> None:
            body = {
                "model": DEFAULT_MODEL,
                "prompt": COUNTING,
                "raw": True,
                "options": {"temperature": 0, "num_predict": 16},
            }
            with server.client() as c, c.stream("POST", "/api/generate", json=body) as r:
                for line in r.iter_lines():
                    if line.strip():
                        lines.append(json.loads(line))
                        first.set()

        worker = threading.Thread(target=stream)
        worker.start()
        assert first.wait(120)
        out = _gen(server, MODEL_B, prompt=COUNTING, raw=True, options={"num_predict": 2})
        worker.join(120)
        assert out["eval_count"] == 2
        # The first stream finished normally: B waited for it instead of evicting it.
        assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 16
        assert not any("error" in line for line in lines)
    finally:
        server.stop()


# -- clients that go away ---------------------------------------------------------------------
# Counting on from a raw "1, 2, ..., 8," never emits EOS; num_predict is capped at 10 x num_ctx,
# which is many minutes of work here: only a cancelled generation lets the next one in.
ENDLESS = {"temperature": 0, "num_predict": 100_000}


def _runner(srv: LiveServer) -> Any:
    loaded = srv.scheduler().get("registry.ollama.ai/library/smollm2/135m")
    assert loaded is not None
    return loaded.runner


def _abandon_stream(srv: LiveServer) -> None:
    body = {"model": DEFAULT_MODEL, "prompt": COUNTING, "raw": True, "options": ENDLESS}
    with srv.client() as c, c.stream("POST", "/api/generate", json=body) as r:
        lines = r.iter_lines()
        assert json.loads(next(lines))["done"] is False
        assert json.loads(next(lines))["done"] is False  # generating, not prefilling


def test_disconnect_mid_stream_frees_the_slot(srv: LiveServer) -> None:
    _gen(srv, prompt="")
    _abandon_stream(srv)
    # One slot: this is only served if the abandoned generation stopped.
    out = _gen(srv, prompt=COUNTING, raw=True, options={"num_predict": 3})
    assert out["eval_count"] == 3
    assert _runner(srv).active == 0


def test_disconnect_while_waiting_for_a_non_streamed_answer(srv: LiveServer) -> None:
    _gen(srv, prompt="")
    body = {"model": DEFAULT_MODEL, "prompt": COUNTING, "raw": True, "options": ENDLESS}
    timeout = httpx.Timeout(60, read=3)
    with (
        httpx.Client(base_url=srv.url, timeout=timeout) as c,
        pytest.raises(httpx.ReadTimeout),
    ):
        c.post("/api/generate", json={**body, "stream": False})
    out = _gen(srv, prompt=COUNTING, raw=True, options={"num_predict": 3})
    assert out["eval_count"] == 3
    assert _runner(srv).active == 0


def test_an_abandoned_generation_is_counted_as_cancelled(srv: LiveServer) -> None:
    _gen(srv, prompt="")
    counters = _runner(srv).counters
    before = counters.requests_finished.get("cancelled", 0)
    _abandon_stream(srv)
    _gen(srv, prompt=COUNTING, raw=True, options={"num_predict": 1})
    assert counters.requests_finished.get("cancelled", 0) == before + 1
