"""Ollama's wire schemas (names as in Ollama's api/types.go). Durations are nanoseconds.

Requests own their conversion to engine parameters (``to_params``), so handlers never build
kwargs dicts. Option values are type-checked like Ollama's ``Options.FromMap``: a string where a
number belongs is a 400, an unknown key is ignored (and logged).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)

from server.durations import parse_keep_alive
from server.engine.llama_backend import SamplerConfig
from server.engine.params import GenerationParams
from server.engine.templates import ChatMessage, ToolCall
from server.errors import InvalidRequest

logger = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite integer")
        return int(value)
    return int(value)


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return float(value)


def _as_stop(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("must be a string or a list of strings")


def _null_is(default: bool) -> BeforeValidator:  # noqa: FBT001
    # JSON null leaves a Go field at its default (Stream *bool: nil = true).
    return BeforeValidator(lambda value: default if value is None else value)


StreamFlag = Annotated[StrictBool, _null_is(True)]
Flag = Annotated[StrictBool, _null_is(False)]
Int = Annotated[int, BeforeValidator(_as_int)]
Float = Annotated[float, BeforeValidator(_as_float)]
Stop = Annotated[list[str], BeforeValidator(_as_stop)]

RUNTIME_OPTIONS = frozenset(
    {
        "num_keep", "seed", "num_predict", "top_k", "top_p", "min_p", "typical_p",
        "repeat_last_n", "temperature", "repeat_penalty", "presence_penalty",
        "frequency_penalty", "stop",
    }
)  # fmt: skip
# Accepted for compatibility, no effect on a CPU build (or obsolete in Ollama itself).
IGNORED_OPTIONS = frozenset(
    {
        "num_gpu", "main_gpu", "use_mmap", "use_mlock", "numa", "low_vram", "vocab_only",
        "f16_kv", "logits_all", "mirostat", "mirostat_tau", "mirostat_eta", "tfs_z",
        "penalize_newline", "draft_num_predict",
    }
)  # fmt: skip


class Options(BaseModel):
    """Ollama's ``options`` (and a model's params layer): typed, unknown keys ignored."""

    model_config = ConfigDict(extra="allow")

    num_ctx: Annotated[Int, Field(ge=4, le=1_048_576)] | None = None
    num_batch: Annotated[Int, Field(ge=1, le=65_536)] | None = None
    num_thread: Annotated[Int, Field(ge=0, le=1024)] | None = None
    num_keep: Annotated[Int, Field(ge=-1, le=INT32_MAX)] | None = None
    num_predict: Annotated[Int, Field(ge=-2, le=INT32_MAX)] | None = None
    seed: Int | None = None
    top_k: Annotated[Int, Field(ge=0, le=1_000_000)] | None = None
    top_p: Annotated[Float, Field(ge=0.0, le=1.0)] | None = None
    min_p: Annotated[Float, Field(ge=0.0, le=1.0)] | None = None
    typical_p: Annotated[Float, Field(ge=0.0, le=1.0)] | None = None
    repeat_last_n: Annotated[Int, Field(ge=-1, le=1_048_576)] | None = None
    temperature: Annotated[Float, Field(ge=0.0, le=100.0)] | None = None
    repeat_penalty: Annotated[Float, Field(ge=0.0, le=100.0)] | None = None
    presence_penalty: Annotated[Float, Field(ge=-100.0, le=100.0)] | None = None
    frequency_penalty: Annotated[Float, Field(ge=-100.0, le=100.0)] | None = None
    stop: Stop | None = None

    def known(self) -> dict[str, Any]:
        """The options that were set, minus unknown keys (which are logged)."""
        extra = set(self.model_extra or {}) - IGNORED_OPTIONS
        if extra:
            logger.warning("ignoring unknown options: %s", ", ".join(sorted(extra)))
        return self.model_dump(exclude_none=True, exclude=set(self.model_extra or {}))


def merge_options(model_params: dict[str, object], request: Options | None) -> dict[str, Any]:
    """Precedence: defaults < the model's params layer < the request's options."""
    try:
        base = Options.model_validate(model_params).known()
    except ValueError:
        logger.warning("ignoring the model's invalid params layer")
        base = {}
    return {**base, **(request.known() if request else {})}


def generation_params(
    opts: dict[str, Any], *, truncate: bool | None, shift: bool | None, grammar: str | None = None
) -> GenerationParams:
    """Merged options → engine parameters (Ollama's defaults where unset)."""
    seed = opts.get("seed", -1)
    sampling = SamplerConfig(
        temperature=opts.get("temperature", 0.8),
        top_k=opts.get("top_k", 40),
        top_p=opts.get("top_p", 0.9),
        min_p=opts.get("min_p", 0.0),
        typical_p=opts.get("typical_p", 1.0),
        repeat_penalty=opts.get("repeat_penalty", 1.0),
        repeat_last_n=opts.get("repeat_last_n", 64),
        presence_penalty=opts.get("presence_penalty", 0.0),
        frequency_penalty=opts.get("frequency_penalty", 0.0),
        seed=0xFFFFFFFF if seed < 0 else seed,
        grammar=grammar,
    )
    return GenerationParams(
        sampling=sampling,
        num_predict=opts.get("num_predict", -1),
        stop=tuple(opts.get("stop", ())),
        num_keep=opts.get("num_keep", 4),
        truncate=True if truncate is None else truncate,
        shift=True if shift is None else shift,
    )


def _keep_alive(value: Any) -> float | str | None:
    if value is None:
        return "default"
    try:
        return parse_keep_alive(value)
    except ValueError as exc:
        raise ValueError(f"invalid keep_alive: {exc}") from None


def keep_alive_value(value: str | float | None, default: float | None) -> float | None:
    """A request's keep_alive in seconds (None = forever); the server default when unset."""
    try:
        parsed = _keep_alive(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return default if parsed == "default" else parsed  # type: ignore[return-value]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(
        "", max_length=512, description="Model name, [host/][namespace/]model[:tag]."
    )
    # Strict: Go's JSON decoder refuses "yes" or 1 for a bool, so Ollama answers 400.
    stream: StreamFlag = Field(
        True, description="Stream NDJSON chunks (default) or return one object."
    )
    keep_alive: str | float | None = Field(None, description="How long to keep the model loaded.")
    options: Options | None = Field(None, description="Model options (see the Modelfile docs).")
    format: str | dict[str, Any] | None = Field(None, description='"json" or a JSON schema.')
    truncate: StrictBool | None = Field(
        None, description="Drop old context when the prompt is too long."
    )
    shift: StrictBool | None = Field(None, description="Slide the window when generation fills it.")
    debug_render_only: StrictBool = Field(
        False,
        alias="_debug_render_only",
        description="Return the rendered prompt in _debug_info instead of generating.",
    )
    think: bool | str | None = Field(None, description="Thinking (only for thinking models).")

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _check_keep_alive(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("keep_alive must be a number or a duration string")
        if value is not None:
            _keep_alive(value)
        return value

    def keep_alive_seconds(self, default: float | None) -> float | None:
        """Seconds to keep the model, None = forever."""
        value = _keep_alive(self.keep_alive)
        return default if value == "default" else value  # type: ignore[return-value]


class GenerateRequest(_Request):
    """POST /api/generate."""

    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = Field(None, max_length=1 << 20)
    context: list[Annotated[StrictInt, Field(ge=0, le=INT32_MAX)]] | None = None
    raw: Flag = False
    images: list[str] | None = None


class ToolCallFunctionWire(BaseModel):
    """``tool_calls[].function``."""

    index: int | None = None
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCallWire(BaseModel):
    """``tool_calls[]``."""

    id: str | None = None
    function: ToolCallFunctionWire


class Message(BaseModel):
    """A chat message."""

    model_config = ConfigDict(extra="ignore")

    role: str = Field(..., min_length=1, max_length=64)
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCallWire] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None

    @field_validator("role")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    def to_chat(self) -> ChatMessage:
        """The engine's view of the message."""
        calls = tuple(
            ToolCall(c.function.name, c.function.arguments, c.id, c.function.index)
            for c in self.tool_calls or ()
        )
        return ChatMessage(
            role=self.role,
            content=self.content,
            tool_calls=calls,
            tool_name=self.tool_name,
            tool_call_id=self.tool_call_id,
            thinking=self.thinking,
        )


class ToolFunction(BaseModel):
    """``tools[].function``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(..., min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    """``tools[]``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"] = "function"
    function: ToolFunction


class ToolChoiceFunction(BaseModel):
    """``tool_choice.function``: the function that must be called."""

    name: str = Field(..., min_length=1, max_length=256)


class ToolChoice(BaseModel):
    """A named ``tool_choice``: ``{"type": "function", "function": {"name": ...}}``."""

    type: Literal["function"] = "function"
    function: ToolChoiceFunction


class ChatRequest(_Request):
    """POST /api/chat."""

    messages: list[Message] = Field(default_factory=list)
    tools: list[Tool] | None = None
    # Beyond Ollama (which has no tool_choice, ollama#17921): "none" suppresses calls,
    # "required" or a named function forces one call by grammar.
    tool_choice: Literal["auto", "none", "required"] | ToolChoice | None = Field(
        None, description='"auto" (default), "none", "required" or a named function.'
    )


def now_rfc3339() -> str:
    """``created_at``: RFC 3339 with nanosecond precision, UTC."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


class ModelDetails(BaseModel):
    """``details`` in /api/tags, /api/show and /api/ps."""

    parent_model: str = ""
    format: str = "gguf"
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class ListModelResponse(BaseModel):
    """One entry of /api/tags."""

    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class ProcessModelResponse(BaseModel):
    """One entry of /api/ps."""

    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int = 0
    context_length: int


class ShowRequest(BaseModel):
    """POST /api/show (``name`` is the deprecated spelling of ``model``)."""

    model_config = ConfigDict(extra="ignore")

    model: str = ""
    name: str = ""
    verbose: Flag = False
