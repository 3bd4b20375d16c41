"""Transaction ids on a real server: echoed, generated, in error bodies, in every log line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from server.request_context import valid_transaction_id
from tests.conftest import DEFAULT_MODEL, THREADS, LiveServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def test_given_id_is_echoed(live: LiveServer) -> None:
    with live.client() as c:
        r = c.get("/api/version", headers={"X-Transaction-Id": "client-tx:42"})
        assert r.headers["x-transaction-id"] == "client-tx:42"
        r = c.get("/api/version", headers={"X-Request-Id": "req.7"})
        assert r.headers["x-transaction-id"] == "req.7"


def test_missing_or_malformed_id_gets_a_fresh_one(live: LiveServer) -> None:
    with live.client() as c:
        first = c.get("/health").headers["x-transaction-id"]
        second = c.get("/health").headers["x-transaction-id"]
        bad = c.get("/health", headers={"X-Transaction-Id": "a" * 129})
        spaced = c.get("/health", headers={"X-Transaction-Id": "not valid"})
    ids = [first, second, bad.headers["x-transaction-id"], spaced.headers["x-transaction-id"]]
    assert len(set(ids)) == 4
    assert all(valid_transaction_id(i) and len(i) == 32 for i in ids)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/generate", {"model": "no-such-model:1b", "prompt": "hi"}, 404),
        ("/api/generate", b"{broken", 400),
        ("/api/chat", {"model": DEFAULT_MODEL, "messages": "not a list"}, 400),
        ("/api/show", {"model": "no-such-model:1b"}, 404),
    ],
)
def test_error_bodies_carry_the_id(
    live: LiveServer, path: str, body: dict[str, object] | bytes, status: int
) -> None:
    with live.client() as c:
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        r = c.post(path, headers={"X-Transaction-Id": "err-tx-1"}, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    assert r.json()["transaction_id"] == "err-tx-1"
    assert r.json()["error"]


def _serve(store: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QUANTSERVE_HOST": f"127.0.0.1:{port}",
        "QUANTSERVE_MODELS": str(store),
        "QUANTSERVE_LOG_FORMAT": "json",
        "QUANTSERVE_LOG_LEVEL": "INFO",
        "QUANTSERVE_NUM_THREAD": str(THREADS),
        "QUANTSERVE_NUM_PARALLEL": "1",
        "QUANTSERVE_CONTEXT_LENGTH": "512",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited early"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


def test_json_log_lines_carry_the_id_and_never_the_prompt(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path / "store", port)
    marker = "zebra-marker-8231"
    try:
        _wait_healthy(url, proc)
        with httpx.Client(base_url=url, timeout=120) as c:
            r = c.post(
                "/api/generate",
                headers={"X-Transaction-Id": "tx-load-1"},
                json={
                    "model": DEFAULT_MODEL,
                    "prompt": f"Repeat {marker}",
                    "stream": False,
                    "options": {"num_predict": 2},
                },
            )
            assert r.status_code == 200, r.text
            r = c.post("/api/show", headers={"X-Request-Id": "req-2"}, json={"model": "ghost"})
            assert r.status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    text = (out + err).decode()
    assert marker not in text  # prompts are never logged at INFO
    records = [json.loads(line) for line in text.splitlines() if line.strip()]  # all JSON
    by_id: dict[str, list[str]] = {}
    for rec in records:
        by_id.setdefault(rec.get("transaction_id", "-"), []).append(
            f"{rec['logger']}: {rec['message']}"
        )
    load = by_id["tx-load-1"]
    # The model load runs in the request's task, so its lines carry the request's id.
    assert any(m.startswith("server.engine.scheduler: loading ") for m in load), load
    assert any(m.startswith("server.engine.scheduler: loaded ") for m in load), load
    assert "server.request_context: POST /api/generate 200" in " ".join(load)
    assert any("POST /api/show 404" in m for m in by_id["req-2"])
    # One access line per request, each with its id; start-up lines carry none.
    access = [r for r in records if r["logger"] == "server.request_context"]
    assert access and all(valid_transaction_id(r.get("transaction_id", "")) for r in access)
    startup = [r for r in records if r["message"].startswith("Application startup complete")]
    assert startup and "transaction_id" not in startup[0]
