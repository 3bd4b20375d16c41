"""/api/generate and /api/chat as event streams: wire request in, Ollama-shaped chunks out."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from models.local import LocalModel
from server.api.ollama_types import (
    ChatRequest,
    GenerateRequest,
    generation_params,
    merge_options,
    now_rfc3339,
)
from server.engine.params import Chunk, GenerationParams
from server.engine.sampling import InvalidFormat, grammar_for_format
from server.engine.scheduler import Lease
from server.engine.service import InferenceService
from server.engine.templates import ChatMessage, GoChatTemplate, RenderInput, TemplateRenderError
from server.errors import CapabilityMissing, InvalidRequest, ServerError

Event = dict[str, Any]


def _params(
    local: LocalModel, req: GenerateRequest | ChatRequest
) -> tuple[dict[str, Any], GenerationParams]:
    opts = merge_options(local.params, req.options)
    try:
        grammar = grammar_for_format(req.format)
    except InvalidFormat as exc:
        raise InvalidRequest(str(exc)) from None
    return opts, generation_params(opts, truncate=req.truncate, shift=req.shift, grammar=grammar)


def _final(
    base: Event, chunk: Chunk, lease: Lease, started_ns: int, reason: str | None = None
) -> Event:
    event = {**base, "done": True, "done_reason": reason or chunk.done_reason}
    event["total_duration"] = time.perf_counter_ns() - started_ns
    event["load_duration"] = int(lease.load_seconds * 1e9)
    stats = chunk.stats
    if stats is not None:
        # Omitted when zero, like Ollama's omitempty.
        for key in ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
            value = getattr(stats, key)
            if value:
                event[key] = value
    return event


def _check_common(local: LocalModel, req: GenerateRequest | ChatRequest, images: bool) -> None:
    if images and local.projector_path is None:
        raise CapabilityMissing(
            f"{local.name.display} does not support vision (it has no projector)"
        )
    if req.think not in (None, False):
        raise InvalidRequest(f'"{local.name.display}" does not support thinking')


async def generate_events(service: InferenceService, req: GenerateRequest) -> AsyncGenerator[Event, None]:
    """POST /api/generate."""
    started = time.perf_counter_ns()
    if req.raw and (req.template or req.system or req.context):
        raise InvalidRequest("raw mode does not support template, system, or context")
    local = service.resolve(req.model)
    _check_common(local, req, bool(req.images))
    opts, params = _params(local, req)
    keep_alive = req.keep_alive_seconds(service.defaults.keep_alive)
    base: Event = {"model": req.model, "created_at": ""}
    async with service.lease(local, service.load_params(opts), keep_alive) as lease:
        if not req.prompt and not req.suffix:
            base.update(created_at=now_rfc3339(), response="")
            yield _final(
                base, Chunk(done=True), lease, started, "unload" if keep_alive == 0 else "load"
            )
            return
        runner = lease.runner
        if req.suffix:
            raise CapabilityMissing(f"{local.name.display} does not support insert")
        if req.raw:
            tokens = runner.tokenize(req.prompt, add_special=True)
        else:
            try:
                template = (
                    GoChatTemplate(req.template)
                    if req.template
                    else service.template(local, runner)
                )
                system = req.system if req.system is not None else local.system
                msgs = ([ChatMessage("system", system)] if system else []) + [
                    ChatMessage("user", req.prompt)
                ]
                text = template.render(RenderInput(msgs))
            except TemplateRenderError as exc:
                raise InvalidRequest(str(exc)) from None
            context = list(req.context or [])
            tokens = context + runner.tokenize(text, add_special=not context)
        prepared = service.prepare_tokens(runner, tokens, params)
        async for chunk in service.stream(runner, prepared, params):
            if chunk.error:
                raise ServerError(chunk.error)
            base["created_at"] = now_rfc3339()
            if chunk.done:
                event = _final({**base, "response": chunk.text}, chunk, lease, started)
                if not req.raw:
                    event["context"] = prepared.tokens + list(chunk.output_tokens)
                yield event
            elif chunk.text:
                yield {**base, "response": chunk.text, "done": False}


def chat_messages(local: LocalModel, req: ChatRequest) -> list[ChatMessage]:
    """The model's MESSAGE history and SYSTEM prompt, then the request's messages."""
    msgs: list[ChatMessage] = []
    for m in local.messages:
        role, content = m.get("role"), m.get("content")
        if isinstance(role, str) and isinstance(content, str):
            msgs.append(ChatMessage(role, content))
    msgs.extend(m.to_chat() for m in req.messages)
    if local.system and (not msgs or msgs[0].role != "system"):
        msgs.insert(0, ChatMessage("system", local.system))
    return msgs


async def chat_events(service: InferenceService, req: ChatRequest) -> AsyncGenerator[Event, None]:
    """POST /api/chat."""
    started = time.perf_counter_ns()
    if not req.model:
        raise InvalidRequest("model is required")
    local = service.resolve(req.model)
    _check_common(local, req, any(m.images for m in req.messages))
    opts, params = _params(local, req)
    keep_alive = req.keep_alive_seconds(service.defaults.keep_alive)
    base: Event = {"model": req.model, "created_at": ""}
    async with service.lease(local, service.load_params(opts), keep_alive) as lease:
        if not req.messages:
            base.update(created_at=now_rfc3339(), message={"role": "assistant", "content": ""})
            yield _final(
                base, Chunk(done=True), lease, started, "unload" if keep_alive == 0 else "load"
            )
            return
        runner = lease.runner
        template = service.template(local, runner)
        tools = [t.model_dump(exclude_none=True) for t in req.tools or ()]
        if tools and not template.uses("tools"):
            raise CapabilityMissing(f"{local.name.display} does not support tools")
        prepared = service.prepare_chat(
            runner, template, chat_messages(local, req), params, tools=tools
        )
        async for chunk in service.stream(runner, prepared, params):
            if chunk.error:
                raise ServerError(chunk.error)
            base["created_at"] = now_rfc3339()
            message = {"role": "assistant", "content": chunk.text}
            if chunk.done:
                yield _final({**base, "message": message}, chunk, lease, started)
            elif chunk.text:
                yield {**base, "message": message, "done": False}


def merge_generate(events: list[Event]) -> Event:
    """Non-streamed /api/generate: one object with the whole response."""
    final = dict(events[-1])
    final["response"] = "".join(e.get("response", "") for e in events)
    return final


def merge_chat(events: list[Event]) -> Event:
    """Non-streamed /api/chat: one object with the whole message."""
    final = dict(events[-1])
    content = "".join(e.get("message", {}).get("content", "") for e in events)
    final["message"] = {**final.get("message", {}), "content": content}
    return final
