"""OpenAI-compatible routes: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models.

Errors use OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, through this
router's own route class (the app-wide handler keeps Ollama's). Streams are server-sent events
ending with ``data: [DONE]``; an error after the first event is a final ``data: {"error": ...}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from server.api.deps import ServiceDep, StoreDep
from server.api.embeddings import embed_texts
from server.api.generation import Piece, chat_pieces, generate_pieces
from server.api.ollama_types import keep_alive_value
from server.api.openai_types import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from server.api.streaming import parse_body, unless_disconnected
from server.engine.tools import ParsedToolCall
from server.errors import ServerError

logger = logging.getLogger(__name__)
Event = dict[str, Any]
FINGERPRINT = "fp_ollama"


def error_body(exc: ServerError) -> Event:
    """OpenAI's error object for a ServerError."""
    return {"message": exc.message, "type": exc.openai_type, "param": None, "code": None}


def openai_error(exc: ServerError) -> JSONResponse:
    """A ServerError in OpenAI's error shape, with its status code."""
    return JSONResponse({"error": error_body(exc)}, exc.status_code, headers=exc.headers)


class OpenAIRoute(APIRoute):
    """Renders this router's errors in OpenAI's shape instead of Ollama's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ServerError as exc:
                if exc.status_code >= 500:
                    logger.warning("%s: %s", type(exc).__name__, exc.message)
                return openai_error(exc)

        return route


router = APIRouter(route_class=OpenAIRoute)


# -- SSE ------------------------------------------------------------------------------------------
def _sse(data: Event | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def sse(request: Request, events: AsyncGenerator[Event, None]) -> Response:
    """Stream events as SSE; errors before the first event keep their status code."""
    first = await unless_disconnected(request, anext(events))

    async def body() -> AsyncIterator[bytes]:
        yield _sse(first)
        try:
            async for event in events:
                yield _sse(event)
        except ServerError as exc:
            yield _sse({"error": error_body(exc)})
            return
        except Exception:
            logger.exception("error while streaming")
            yield _sse({"error": {"message": "internal error", "type": "api_error"}})
            return
        finally:
            await events.aclose()
        yield _sse("[DONE]")

    return StreamingResponse(body(), media_type="text/event-stream")


async def _collect(request: Request, pieces: AsyncGenerator[Piece, None]) -> list[Piece]:
    async def collect() -> list[Piece]:
        return [p async for p in pieces]

    return await unless_disconnected(request, collect())


# -- shared shapes --------------------------------------------------------------------------------
def _usage(pieces: list[Piece]) -> Event:
    final = pieces[-1].final if pieces else None
    stats = final.stats if final else None
    prompt = stats.prompt_tokens if stats else 0
    completion = stats.eval_count if stats else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finish_reason(piece: Piece, *, calls: bool) -> str:
    reason = piece.final.done_reason if piece.final else "stop"
    if reason == "length":
        return "length"
    return "tool_calls" if calls else "stop"


def openai_tool_call(call: ParsedToolCall) -> Event:
    """A parsed call in OpenAI's shape (arguments as a JSON string)."""
    return {
        "id": call.id,
        "index": call.index,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }


def _head(kind: str, prefix: str, model: str) -> Event:
    return {
        "id": f"{prefix}-{random.randrange(999)}",  # Ollama's ids: chatcmpl-N, cmpl-N
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": FINGERPRINT,
    }


# -- /v1/chat/completions -------------------------------------------------------------------------
@router.post("/v1/chat/completions")
async def chat_completions(request: Request, service: ServiceDep) -> Response:
    """Chat completion, streamed as SSE chunks or returned whole."""
    body = await parse_body(request, ChatCompletionRequest)
    pieces = chat_pieces(service, body.to_chat_request())
    head = _head("chat.completion", "chatcmpl", body.model)
    if body.stream:
        return await sse(request, _chat_chunks(pieces, head, include_usage=body.include_usage))
    collected = await _collect(request, pieces)
    content = "".join(p.content for p in collected)
    reasoning = "".join(p.thinking for p in collected)
    calls = [openai_tool_call(c) for p in collected for c in p.tool_calls]
    message: Event = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning"] = reasoning
    if calls:
        message["tool_calls"] = calls
    choice = {"index": 0, "message": message, "logprobs": None}
    choice["finish_reason"] = _finish_reason(collected[-1], calls=bool(calls))
    return JSONResponse({**head, "choices": [choice], "usage": _usage(collected)})


async def _chat_chunks(
    pieces: AsyncGenerator[Piece, None], head: Event, *, include_usage: bool
) -> AsyncGenerator[Event, None]:
    head = {**head, "object": "chat.completion.chunk"}
    first, calls, seen = True, False, []
    try:
        async for piece in pieces:
            seen.append(piece)
            delta: Event = {"role": "assistant"} if first else {}
            if piece.content or first:
                delta["content"] = piece.content
            if piece.thinking:
                delta["reasoning"] = piece.thinking
            if piece.tool_calls:
                calls = True
                delta["tool_calls"] = [openai_tool_call(c) for c in piece.tool_calls]
            if delta:
                choice = {"index": 0, "delta": delta, "finish_reason": None}
                yield {**head, "choices": [choice]}
            first = False
            if piece.final is not None:
                reason = _finish_reason(piece, calls=calls)
                yield {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
                if include_usage:
                    yield {**head, "choices": [], "usage": _usage(seen[-1:])}
    finally:
        await pieces.aclose()


# -- /v1/completions ------------------------------------------------------------------------------
@router.post("/v1/completions")
async def completions(request: Request, service: ServiceDep) -> Response:
    """Text completion of a prompt."""
    body = await parse_body(request, CompletionRequest)
    pieces = generate_pieces(service, body.to_generate_request())
    head = _head("text_completion", "cmpl", body.model)
    if body.stream:
        return await sse(
            request, _completion_chunks(pieces, head, include_usage=body.include_usage)
        )
    collected = await _collect(request, pieces)
    choice = {
        "text": "".join(p.content for p in collected),
        "index": 0,
        "logprobs": None,
        "finish_reason": _finish_reason(collected[-1], calls=False),
    }
    return JSONResponse({**head, "choices": [choice], "usage": _usage(collected)})


async def _completion_chunks(
    pieces: AsyncGenerator[Piece, None], head: Event, *, include_usage: bool
) -> AsyncGenerator[Event, None]:
    try:
        async for piece in pieces:
            reason = _finish_reason(piece, calls=False) if piece.final else None
            if piece.content or reason:
                choice = {"text": piece.content, "index": 0, "logprobs": None}
                yield {**head, "choices": [{**choice, "finish_reason": reason}]}
            if piece.final is not None and include_usage:
                yield {**head, "choices": [], "usage": _usage([piece])}
    finally:
        await pieces.aclose()


# -- /v1/embeddings -------------------------------------------------------------------------------
@router.post("/v1/embeddings")
async def embeddings(request: Request, service: ServiceDep) -> dict[str, Any]:
    """Embeddings of one or more inputs (L2-normalised), as floats or base64 float32."""
    body = await parse_body(request, EmbeddingRequest)
    vectors, tokens = await embed_texts(
        service,
        body.model,
        body.inputs(),
        truncate=body.truncate,
        dimensions=body.dimensions,
        keep_alive=keep_alive_value(body.keep_alive, service.defaults.keep_alive),
        options=body.options,
    )
    data = [
        {"object": "embedding", "embedding": _encode(v, body.encoding_format), "index": i}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body.model, "usage": usage}


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector


# -- /v1/models -----------------------------------------------------------------------------------
@router.get("/v1/models")
async def list_models(store: StoreDep) -> dict[str, Any]:
    """The models in the store."""
    entries = await asyncio.to_thread(store.list_models)
    entries.sort(key=lambda e: e.modified_at, reverse=True)
    data = [_model(e.name.display, e.name.namespace, e.modified_at.timestamp()) for e in entries]
    return {"object": "list", "data": data}


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, service: ServiceDep) -> dict[str, Any]:
    """One model; 404 ``not_found_error`` when it is not in the store."""
    local = await asyncio.to_thread(service.resolve, model)
    return _model(model, local.name.namespace, local.modified_at.timestamp())


def _model(name: str, owner: str, created: float) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(created), "owned_by": owner}
