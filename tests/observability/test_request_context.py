"""Transaction ids: validation, header precedence, the logging filter, the body tail kept."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from server.logs import TEXT_FORMAT, JsonFormatter
from server.request_context import (
    RequestContextMiddleware,
    TransactionIdFilter,
    _Exchange,
    _transaction_id,
    incoming_transaction_id,
    new_transaction_id,
    valid_transaction_id,
)


@pytest.mark.parametrize("value", ["a", "abc-123", "A.b_c:d-e", "x" * 128, "0"])
def test_valid_ids(value: str) -> None:
    assert valid_transaction_id(value)


@pytest.mark.parametrize(
    "value", ["", "x" * 129, "has space", "new\nline", "semi;colon", "slash/", "é", "a,b"]
)
def test_invalid_ids(value: str) -> None:
    assert not valid_transaction_id(value)


def test_generated_ids_are_valid_and_unique() -> None:
    ids = {new_transaction_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(valid_transaction_id(i) for i in ids)


def test_transaction_id_header_wins_over_request_id() -> None:
    headers = [(b"X-Request-Id", b"req-1"), (b"x-transaction-id", b"tx-1")]
    assert incoming_transaction_id(headers) == "tx-1"
    assert incoming_transaction_id([(b"x-request-id", b"req-1")]) == "req-1"
    assert incoming_transaction_id([(b"content-type", b"x")]) is None


def test_malformed_incoming_id_is_refused() -> None:
    assert incoming_transaction_id([(b"x-transaction-id", b"bad id")]) is None
    assert incoming_transaction_id([(b"x-transaction-id", b"y" * 129)]) is None


def _log_through(formatter: logging.Formatter, txid: str | None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TransactionIdFilter())
    handler.setFormatter(formatter)
    log = logging.getLogger("tests.observability.filter")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    token = _transaction_id.set(txid)
    try:
        log.info("hello %s", "world")
    finally:
        _transaction_id.reset(token)
        log.removeHandler(handler)
    return stream.getvalue()


def test_filter_stamps_text_lines() -> None:
    assert "[tx-42]: hello world" in _log_through(logging.Formatter(TEXT_FORMAT), "tx-42")
    assert "[-]: hello world" in _log_through(logging.Formatter(TEXT_FORMAT), None)


def test_filter_stamps_json_lines() -> None:
    line = json.loads(_log_through(JsonFormatter(), "tx-7"))
    assert line["transaction_id"] == "tx-7"
    assert line["message"] == "hello world"
    assert "transaction_id" not in json.loads(_log_through(JsonFormatter(), None))


def test_exchange_keeps_only_the_last_line() -> None:
    ex = _Exchange(started_at=0.0, tail=bytearray())
    for chunk in (b'{"a":1}\n', b'{"b":2}\n{"c"', b":3}\n"):
        ex.feed(chunk)
    assert ex.tail is not None
    assert json.loads(bytes(ex.tail)) == {"c": 3}


def test_exchange_gives_up_on_huge_lines() -> None:
    ex = _Exchange(started_at=0.0, tail=bytearray())
    ex.feed(b"x" * (257 * 1024))
    assert ex.tail is None


async def _boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


async def _echo(request: Request) -> PlainTextResponse:
    from server.request_context import current_transaction_id

    return PlainTextResponse(current_transaction_id() or "")


@pytest.mark.anyio
async def test_middleware_sets_echoes_and_answers_crashes_with_the_id() -> None:
    app = Starlette(routes=[Route("/boom", _boom), Route("/echo", _echo)])
    app.add_middleware(RequestContextMiddleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/echo", headers={"X-Transaction-Id": "in-handler"})
        assert r.text == "in-handler"  # the handler sees the request's id
        assert r.headers["x-transaction-id"] == "in-handler"
        r = await c.get("/boom", headers={"X-Transaction-Id": "crash-1"})
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error", "transaction_id": "crash-1"}
    assert r.headers["x-transaction-id"] == "crash-1"
    assert _transaction_id.get() is None  # reset after the request
