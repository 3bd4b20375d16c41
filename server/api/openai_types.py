"""OpenAI's wire schemas, and their conversion to the native requests (as Ollama's middleware).

Requests are converted to :class:`ChatRequest` / :class:`GenerateRequest` and run through the
same code as /api/chat and /api/generate, so capabilities, formats and tools behave the same.
Differences from native, as in Ollama: ``temperature`` and ``top_p`` default to 1.0,
``max_tokens`` is ``num_predict``. Beyond Ollama: llama options (``num_ctx``, ``top_k``, ...)
are accepted as extra body fields or in ``options`` (ollama#5356), and ``tool_choice`` is
honoured (ollama#17921).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.api.ollama_types import (
    ChatRequest,
    Float,
    GenerateRequest,
    Int,
    Message,
    Options,
    Stop,
    Tool,
    ToolCallFunctionWire,
    ToolCallWire,
    ToolChoice,
)
from server.api.streaming import describe_validation
from server.errors import InvalidRequest

logger = logging.getLogger(__name__)

_DATA_URI = re.compile(r"^data:(?:image/(?:png|jpeg|jpg|webp))?;base64,(.*)$", re.DOTALL)
_REASONING = {"none": False, "minimal": "low", "xhigh": "max", "ultra": "max"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Strict):
    """``{"type": "text", "text": ...}``."""

    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    """``image_url``: only base64 data URIs (as Ollama)."""

    url: str
    detail: str | None = None


class ImagePart(_Strict):
    """``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``."""

    type: Literal["image_url"]
    image_url: ImageURL | str


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class FunctionCall(_Strict):
    """``tool_calls[].function``: arguments as a JSON string."""

    name: str = Field(..., min_length=1, max_length=256)
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Strict):
    """An assistant message's ``tool_calls[]``."""

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessageIn(_Strict):
    """A message of ``messages``: content as a string or text/image parts."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None


class StreamOptions(_Strict):
    """``stream_options``."""

    include_usage: bool = False


class JSONSchemaFormat(_Strict):
    """``response_format.json_schema``."""

    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    """``response_format``: text, json_object or json_schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    def to_format(self) -> str | dict[str, Any] | None:
        """Ollama's ``format``."""
        if self.type == "text":
            return None
        if self.type == "json_schema" and self.json_schema and self.json_schema.schema_:
            return self.json_schema.schema_
        if self.type == "json_schema" and self.json_schema is None:
            raise InvalidRequest("response_format.json_schema is required for type json_schema")
        return "json"


class Reasoning(_Strict):
    """``reasoning: {effort}``."""

    effort: str | None = None


Temperature = Annotated[Float, Field(ge=0.0, le=2.0)]
Penalty = Annotated[Float, Field(ge=-2.0, le=2.0)]
MaxTokens = Annotated[Int, Field(ge=1, le=2**31 - 1)]


class _Common(BaseModel):
    """Fields shared by chat and text completions; unknown fields are llama options or ignored."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: str = Field(..., min_length=1, max_length=512)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: Annotated[Float, Field(ge=0.0, le=1.0)] | None = None
    max_tokens: MaxTokens | None = None
    stop: Stop | None = None
    seed: Int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    n: Annotated[Int, Field(ge=1, le=1)] | None = Field(None, description="Only 1 is supported.")
    user: str | None = None
    # Extensions (Ollama's native fields).
    options: dict[str, Any] | None = Field(None, description="Llama options, as on /api/chat.")
    keep_alive: str | float | None = None

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def ollama_options(self, max_tokens: int | None) -> Options:
        """Extra body options < ``options`` < the OpenAI fields; OpenAI's sampling defaults."""
        extra = self.model_extra or {}
        known = set(Options.model_fields)
        ignored = sorted(k for k in extra if k not in known)
        if ignored:
            logger.info("ignoring unsupported fields: %s", ", ".join(ignored))
        merged: dict[str, Any] = {k: v for k, v in extra.items() if k in known}
        merged.update(self.options or {})
        for key, value in (
            ("temperature", self.temperature),
            ("top_p", self.top_p),
            ("num_predict", max_tokens),
            ("stop", self.stop),
            ("seed", self.seed),
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ):
            if value is not None:
                merged[key] = value
        merged.setdefault("temperature", 1.0)
        merged.setdefault("top_p", 1.0)
        try:
            return Options.model_validate(merged)
        except ValidationError as exc:
            raise InvalidRequest(describe_validation(exc)) from None


class ChatCompletionRequest(_Common):
    """POST /v1/chat/completions."""

    messages: list[ChatMessageIn] = Field(..., min_length=1)
    max_completion_tokens: MaxTokens | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    reasoning: Reasoning | None = None
    think: bool | str | None = None

    def to_chat_request(self) -> ChatRequest:
        """The native request this one stands for."""
        if self.logprobs:
            raise InvalidRequest("logprobs are not supported")
        max_tokens = self.max_completion_tokens or self.max_tokens
        return ChatRequest(
            model=self.model,
            stream=self.stream,
            keep_alive=self.keep_alive,
            options=self.ollama_options(max_tokens),
            format=self.response_format.to_format() if self.response_format else None,
            messages=_messages(self.messages),
            tools=self.tools,
            tool_choice=self.tool_choice,
            think=self._think(),
            truncate=None,
            shift=None,
            _debug_render_only=False,
        )

    def _think(self) -> bool | str | None:
        effort = self.reasoning_effort or (self.reasoning.effort if self.reasoning else None)
        if effort is None:
            return self.think
        value = _REASONING.get(effort, effort)
        if value not in (False, "low", "medium", "high", "max"):
            raise InvalidRequest(f"invalid reasoning effort {effort!r}")
        return value


class CompletionRequest(_Common):
    """POST /v1/completions (the prompt is templated, as in Ollama; ``raw`` skips that)."""

    prompt: str
    suffix: str | None = None
    echo: bool | None = None
    best_of: Annotated[Int, Field(ge=1, le=1)] | None = None
    logprobs: int | None = None
    raw: bool = False

    def to_generate_request(self) -> GenerateRequest:
        """The native request this one stands for."""
        if self.echo:
            raise InvalidRequest("echo is not supported")
        if self.logprobs is not None:
            raise InvalidRequest("logprobs are not supported")
        return GenerateRequest(
            model=self.model,
            stream=self.stream,
            keep_alive=self.keep_alive,
            options=self.ollama_options(self.max_tokens),
            prompt=self.prompt,
            suffix=self.suffix or "",
            raw=self.raw,
            format=None,
            truncate=None,
            shift=None,
            _debug_render_only=False,
            think=None,
            template=None,
        )


class EmbeddingRequest(BaseModel):
    """POST /v1/embeddings."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., min_length=1, max_length=512)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1, le=1 << 20)] | None = None
    user: str | None = None
    # Extensions (Ollama's /api/embed fields).
    truncate: bool = True
    keep_alive: str | float | None = None
    options: Options | None = None

    def inputs(self) -> list[str]:
        """The texts to embed (at least one)."""
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise InvalidRequest("input must not be empty")
        return texts


# -- messages -------------------------------------------------------------------------------------
def _messages(messages: list[ChatMessageIn]) -> list[Message]:
    out: list[Message] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for tool results
    for m in messages:
        role = {"developer": "system", "function": "tool"}.get(m.role, m.role)
        text, images = _content(m.content)
        calls = [_call(c) for c in m.tool_calls or ()]
        for c in calls:
            if c.id:
                names[c.id] = c.function.name
        tool_name = m.name if role == "tool" and m.name else None
        if role == "tool" and tool_name is None and m.tool_call_id:
            tool_name = names.get(m.tool_call_id)
        out.append(
            Message(
                role=role,
                content=text,
                images=images or None,
                tool_calls=calls or None,
                tool_name=tool_name,
                tool_call_id=m.tool_call_id,
                thinking=m.reasoning or m.reasoning_content,
            )
        )
    return out


def _content(content: str | list[TextPart | ImagePart] | None) -> tuple[str, list[str]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts, images = [], []
    for part in content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        else:
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            images.append(_image(url))
    return "\n".join(texts), images


def _image(url: str) -> str:
    match = _DATA_URI.match(url)
    if match is None:
        raise InvalidRequest(
            "invalid image input: only base64 data URIs (data:image/png;base64,...) are supported"
        )
    try:
        base64.b64decode(match[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("invalid image input: the data URI is not valid base64") from None
    return match[1]


def _call(call: ToolCallIn) -> ToolCallWire:
    args = call.function.arguments
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            raise InvalidRequest(
                f"tool call {call.function.name!r}: arguments are not valid JSON"
            ) from None
    if not isinstance(args, dict):
        raise InvalidRequest(f"tool call {call.function.name!r}: arguments must be a JSON object")
    return ToolCallWire(
        id=call.id, function=ToolCallFunctionWire(name=call.function.name, arguments=args)
    )
