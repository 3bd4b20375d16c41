"""NDJSON responses with Ollama's error rule, request-body parsing, and disconnect handling.

An error before the first chunk gets a real status code and ``{"error": ...}``; after the first
byte has been sent, it becomes a final NDJSON line ``{"error": ...}`` on the 200 stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ValidationError

from server.errors import InvalidRequest, RequestCancelled, ServerError
from server.request_context import current_transaction_id

logger = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
T_co = TypeVar("T_co")
Event = dict[str, Any]
NDJSON = "application/x-ndjson"
MAX_BODY_BYTES = 64 * 1024 * 1024


async def parse_body(request: Request, model: type[T]) -> T:
    """Parse a JSON body into a wire schema; every problem is a 400 (never FastAPI's 422)."""
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("missing request body")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidRequest("request body too large")
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("request body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation(exc)) from None


def describe_validation(exc: ValidationError) -> str:
    """One line naming the field and the problem (input values are not echoed)."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)


def _line(event: Event) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def respond(
    request: Request,
    events: AsyncGenerator[Event, None],
    *,
    stream: bool,
    merge: Callable[[list[Event]], Event],
) -> Response:
    """Stream ``events`` as NDJSON, or merge them into one JSON object when not streaming."""
    if not stream:

        async def collect() -> list[Event]:
            return [e async for e in events]

        return JSONResponse(merge(await unless_disconnected(request, collect())))
    # Errors before the first event still get their status code. Until it arrives (queued,
    # loading, prefilling) no response has started, so watch for the client leaving ourselves.
    first = await unless_disconnected(request, anext(events))

    async def body() -> AsyncIterator[bytes]:
        yield _line(first)
        try:
            async for event in events:
                yield _line(event)
        except ServerError as exc:
            yield _line({"error": exc.message, "transaction_id": current_transaction_id()})
        except Exception:
            logger.exception("error while streaming")
            message = "internal error while streaming the response"
            yield _line({"error": message, "transaction_id": current_transaction_id()})
        finally:
            await events.aclose()

    return StreamingResponse(body(), media_type=NDJSON)


async def unless_disconnected(request: Request, work: Awaitable[T_co]) -> T_co:
    """Await ``work``; if the client disconnects first, cancel it (freeing its slot)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise RequestCancelled("request canceled")


async def wait_for_disconnect(request: Request) -> None:
    """Return when the client has gone away."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
