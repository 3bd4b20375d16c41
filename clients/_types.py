"""Lenient response models (and the message/tool/options shapes shared with requests).

Names and field names follow Ollama's `api/types.go`; durations are nanoseconds. Metadata is
optional and unknown fields are kept (``extra="allow"``), so a newer server never breaks an older
client; only payloads (`message`, `embeddings`, `models`, ...) are required.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, PrivateAttr

__all__ = [
    "ChatResponse",
    "DetokenizeResponse",
    "EmbedResponse",
    "GenerateResponse",
    "Image",
    "JsonValue",
    "ListResponse",
    "Message",
    "ModelDetails",
    "ModelSummary",
    "Options",
    "ProcessResponse",
    "ProgressResponse",
    "ResponseModel",
    "RunningModel",
    "ShowResponse",
    "ThinkLevel",
    "TokenizeResponse",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
    "ToolFunction",
    "VersionResponse",
]

ThinkLevel = Literal["low", "medium", "high", "max"]


def _encode_image(value: object) -> object:
    # bytes and paths are read and base64-encoded; a str is taken as base64 already (guessing
    # whether a str is a file name, as ollama-python does, turns typos into confusing errors).
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, os.PathLike):
        return base64.b64encode(Path(value).read_bytes()).decode("ascii")
    return value


Image = Annotated[str, BeforeValidator(_encode_image)]
"""An image: base64 text, raw bytes, or a `pathlib.Path` to read (sent as base64)."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ResponseModel(_Lenient):
    """Base of every response: keeps the HTTP headers the response came with."""

    _headers: httpx.Headers = PrivateAttr(default_factory=httpx.Headers)

    @property
    def headers(self) -> httpx.Headers:
        """The HTTP response headers (shared by every chunk of one stream)."""
        return self._headers

    @property
    def transaction_id(self) -> str | None:
        """The `X-Transaction-Id` the server echoed, if any."""
        value: str | None = self._headers.get("x-transaction-id")
        return value


class Options(_Lenient):
    """Model options (Modelfile `PARAMETER`s). Unknown keys are passed through."""

    num_ctx: int | None = None
    num_batch: int | None = None
    num_gpu: int | None = None
    main_gpu: int | None = None
    use_mmap: bool | None = None
    num_thread: int | None = None
    num_keep: int | None = None
    num_predict: int | None = None
    seed: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    typical_p: float | None = None
    repeat_last_n: int | None = None
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: list[str] | None = None


class ToolCallFunction(_Lenient):
    """The function a tool call invokes; `arguments` is a JSON object (not a string)."""

    name: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    index: int | None = None


class ToolCall(_Lenient):
    """A tool call made by the model."""

    id: str | None = None
    function: ToolCallFunction


class ToolFunction(_Lenient):
    """A function the model may call; `parameters` is a JSON schema object."""

    name: str
    description: str | None = None
    parameters: Mapping[str, object] | None = None


class Tool(_Lenient):
    """A tool offered to the model."""

    type: Literal["function"] = "function"
    function: ToolFunction


class Message(_Lenient):
    """A chat message (request or response). `role` is system, user, assistant or tool."""

    role: str
    content: str | None = None
    thinking: str | None = None
    images: list[Image] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _Metrics(ResponseModel):
    model: str | None = None
    created_at: datetime | None = None
    done: bool | None = None
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None

    @property
    def tokens_per_second(self) -> float | None:
        """`eval_count / eval_duration`, from the server's own timing (final chunk only)."""
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / self.eval_duration * 1e9


class GenerateResponse(_Metrics):
    """One chunk (or the whole answer) of `/api/generate`."""

    response: str = ""
    thinking: str | None = None
    context: list[int] | None = None
    tool_calls: list[ToolCall] | None = None


class ChatResponse(_Metrics):
    """One chunk (or the whole answer) of `/api/chat`."""

    message: Message


class EmbedResponse(ResponseModel):
    """Answer of `/api/embed`: one (L2-normalised) vector per input."""

    model: str | None = None
    embeddings: list[list[float]]
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None


class ModelDetails(_Lenient):
    """Format, family, size and quantization of a model."""

    parent_model: str | None = None
    format: str | None = None
    family: str | None = None
    families: list[str] | None = None
    parameter_size: str | None = None
    quantization_level: str | None = None


class ModelSummary(_Lenient):
    """One local model, as listed by `/api/tags`."""

    name: str | None = None
    model: str | None = None
    modified_at: datetime | None = None
    size: int | None = None
    digest: str | None = None
    details: ModelDetails | None = None
    capabilities: list[str] | None = None


class ListResponse(ResponseModel):
    """Answer of `/api/tags`."""

    models: list[ModelSummary]


class ShowResponse(ResponseModel):
    """Answer of `/api/show`."""

    modelfile: str | None = None
    parameters: str | None = None
    template: str | None = None
    system: str | None = None
    license: str | None = None
    details: ModelDetails | None = None
    messages: list[Message] | None = None
    model_info: dict[str, JsonValue] | None = None
    projector_info: dict[str, JsonValue] | None = None
    tensors: list[dict[str, JsonValue]] | None = None
    capabilities: list[str] | None = None
    modified_at: datetime | None = None


class RunningModel(_Lenient):
    """One loaded model, as listed by `/api/ps`."""

    name: str | None = None
    model: str | None = None
    size: int | None = None
    size_vram: int | None = None
    digest: str | None = None
    details: ModelDetails | None = None
    expires_at: datetime | None = None
    context_length: int | None = None


class ProcessResponse(ResponseModel):
    """Answer of `/api/ps`."""

    models: list[RunningModel]


class ProgressResponse(ResponseModel):
    """A progress line of pull, push or create (`status` is "success" at the end)."""

    status: str | None = None
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class VersionResponse(ResponseModel):
    """Answer of `/api/version`."""

    version: str


class TokenizeResponse(ResponseModel):
    """Answer of `/api/tokenize`."""

    tokens: list[int]


class DetokenizeResponse(ResponseModel):
    """Answer of `/api/detokenize`."""

    content: str
