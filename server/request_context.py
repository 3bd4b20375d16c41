"""Per-request context: the transaction id, the ASGI middleware that sets it, a logging filter.

Every HTTP request gets a transaction id: the caller's ``X-Transaction-Id`` (or ``X-Request-Id``)
when it is well formed, else a fresh one. It is echoed in the ``X-Transaction-Id`` response
header, put in error bodies and carried by every log record emitted while the request is handled
(through a contextvar, so it follows the request's task and the tasks it starts). The engine
threads do not inherit it: their log lines carry ``-``.

The same middleware measures the request for ``/metrics`` (see :mod:`server.metrics`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import OLLAMA_GENERATION_ROUTES, Metrics, RequestRecord, route_label

logger = logging.getLogger(__name__)

HEADER = "X-Transaction-Id"
_INCOMING = (b"x-transaction-id", b"x-request-id")  # first one present wins
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The tail of a response body kept for the per-request generation speed (its last line).
_MAX_TAIL = 256 * 1024
# Probes and scrapes arrive every few seconds: their access lines are DEBUG, the rest INFO.
_QUIET_ROUTES = frozenset({"/", "/health", "/ready", "/metrics"})

_transaction_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "transaction_id", default=None
)


def current_transaction_id() -> str | None:
    """The transaction id of the request being handled in this context, if any."""
    return _transaction_id.get()


def new_transaction_id() -> str:
    """A fresh, unique transaction id."""
    return uuid.uuid4().hex


def valid_transaction_id(value: str) -> bool:
    """Whether a caller-supplied id is acceptable (1–128 of ``A-Za-z0-9._:-``)."""
    return _VALID.fullmatch(value) is not None


def incoming_transaction_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The caller's id from the request headers, or None if absent or malformed."""
    found = {k.lower(): v for k, v in headers if k.lower() in _INCOMING}
    for name in _INCOMING:
        raw = found.get(name)
        if raw is None:
            continue
        value = raw.decode("latin-1").strip()
        return value if valid_transaction_id(value) else None
    return None


class TransactionIdFilter(logging.Filter):
    """Adds ``transaction_id`` to every record (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "transaction_id"):
            record.transaction_id = _transaction_id.get() or "-"
        return True


@dataclass
class _Exchange:
    """What the middleware learns about one request while it is answered."""

    started_at: float
    status: int = 0
    started: bool = False
    complete: bool = False
    disconnected: bool = False
    content_type: str = ""
    retry_after: bool = False
    first_byte_s: float | None = None
    tail: bytearray | None = None

    def feed(self, body: bytes) -> None:
        """Keep only the last line of the body (bounded), for the final NDJSON chunk."""
        if self.tail is None:
            return
        data = bytes(self.tail) + body
        cut = data.rstrip(b"\n").rfind(b"\n")
        if cut >= 0:
            data = data[cut + 1 :]
        self.tail = bytearray(data) if len(data) <= _MAX_TAIL else None


class RequestContextMiddleware:
    """Sets the transaction id, echoes it, logs one line per request, records request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        txid = incoming_transaction_id(scope.get("headers", [])) or new_transaction_id()
        token = _transaction_id.set(txid)
        ex = _Exchange(started_at=time.perf_counter())
        try:
            await self._handle(scope, receive, send, txid, ex)
        finally:
            self._finish(scope, ex)
            _transaction_id.reset(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, txid: str, ex: _Exchange
    ) -> None:
        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not ex.complete:
                ex.disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.started, ex.status = True, message["status"]
                headers = list(message.get("headers", []))
                for key, value in headers:
                    name = key.lower()
                    if name == b"content-type":
                        ex.content_type = value.decode("latin-1").split(";")[0].strip()
                    elif name == b"retry-after":
                        ex.retry_after = True
                headers.append((HEADER.lower().encode(), txid.encode()))
                message = {**message, "headers": headers}
                if (
                    ex.content_type in ("application/x-ndjson", "application/json")
                    and route_label(scope) in OLLAMA_GENERATION_ROUTES
                ):
                    ex.tail = bytearray()
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                if body and ex.first_byte_s is None:
                    ex.first_byte_s = time.perf_counter() - ex.started_at
                ex.feed(body)
                if not message.get("more_body", False):
                    ex.complete = True
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            if ex.started:
                raise
            # Answer in our own error shape (with the id) rather than Starlette's plain text.
            logger.exception("unhandled error")
            body = json.dumps({"error": "internal server error", "transaction_id": txid})
            await send_wrapper(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send_wrapper({"type": "http.response.body", "body": body.encode()})

    @staticmethod
    def _finish(scope: Scope, ex: _Exchange) -> None:
        duration = time.perf_counter() - ex.started_at
        status = 499 if ex.disconnected else ex.status or 500
        route = route_label(scope)
        # The raw path is not logged: it may carry a blob digest or a typo'd route, never a prompt,
        # but the route template is what operators group by.
        level = logging.DEBUG if route in _QUIET_ROUTES and status < 400 else logging.INFO
        logger.log(level, "%s %s %d %.3fs", scope.get("method", "-"), route, status, duration)
        metrics = scope.get("state", {}).get("metrics")
        if isinstance(metrics, Metrics):
            metrics.observe_request(
                RequestRecord(
                    route=route,
                    status=status,
                    duration_s=duration,
                    first_byte_s=ex.first_byte_s,
                    streamed=ex.content_type in ("application/x-ndjson", "text/event-stream"),
                    last_line=bytes(ex.tail) if ex.tail is not None and ex.complete else None,
                    retry_after=ex.retry_after,
                )
            )
