"""/api/generate and /api/chat as typed pieces (shared with the OpenAI routes) and Ollama events.

Every check that can fail happens before the model is loaded (``preflight``), in Ollama's
order: the name, the model's capabilities (completion, vision, insert, tools, thinking), the
options and the structured-output format. The grammar is then compiled against the loaded
vocabulary before the request reaches the engine, so a bad grammar is a 400, never an error
mid-stream. Output is split into content, thinking (``<think>``) and tool calls as it streams.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from models.local import LocalModel
from server.api.ollama_types import (
    ChatRequest,
    GenerateRequest,
    now_rfc3339,
)
from server.api.preflight import (
    Think,
    check_grammar,
    model_info,
    options_and_params,
    require,
    think_mode,
    tool_choice_mode,
)
from server.engine.params import Chunk, GenerationParams, Stats
from server.engine.runner import Runner
from server.engine.scheduler import Lease, model_key
from server.engine.service import InferenceService, PreparedPrompt
from server.engine.structured import InvalidFormat
from server.engine.templates import (
    ChatMessage,
    GoChatTemplate,
    RenderInput,
    TemplateRenderError,
)
from server.engine.thinking import OPEN as THINK_OPEN
from server.engine.thinking import ThinkingParser
from server.engine.tools import ParsedToolCall, ToolCallParser, forced_call_grammar
from server.errors import InvalidRequest, ServerError

Event = dict[str, Any]
THINK_LEVELS = frozenset({"low", "medium", "high", "max"})


@dataclass(frozen=True)
class Final:
    """How a response ended."""

    done_reason: str
    total_duration: int
    load_duration: int
    stats: Stats | None = None
    output_tokens: tuple[int, ...] = ()
    context: list[int] | None = None  # /api/generate: prompt + output tokens
    rendered: str | None = None  # _debug_render_only: the prompt, nothing generated


@dataclass(frozen=True)
class Piece:
    """A step of a response: text, thinking, completed tool calls; ``final`` on the last one."""

    content: str = ""
    thinking: str = ""
    tool_calls: tuple[ParsedToolCall, ...] = ()
    final: Final | None = None


def _final(chunk: Chunk, lease: Lease, started_ns: int, reason: str | None = None) -> Final:
    return Final(
        done_reason=reason or chunk.done_reason or "stop",
        total_duration=time.perf_counter_ns() - started_ns,
        load_duration=int(lease.load_seconds * 1e9),
        stats=chunk.stats,
        output_tokens=chunk.output_tokens,
    )


def _rendered_only(lease: Lease, started: int, text: str) -> Piece:
    final = _final(Chunk(done=True), lease, started, "stop")
    return Piece(final=replace(final, rendered=text))


async def _unload_only(service: InferenceService, local: LocalModel, started: int) -> Piece:
    # Ollama's `stop`: an empty request with keep_alive 0 unloads a loaded model (once its
    # requests finish) and never loads one that is not loaded.
    await service.scheduler.unload(model_key(local))
    elapsed = time.perf_counter_ns() - started
    return Piece(final=Final(done_reason="unload", total_duration=elapsed, load_duration=0))


def _load_only(lease: Lease, started: int, keep_alive: float | None) -> Piece:
    reason = "unload" if keep_alive == 0 else "load"
    return Piece(final=_final(Chunk(done=True), lease, started, reason))


# -- /api/generate --------------------------------------------------------------------------------
async def generate_pieces(
    service: InferenceService, req: GenerateRequest
) -> AsyncGenerator[Piece, None]:
    """POST /api/generate (and /v1/completions) as typed pieces."""
    started = time.perf_counter_ns()
    if req.raw and (req.template or req.system or req.context):
        raise InvalidRequest("raw mode does not support template, system, or context")
    local = service.resolve(req.model)
    info = await model_info(local)
    require(local, info, "completion", "generate")
    if req.images:
        require(local, info, "vision", "vision")
    if req.suffix:
        require(local, info, "insert", "insert")
    think = think_mode(local, info, value=req.think)
    opts, params = options_and_params(local, req)
    keep_alive = req.keep_alive_seconds(service.defaults.keep_alive)
    if not req.prompt and not req.suffix and keep_alive == 0:
        yield await _unload_only(service, local, started)
        return
    async with service.lease(local, service.load_params(opts), keep_alive) as lease:
        if not req.prompt and not req.suffix:
            yield _load_only(lease, started, keep_alive)
            return
        runner = lease.runner
        await check_grammar(runner, params.sampling.grammar)
        text, tokens = _generate_prompt(service, local, runner, req, think)
        if req.debug_render_only:
            yield _rendered_only(lease, started, text)
            return
        prepared = service.prepare_tokens(runner, tokens, params)
        thinker = _thinker(runner, prepared.tokens, think)
        async for piece in _pieces(
            service, runner, prepared.tokens, params, lease, started, thinker
        ):
            if piece.final is not None and not req.raw:
                context = prepared.tokens + list(piece.final.output_tokens)
                piece = replace(piece, final=replace(piece.final, context=context))
            yield piece


def _generate_prompt(
    service: InferenceService,
    local: LocalModel,
    runner: Runner,
    req: GenerateRequest,
    think: Think,
) -> tuple[str, list[int]]:
    """The prompt text and its tokens (after any ``context`` tokens)."""
    if req.raw:
        return req.prompt, runner.tokenize(req.prompt, add_special=True)
    try:
        template = GoChatTemplate(req.template) if req.template else service.template(local, runner)
        if req.suffix:
            data = RenderInput([], extra={"prompt": req.prompt, "suffix": req.suffix})
        else:
            system = req.system if req.system is not None else local.system
            msgs = ([ChatMessage("system", system)] if system else []) + [
                ChatMessage("user", req.prompt)
            ]
            data = RenderInput(msgs, think=think.render)
        text = template.render(data)
    except TemplateRenderError as exc:
        raise InvalidRequest(str(exc)) from None
    context = list(req.context or [])
    return text, context + runner.tokenize(text, add_special=not context)


# -- /api/chat ------------------------------------------------------------------------------------
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


async def chat_pieces(service: InferenceService, req: ChatRequest) -> AsyncGenerator[Piece, None]:
    """POST /api/chat (and /v1/chat/completions) as typed pieces."""
    started = time.perf_counter_ns()
    if not req.model:
        raise InvalidRequest("model is required")
    local = service.resolve(req.model)
    info = await model_info(local)
    require(local, info, "completion", "chat")
    if any(m.images for m in req.messages):
        require(local, info, "vision", "vision")
    tools = [t.model_dump(exclude_none=True) for t in req.tools or ()]
    if tools:
        require(local, info, "tools", "tools")
    choice = tool_choice_mode(req, tools)
    think = think_mode(local, info, value=req.think)
    opts, params = options_and_params(local, req)
    if choice not in ("auto", "none"):
        name = None if choice == "required" else choice
        try:
            grammar = forced_call_grammar(tools, name, info.tool_tag)
        except InvalidFormat as exc:
            raise InvalidRequest(str(exc)) from None
        params = replace(params, sampling=replace(params.sampling, grammar=grammar))
    keep_alive = req.keep_alive_seconds(service.defaults.keep_alive)
    if not req.messages and keep_alive == 0:
        yield await _unload_only(service, local, started)
        return
    async with service.lease(local, service.load_params(opts), keep_alive) as lease:
        if not req.messages:
            yield _load_only(lease, started, keep_alive)
            return
        runner = lease.runner
        await check_grammar(runner, params.sampling.grammar)
        template = service.template(local, runner)
        # tool_choice "none": the model is not shown the tools, and nothing is parsed as a call.
        shown = tools if choice != "none" else []
        messages = chat_messages(local, req)
        if req.debug_render_only:
            try:
                text = template.render(RenderInput(messages, shown, think=think.render))
            except TemplateRenderError as exc:
                raise InvalidRequest(str(exc)) from None
            yield _rendered_only(lease, started, text)
            return
        prepared = service.prepare_chat(
            runner, template, messages, params, tools=shown, think=think.render
        )
        names = [t["function"]["name"] for t in shown]
        parser = ToolCallParser(info.tool_tag, names) if shown else None
        thinker = _thinker(runner, prepared.tokens, think)
        async for piece in _pieces(
            service, runner, prepared.tokens, params, lease, started, thinker, parser
        ):
            yield piece


# -- streaming -----------------------------------------------------------------------------------
def _thinker(runner: Runner, prompt: list[int], think: Think) -> ThinkingParser | None:
    if not think.parse:
        return None
    model = runner.model
    assert model is not None
    # Templates that open the block in the generation prompt: the output starts inside it.
    started = model.detokenize(prompt[-8:]).rstrip().endswith(THINK_OPEN)
    return ThinkingParser(started=started)


async def _pieces(
    service: InferenceService,
    runner: Runner,
    tokens: list[int],
    params: GenerationParams,
    lease: Lease,
    started: int,
    thinker: ThinkingParser | None,
    parser: ToolCallParser | None = None,
) -> AsyncIterator[Piece]:
    async for chunk in service.stream(runner, PreparedPrompt(tokens), params):
        if chunk.error:
            raise ServerError(chunk.error)
        thinking, content = thinker.feed(chunk.text) if thinker else ("", chunk.text)
        calls: list[ParsedToolCall] = []
        if parser is not None:
            content, calls = parser.feed(content)
        if chunk.done:
            if thinker is not None:
                more_thinking, more = thinker.flush()
                thinking += more_thinking
                if parser is not None:
                    more, more_calls = parser.feed(more)
                    calls += more_calls
                content += more
            if parser is not None:
                more, more_calls = parser.flush()
                content, calls = content + more, calls + more_calls
            final = _final(chunk, lease, started)
            yield Piece(content, thinking, tuple(calls), final)
        elif content or thinking or calls:
            yield Piece(content, thinking, tuple(calls))


# -- Ollama's wire shapes ------------------------------------------------------------------------
def _final_fields(final: Final) -> Event:
    event: Event = {"done": True, "done_reason": final.done_reason}
    event["total_duration"] = final.total_duration
    event["load_duration"] = final.load_duration
    stats = final.stats
    if stats is not None:
        # Omitted when zero, like Ollama's omitempty.
        for key in ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
            value = getattr(stats, key)
            if value:
                event[key] = value
    return event


def _debug(event: Event, final: Final) -> None:
    if final.rendered is not None:
        event["_debug_info"] = {"rendered_template": final.rendered, "image_count": 0}


def ollama_tool_call(call: ParsedToolCall) -> Event:
    """A parsed call in /api/chat's shape (arguments as a JSON object)."""
    return {
        "id": call.id,
        "function": {"index": call.index, "name": call.name, "arguments": call.arguments},
    }


async def generate_events(
    service: InferenceService, req: GenerateRequest
) -> AsyncGenerator[Event, None]:
    """POST /api/generate as Ollama's NDJSON events."""
    async for piece in generate_pieces(service, req):
        event: Event = {"model": req.model, "created_at": now_rfc3339(), "response": piece.content}
        if piece.thinking:
            event["thinking"] = piece.thinking
        if piece.final is None:
            event["done"] = False
        else:
            event.update(_final_fields(piece.final))
            if piece.final.context is not None:
                event["context"] = piece.final.context
            _debug(event, piece.final)
        yield event


async def chat_events(service: InferenceService, req: ChatRequest) -> AsyncGenerator[Event, None]:
    """POST /api/chat as Ollama's NDJSON events."""
    async for piece in chat_pieces(service, req):
        message: Event = {"role": "assistant", "content": piece.content}
        if piece.thinking:
            message["thinking"] = piece.thinking
        if piece.tool_calls:
            message["tool_calls"] = [ollama_tool_call(c) for c in piece.tool_calls]
        event: Event = {"model": req.model, "created_at": now_rfc3339(), "message": message}
        if piece.final is None:
            event["done"] = False
        else:
            event.update(_final_fields(piece.final))
            _debug(event, piece.final)
        yield event


def merge_generate(events: list[Event]) -> Event:
    """Non-streamed /api/generate: one object with the whole response."""
    final = dict(events[-1])
    final["response"] = "".join(e.get("response", "") for e in events)
    thinking = "".join(e.get("thinking", "") for e in events)
    if thinking:
        final["thinking"] = thinking
    return final


def merge_chat(events: list[Event]) -> Event:
    """Non-streamed /api/chat: one object with the whole message (content, thinking, calls)."""
    final = dict(events[-1])
    messages = [e.get("message", {}) for e in events]
    message = {
        **final.get("message", {}),
        "content": "".join(m.get("content", "") for m in messages),
    }
    thinking = "".join(m.get("thinking", "") for m in messages)
    if thinking:
        message["thinking"] = thinking
    calls = [c for m in messages for c in m.get("tool_calls", ())]
    if calls:
        message["tool_calls"] = calls
    final["message"] = message
    return final
