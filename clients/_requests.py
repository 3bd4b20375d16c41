"""Requests: typed params in, Ollama's wire JSON out.

The functions at the end build each endpoint's `ApiCall` (method, path, body); both clients send
those, so the wire contract is written once. A body is sent as
``model_dump(mode="json", exclude_none=True, by_alias=True)``: an argument left at ``None`` is not
sent, so the server applies its own default. ``exclude_none`` does not reach into plain dicts, so
a JSON schema (`format`, tool `parameters`) keeps its ``null`` values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypedDict

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from ._types import Image, Message, Options, ThinkLevel, Tool

__all__ = [
    "ApiCall",
    "ApiRequest",
    "ChatParams",
    "ChatRequest",
    "CopyRequest",
    "CreateParams",
    "CreateRequest",
    "DeleteRequest",
    "DetokenizeRequest",
    "EmbedParams",
    "EmbedRequest",
    "GenerateParams",
    "GenerateRequest",
    "PullRequest",
    "PushRequest",
    "ShowRequest",
    "TokenizeRequest",
]

Format: TypeAlias = Literal["", "json"] | dict[str, JsonValue]
KeepAlive: TypeAlias = int | float | str
OptionsParam: TypeAlias = dict[str, JsonValue] | Options


class ApiRequest(BaseModel):
    """Base of every request body."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def body(self) -> dict[str, JsonValue]:
        """The JSON body, as Ollama's wire format expects it."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class GenerateRequest(ApiRequest):
    model: str
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    stream: bool | None = None
    raw: bool | None = None
    format: Format | None = None
    images: list[Image] | None = None
    options: OptionsParam | None = None
    keep_alive: KeepAlive | None = None
    think: bool | ThinkLevel | None = None


class ChatRequest(ApiRequest):
    model: str
    messages: list[Message] | None = None
    tools: list[Tool] | None = None
    format: Format | None = None
    options: OptionsParam | None = None
    stream: bool | None = None
    keep_alive: KeepAlive | None = None
    think: bool | ThinkLevel | None = None


class EmbedRequest(ApiRequest):
    model: str
    input: str | list[str]
    truncate: bool | None = None
    dimensions: int | None = None
    keep_alive: KeepAlive | None = None
    options: OptionsParam | None = None


class ShowRequest(ApiRequest):
    model: str
    verbose: bool | None = None


class PullRequest(ApiRequest):
    model: str
    insecure: bool | None = None
    stream: bool | None = None


class PushRequest(PullRequest):
    pass


class CreateRequest(ApiRequest):
    model: str
    from_: str | None = Field(default=None, alias="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: OptionsParam | None = None
    messages: list[Message] | None = None
    quantize: str | None = None
    stream: bool | None = None


class CopyRequest(ApiRequest):
    source: str
    destination: str


class DeleteRequest(ApiRequest):
    model: str


class TokenizeRequest(ApiRequest):
    model: str
    content: str


class DetokenizeRequest(ApiRequest):
    model: str
    tokens: list[int]


# Typed keyword parameters of the client methods. They are declared once and shared by the
# overloads of `AsyncClient` and `Client` (PEP 692 `**params: Unpack[...]`), so neither client
# repeats a dozen parameters per overload; tests/clients check they match the request models.

# Mappings are typed ``Mapping[str, object]``: any str-keyed mapping type-checks (a JSON schema
# held in a variable is rarely inferred as JsonValue), and pydantic validates it as JSON anyway.
ImageInput: TypeAlias = str | bytes | os.PathLike[str]
MessageInput: TypeAlias = Message | Mapping[str, object]
OptionsInput: TypeAlias = Options | Mapping[str, object]
ToolInput: TypeAlias = Tool | Mapping[str, object]
FormatInput: TypeAlias = Literal["", "json"] | Mapping[str, object]


class GenerateParams(TypedDict, total=False):
    """Optional parameters of `generate` (see Ollama's `GenerateRequest`)."""

    suffix: str | None
    system: str | None
    template: str | None
    context: Sequence[int] | None
    raw: bool | None
    format: FormatInput | None
    images: Sequence[ImageInput] | None
    options: OptionsInput | None
    keep_alive: KeepAlive | None
    think: bool | ThinkLevel | None


class ChatParams(TypedDict, total=False):
    """Optional parameters of `chat` (see Ollama's `ChatRequest`)."""

    tools: Sequence[ToolInput] | None
    format: FormatInput | None
    options: OptionsInput | None
    keep_alive: KeepAlive | None
    think: bool | ThinkLevel | None


class EmbedParams(TypedDict, total=False):
    """Optional parameters of `embed` (see Ollama's `EmbedRequest`)."""

    truncate: bool | None
    dimensions: int | None
    keep_alive: KeepAlive | None
    options: OptionsInput | None


class CreateParams(TypedDict, total=False):
    """Optional parameters of `create`; `from_` is sent as ``from``."""

    from_: str | None
    files: Mapping[str, str] | None
    adapters: Mapping[str, str] | None
    template: str | None
    system: str | None
    license: str | Sequence[str] | None
    parameters: OptionsInput | None
    messages: Sequence[MessageInput] | None
    quantize: str | None


@dataclass(frozen=True, slots=True)
class ApiCall:
    """An endpoint call, independent of I/O: what both clients send."""

    method: Literal["GET", "POST", "DELETE", "HEAD"]
    path: str
    body: ApiRequest | None = None


def generate(model: str, prompt: str | None, *, stream: bool, params: GenerateParams) -> ApiCall:
    body = {"model": model, "prompt": prompt, "stream": stream, **params}
    return ApiCall("POST", "/api/generate", GenerateRequest.model_validate(body))


def chat(
    model: str, messages: Sequence[MessageInput] | None, *, stream: bool, params: ChatParams
) -> ApiCall:
    body = {"model": model, "messages": messages, "stream": stream, **params}
    return ApiCall("POST", "/api/chat", ChatRequest.model_validate(body))


def embed(model: str, input: str | Sequence[str], *, params: EmbedParams) -> ApiCall:
    body = {"model": model, "input": input, **params}
    return ApiCall("POST", "/api/embed", EmbedRequest.model_validate(body))


def show(model: str, *, verbose: bool | None) -> ApiCall:
    return ApiCall("POST", "/api/show", ShowRequest(model=model, verbose=verbose))


def pull(model: str, *, insecure: bool | None, stream: bool) -> ApiCall:
    return ApiCall("POST", "/api/pull", PullRequest(model=model, insecure=insecure, stream=stream))


def push(model: str, *, insecure: bool | None, stream: bool) -> ApiCall:
    return ApiCall("POST", "/api/push", PushRequest(model=model, insecure=insecure, stream=stream))


def create(model: str, *, stream: bool, params: CreateParams) -> ApiCall:
    body = {"model": model, "stream": stream, **params}
    return ApiCall("POST", "/api/create", CreateRequest.model_validate(body))


def copy(source: str, destination: str) -> ApiCall:
    return ApiCall("POST", "/api/copy", CopyRequest(source=source, destination=destination))


def delete(model: str) -> ApiCall:
    return ApiCall("DELETE", "/api/delete", DeleteRequest(model=model))


def stop(model: str) -> ApiCall:
    # `ollama stop`: an empty prompt only (un)loads, and keep_alive 0 unloads at once.
    return generate(model, "", stream=False, params={"keep_alive": 0})


def tokenize(model: str, content: str) -> ApiCall:
    return ApiCall("POST", "/api/tokenize", TokenizeRequest(model=model, content=content))


def detokenize(model: str, tokens: Sequence[int]) -> ApiCall:
    body = DetokenizeRequest.model_validate({"model": model, "tokens": tokens})
    return ApiCall("POST", "/api/detokenize", body)


_DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")


def blob(method: Literal["HEAD", "POST"], digest: str) -> ApiCall:
    # The digest becomes a URL path segment: refuse anything that is not one.
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"invalid blob digest {digest!r}, expected sha256:<64 hex>")
    return ApiCall(method, f"/api/blobs/{digest}")


LIST = ApiCall("GET", "/api/tags")
PS = ApiCall("GET", "/api/ps")
VERSION = ApiCall("GET", "/api/version")
