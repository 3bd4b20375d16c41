"""The synchronous Client: same builders, plain calls, plain iterators."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients import Client, ConnectError, GenerateResponse, ResponseError

FINAL = {"response": "", "done": True, "eval_count": 3, "eval_duration": 1_000_000_000}


def test_plain_function_generate_and_stream(
    ndjson: Callable[..., httpx.Response], body_of: Any
) -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(body_of(request))
        if body_of(request)["stream"]:
            return ndjson({"response": "a"}, {"response": "b"}, FINAL)
        return httpx.Response(200, json={**FINAL, "response": "ab"})

    with Client("h", transport=httpx.MockTransport(handler)) as client:
        whole = client.generate("m", "p", options={"temperature": 0})
        parts = list(client.generate("m", "p", stream=True))
    assert isinstance(whole, GenerateResponse) and whole.response == "ab"
    assert [p.response for p in parts] == ["a", "b", ""]
    assert parts[-1].tokens_per_second == 3.0
    assert seen == [
        {"model": "m", "prompt": "p", "stream": False, "options": {"temperature": 0}},
        {"model": "m", "prompt": "p", "stream": True},
    ]


def test_sync_stream_is_lazy_and_closes_its_response(ndjson: Callable[..., httpx.Response]) -> None:
    closed: list[bool] = []

    class Tracking(httpx.SyncByteStream):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def __iter__(self) -> Iterator[bytes]:
            yield from self.data.splitlines(keepends=True)

        def close(self) -> None:
            closed.append(True)

    def handler(request: httpx.Request) -> httpx.Response:
        body = ndjson({"response": "a"}, {"response": "b"}, FINAL).content
        return httpx.Response(200, stream=Tracking(body))

    calls = 0

    def counting(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return handler(request)

    with Client("h", transport=httpx.MockTransport(counting)) as client:
        stream = client.generate("m", "p", stream=True)
        assert calls == 0  # nothing is sent until iteration starts
        first = next(iter(stream))
        assert first.response == "a"
        stream.close()  # type: ignore[attr-defined]
    assert calls == 1
    assert closed == [True]


def test_sync_errors_before_and_during_a_stream(ndjson: Callable[..., httpx.Response]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/show":
            return httpx.Response(404, json={"error": "model 'x' not found"})
        return ndjson({"status": "pulling manifest"}, {"error": "manifest unknown"})

    with Client("h", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ResponseError) as before:
            client.show("x")
        with pytest.raises(ResponseError) as during:
            list(client.pull("x", stream=True))
    assert (before.value.status_code, before.value.error) == (404, "model 'x' not found")
    assert (during.value.status_code, during.value.error) == (200, "manifest unknown")


def test_sync_connect_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with Client("h", transport=httpx.MockTransport(handler)) as client, pytest.raises(ConnectError):
        client.list()


def test_sync_create_blob_streams_a_file(tmp_path: Path, recorder: Any) -> None:
    data = b"GGUF" + bytes(3 << 20)
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    rec = recorder(lambda r: httpx.Response(404 if r.method == "HEAD" else 201))
    with Client("h", transport=rec.transport) as client:
        digest = client.create_blob(str(path))
    assert digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert [r.method for r in rec.requests] == ["HEAD", "POST"]
    assert rec.requests[1].content == data


def test_sync_client_works_from_other_threads_and_inside_an_event_loop() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"version": "1.2.3"})

    client = Client("h", transport=httpx.MockTransport(handler))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.version().version)) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def inside_a_loop() -> str:
        return client.version().version

    results.append(asyncio.run(inside_a_loop()))
    client.close()
    assert results == ["1.2.3"] * 4


class _AsyncOnly(httpx.AsyncBaseTransport):
    """An async transport (no sync face): it records the thread each request is handled on."""

    def __init__(self, ndjson: Callable[..., httpx.Response]) -> None:
        self.ndjson = ndjson
        self.threads: list[threading.Thread] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.current_thread())
        if request.url.path == "/api/generate":
            return self.ndjson({"response": "a"}, {"response": "b"}, FINAL)
        return httpx.Response(200, json={"version": "1.2.3"})


def test_sync_client_works_inside_a_running_event_loop_on_its_own_loop_thread(
    ndjson: Callable[..., httpx.Response],
) -> None:
    transport = _AsyncOnly(ndjson)
    client = Client("h", transport=transport)

    async def inside_a_loop() -> tuple[str, list[str]]:
        # Blocking calls from a thread that runs a loop: they must not touch this loop.
        version = client.version().version
        parts = [p.response for p in client.generate("m", "p", stream=True)]
        return version, parts

    assert asyncio.run(inside_a_loop()) == ("1.2.3", ["a", "b", ""])
    client.close()
    assert len(transport.threads) == 2
    assert all(t is not threading.current_thread() for t in transport.threads)
    assert not any(t.is_alive() for t in transport.threads)  # close() stopped the loop thread


class _EndlessStream(http.server.BaseHTTPRequestHandler):
    """`/api/generate` streams chunks until the client goes away; anything else answers at once."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        line = json.dumps({"response": "x"}).encode() + b"\n"
        with contextlib.suppress(OSError):
            for _ in range(100_000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                time.sleep(0.001)

    def do_GET(self) -> None:
        body = json.dumps({"version": "1.2.3"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_closing_a_half_read_stream_releases_its_connection() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EndlessStream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # One connection in the pool: if the half-read stream kept it, the next request could not
    # get one and would fail with a pool timeout.
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with Client(host, transport=transport, timeout=httpx.Timeout(10.0)) as client:
            stream = client.generate("m", "p", stream=True)
            assert [next(stream).response for _ in range(3)] == ["x", "x", "x"]
            stream.close()  # type: ignore[attr-defined]
            assert client.version().version == "1.2.3"
            assert list(stream) == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
