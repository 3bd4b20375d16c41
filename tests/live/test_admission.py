"""Admission and overload: a bounded queue with 503 + Retry-After, and disconnects free slots.

Progress is observed through the runner's slot states, never through timing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.engine.slots import SlotState
from tests.conftest import DEFAULT_MODEL, LiveServer, start_server

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("adm"),
        num_parallel=1,
        max_queue=2,
        context_length=2048,
        num_batch=16,
    )
    with server.client() as http:  # load the model
        assert http.post("/api/generate", json={"model": DEFAULT_MODEL}).status_code == 200
    yield server
    server.stop()


def wait_until(check: Callable[[], bool], what: str, limit: float = 120.0) -> None:
    """Poll a condition (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def runner(live: LiveServer) -> Any:
    (loaded,) = live.scheduler().loaded()
    return loaded.runner


def state(live: LiveServer) -> SlotState:
    return runner(live).slot_states()[0].state


def open_request(live: LiveServer, body: dict[str, Any]) -> socket.socket:
    """Send a request on a raw socket and leave it open (closing it = the client leaving)."""
    host, port = live.host.split(":")
    sock = socket.create_connection((host, int(port)))
    data = json.dumps(body).encode()
    head = (
        f"POST /api/generate HTTP/1.1\r\nHost: {live.host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    sock.sendall(head + data)
    return sock


def long_generation() -> dict[str, Any]:
    return {
        "model": DEFAULT_MODEL,
        "prompt": COUNTING,
        "raw": True,
        "options": {"temperature": 0, "num_predict": 100000},
    }


def test_full_queue_is_an_immediate_503(one_slot: LiveServer) -> None:
    running = open_request(one_slot, long_generation())
    wait_until(lambda: state(one_slot) is SlotState.GENERATING, "the first request generates")
    queued = [open_request(one_slot, long_generation()) for _ in range(2)]
    wait_until(lambda: runner(one_slot).waiting == 2, "two requests wait for the slot")
    with one_slot.client() as http:
        r = http.post("/api/generate", json=long_generation())
        assert r.status_code == 503
        assert (
            r.json()["error"] == "server busy, please try again.  maximum pending requests exceeded"
        )
        assert r.headers["Retry-After"] == "1"
        # The bound holds for a loaded model (Ollama's #7758 lets these through).
        assert one_slot.scheduler().waiting() == 2
    for sock in [running, *queued]:
        sock.close()
    wait_until(lambda: runner(one_slot).waiting == 0, "the queue drains")
    wait_until(lambda: state(one_slot) is SlotState.IDLE, "the slot is freed")
    with one_slot.client() as http:
        ok = http.post(
            "/api/generate",
            json={
                "model": DEFAULT_MODEL,
                "prompt": "Hi",
                "stream": False,
                "options": {"num_predict": 2},
            },
        )
    assert ok.status_code == 200


def test_disconnect_while_generating_frees_the_slot(one_slot: LiveServer) -> None:
    sock = open_request(one_slot, long_generation())
    wait_until(lambda: state(one_slot) is SlotState.GENERATING, "generating")
    sock.close()
    wait_until(lambda: state(one_slot) is SlotState.IDLE, "slot freed after the client left")


def test_disconnect_while_queued_leaves_the_queue(one_slot: LiveServer) -> None:
    running = open_request(one_slot, long_generation())
    wait_until(lambda: state(one_slot) is SlotState.GENERATING, "generating")
    queued = open_request(one_slot, long_generation())
    wait_until(lambda: runner(one_slot).waiting == 1, "queued")
    queued.close()
    wait_until(lambda: runner(one_slot).waiting == 0, "left the queue")
    assert state(one_slot) is SlotState.GENERATING  # the running request is unaffected
    running.close()
    wait_until(lambda: state(one_slot) is SlotState.IDLE, "slot freed")


def test_disconnect_while_prefilling_stops_the_prefill(one_slot: LiveServer) -> None:
    prompt = "The quick brown fox jumps over the lazy dog. " * 150  # ~1500 tokens, 16 per step
    body = {"model": DEFAULT_MODEL, "prompt": prompt, "raw": True, "options": {"num_predict": 4}}
    sock = open_request(one_slot, body)
    wait_until(lambda: state(one_slot) is SlotState.PREFILL, "prefilling")
    sock.close()
    wait_until(lambda: state(one_slot) is SlotState.IDLE, "slot freed during prefill")
    prompt_tokens = len(runner(one_slot).tokenize(prompt))
    assert runner(one_slot).slot_states()[0].cached_tokens < prompt_tokens


def test_long_prompt_does_not_stall_running_streams(one_slot: LiveServer, tmp_path: Any) -> None:
    # Chunked prefill: with two slots, a stream keeps receiving tokens while a long prompt
    # is prefilled next to it (checked by counting stream chunks during the other's prefill).
    server = start_server(tmp_path, num_parallel=2, context_length=2048, num_batch=16)
    try:
        seen: list[int] = []
        stop = threading.Event()

        def stream() -> None:
            with (
                httpx.Client(base_url=server.url, timeout=300) as http,
                http.stream("POST", "/api/generate", json=long_generation()) as r,
            ):
                for line in r.iter_lines():
                    if line:
                        seen.append(1)
                    if stop.is_set():
                        return

        t = threading.Thread(target=stream, daemon=True)
        t.start()
        wait_until(lambda: len(seen) > 2, "the stream runs")
        prompt = "The quick brown fox jumps over the lazy dog. " * 150
        sock = open_request(server, {"model": DEFAULT_MODEL, "prompt": prompt, "raw": True})
        run = runner(server)
        wait_until(
            lambda: any(s.state is SlotState.PREFILL for s in run.slot_states()), "prefill started"
        )
        during = len(seen)
        wait_until(lambda: len(seen) >= during + 10, "the stream advances during the prefill")
        assert any(s.state is SlotState.PREFILL for s in run.slot_states())
        sock.close()
        stop.set()
        t.join(60)
    finally:
        server.stop()


def test_waiting_requests_start_in_arrival_order(one_slot: LiveServer) -> None:
    running = open_request(one_slot, long_generation())
    wait_until(lambda: state(one_slot) is SlotState.GENERATING, "generating")
    finished: list[str] = []

    def short(tag: str) -> None:
        body = {"model": DEFAULT_MODEL, "prompt": f"{tag}: 1, 2, 3,", "raw": True, "stream": False}
        with httpx.Client(base_url=one_slot.url, timeout=300) as http:
            r = http.post("/api/generate", json={**body, "options": {"num_predict": 3}})
        assert r.status_code == 200
        finished.append(tag)

    threads = []
    for n, tag in enumerate(["first", "second"], start=1):
        t = threading.Thread(target=short, args=(tag,))
        t.start()
        threads.append(t)
        wait_until(lambda n=n: runner(one_slot).waiting == n, f"{tag} is queued")
    running.close()
    for t in threads:
        t.join(300)
    # One slot: the second could only start once the first had finished.
    assert finished == ["first", "second"]
