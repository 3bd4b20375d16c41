"""Checks that run before a model is loaded (capabilities, think, tool_choice, format), and the
grammar compile check that runs once it is loaded, before the request reaches the engine.

Capabilities are Ollama's (``server/images.go``): inferred from the GGUF header and the
template, so a request the model cannot serve is a 400 without loading anything.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from models.local import LocalModel
from server.api.ollama_types import (
    ChatRequest,
    GenerateRequest,
    ToolChoice,
    generation_params,
    merge_options,
)
from server.api.routes.models import capabilities, read_header
from server.engine.llama_backend import BackendError, SamplerChain, SamplerConfig
from server.engine.params import GenerationParams
from server.engine.runner import Runner
from server.engine.structured import InvalidFormat, grammar_for_format
from server.engine.templates import TemplateRenderError, load_template
from server.engine.tools import tool_call_tag
from server.errors import CapabilityMissing, InvalidRequest

THINK_LEVELS = frozenset({"low", "medium", "high", "max"})
_INFO: OrderedDict[tuple[str, str], ModelInfo] = OrderedDict()


@dataclass(frozen=True)
class ModelInfo:
    """What a model can do, known before it is loaded."""

    capabilities: frozenset[str]
    tool_tag: str


@dataclass(frozen=True)
class Think:
    """How a request thinks."""

    render: bool | None  # what the template sees (None: the request did not say)
    parse: bool  # split <think>…</think> out of the output


async def model_info(local: LocalModel) -> ModelInfo:
    """Capabilities (from the GGUF header and template) and the template's tool-call prefix."""
    key = (local.digest, str(local.model_path))
    info = _INFO.get(key)
    if info is None:
        header = await asyncio.to_thread(read_header, local.model_path)
        caps = frozenset(capabilities(local, header))
        tag = _tag(local.template, header.chat_template) if "tools" in caps else ""
        info = _INFO[key] = ModelInfo(caps, tag)
        while len(_INFO) > 64:
            _INFO.popitem(last=False)
    return info


@lru_cache(maxsize=64)
def _tag(layer: str | None, gguf: str | None) -> str:
    try:
        return tool_call_tag(load_template(layer, gguf, bos="", eos=""))
    except TemplateRenderError:
        return "{"


def require(local: LocalModel, info: ModelInfo, capability: str, what: str) -> None:
    """400 with Ollama's message when the model lacks ``capability``."""
    if capability not in info.capabilities:
        # Ollama's wording: quoted for chat/generate/thinking, bare for the others.
        quoted = what in ("chat", "generate", "thinking")
        name = f'"{local.name.display}"' if quoted else local.name.display
        raise CapabilityMissing(f"{name} does not support {what}")


def think_mode(local: LocalModel, info: ModelInfo, *, value: bool | str | None) -> Think:
    """The request's ``think`` against the model's capability."""
    if isinstance(value, str) and value not in THINK_LEVELS:
        raise InvalidRequest(f"invalid think value {value!r}: use true, false or low/medium/high")
    capable = "thinking" in info.capabilities
    if value is None or value is False:
        # Thinking models think unless told not to (Ollama's default).
        return Think(value, parse=capable and value is None)
    require(local, info, "thinking", "thinking")
    return Think(True, parse=True)


def options_and_params(
    local: LocalModel, req: GenerateRequest | ChatRequest
) -> tuple[dict[str, Any], GenerationParams]:
    """Merged options and engine parameters, with the format's grammar (400 if invalid)."""
    opts = merge_options(local.params, req.options)
    try:
        grammar = grammar_for_format(req.format)
    except InvalidFormat as exc:
        raise InvalidRequest(str(exc)) from None
    return opts, generation_params(opts, truncate=req.truncate, shift=req.shift, grammar=grammar)


_VERIFIED: OrderedDict[str, None] = OrderedDict()


async def check_grammar(runner: Runner, gbnf: str | None) -> None:
    """Compile the grammar against the model's vocabulary now (400 when llama.cpp refuses it)."""
    if gbnf is None:
        return
    key = hashlib.sha256(gbnf.encode()).hexdigest()
    if key in _VERIFIED:
        return
    model = runner.model
    assert model is not None

    def compile_grammar() -> None:
        SamplerChain(model, SamplerConfig(grammar=gbnf)).close()

    try:
        await asyncio.to_thread(compile_grammar)
    except BackendError:
        raise InvalidRequest("llama.cpp rejected the grammar built from this format") from None
    _VERIFIED[key] = None
    while len(_VERIFIED) > 256:
        _VERIFIED.popitem(last=False)


def tool_choice_mode(req: ChatRequest, tools: list[dict[str, Any]]) -> str:
    """The mode: "auto", "none", "required", or the name of the function that must be called."""
    choice = req.tool_choice
    name = choice.function.name if isinstance(choice, ToolChoice) else None
    if choice in (None, "auto", "none"):
        return choice or "auto"
    if not tools:
        raise InvalidRequest("tool_choice requires tools")
    if name is not None and name not in {t["function"]["name"] for t in tools}:
        raise InvalidRequest(f"tool_choice names a function that is not in tools: {name!r}")
    if req.format not in (None, ""):
        raise InvalidRequest("a format cannot be combined with a forced tool_choice")
    return name or "required"
