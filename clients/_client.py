"""`AsyncClient`: the Ollama API over httpx.

`_requests` builds every call (method, path, typed body) as an `ApiCall` and declares each method's
optional parameters once, as TypedDicts (``**params: Unpack[...]``); `_base.BaseClient` holds the
configuration and decodes every response. This class only sends requests and reads bodies. The
synchronous `Client` (`_sync_client`) is not a second implementation: it runs this class on a
private event-loop thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, TypeAlias, TypeVar, Unpack, overload

import httpx

from . import _requests as calls
from ._base import (
    BLOB_CHUNK_SIZE,
    DEFAULT_TIMEOUT,
    BaseClient,
    BlobSource,
    bytes_digest,
    decode,
    decode_line,
    file_digest,
    response_error,
)
from ._requests import ApiCall, ChatParams, CreateParams, EmbedParams, GenerateParams, MessageInput
from ._types import (
    ChatResponse,
    DetokenizeResponse,
    EmbedResponse,
    GenerateResponse,
    ListResponse,
    ProcessResponse,
    ProgressResponse,
    ResponseModel,
    ShowResponse,
    TokenizeResponse,
    VersionResponse,
)

__all__ = ["AsyncClient"]

R = TypeVar("R", bound=ResponseModel)
HeadersArg: TypeAlias = Mapping[str, str] | None


class AsyncClient(BaseClient):
    """Asynchronous client for an Ollama-compatible server.

    `host` defaults to `OLLAMA_HOST` (then ``127.0.0.1:11434``); `timeout` to 5 s to connect and
    no read limit. Every method takes per-call `headers` (e.g. ``X-Transaction-Id``). Streamed
    methods (``stream=True``) return an async iterator; the request is sent when iteration starts.
    """

    _http: httpx.AsyncClient

    def __init__(
        self,
        host: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        follow_redirects: bool = True,
    ) -> None:
        super().__init__(host, timeout=timeout, headers=headers)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=self.timeout,
            headers=self.headers,
            transport=transport,
            follow_redirects=follow_redirects,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        with self._transport_errors():
            return await self._http.send(request)

    async def _call(self, cls: type[R], call: ApiCall, headers: HeadersArg) -> R:
        return decode(cls, await self._send(self._build(call, headers)))

    async def _call_empty(self, call: ApiCall, headers: HeadersArg) -> None:
        response = await self._send(self._build(call, headers))
        if response.is_error:
            raise response_error(response)

    async def _stream(self, cls: type[R], request: httpx.Request) -> AsyncIterator[R]:
        with self._transport_errors():
            response = await self._http.send(request, stream=True)
            try:
                if response.is_error:
                    await response.aread()
                    raise response_error(response)
                async for line in response.aiter_lines():
                    if (chunk := decode_line(cls, line, response)) is not None:
                        yield chunk
            finally:
                await response.aclose()

    async def _maybe_stream(
        self, cls: type[R], call: ApiCall, *, stream: bool, headers: HeadersArg
    ) -> R | AsyncIterator[R]:
        if stream:
            return self._stream(cls, self._build(call, headers))
        return await self._call(cls, call, headers)

    @overload
    async def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> GenerateResponse: ...
    @overload
    async def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: Literal[True],
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> AsyncIterator[GenerateResponse]: ...
    @overload
    async def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: bool,
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> GenerateResponse | AsyncIterator[GenerateResponse]: ...
    async def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: bool = False,
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> GenerateResponse | AsyncIterator[GenerateResponse]:
        """POST /api/generate: complete `prompt` (NDJSON chunks when `stream`)."""
        call = calls.generate(model, prompt, stream=stream, params=params)
        return await self._maybe_stream(GenerateResponse, call, stream=stream, headers=headers)

    @overload
    async def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse: ...
    @overload
    async def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: Literal[True],
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> AsyncIterator[ChatResponse]: ...
    @overload
    async def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: bool,
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse | AsyncIterator[ChatResponse]: ...
    async def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: bool = False,
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse | AsyncIterator[ChatResponse]:
        """POST /api/chat: the assistant's next message (NDJSON chunks when `stream`)."""
        call = calls.chat(model, messages, stream=stream, params=params)
        return await self._maybe_stream(ChatResponse, call, stream=stream, headers=headers)

    async def embed(
        self,
        model: str,
        input: str | Sequence[str],
        *,
        headers: HeadersArg = None,
        **params: Unpack[EmbedParams],
    ) -> EmbedResponse:
        """POST /api/embed: one embedding per input."""
        return await self._call(EmbedResponse, calls.embed(model, input, params=params), headers)

    async def show(
        self, model: str, *, verbose: bool | None = None, headers: HeadersArg = None
    ) -> ShowResponse:
        """POST /api/show: a model's Modelfile, template, parameters and metadata."""
        return await self._call(ShowResponse, calls.show(model, verbose=verbose), headers)

    async def ps(self, *, headers: HeadersArg = None) -> ProcessResponse:
        """GET /api/ps: the models loaded in memory."""
        return await self._call(ProcessResponse, calls.PS, headers)

    async def version(self, *, headers: HeadersArg = None) -> VersionResponse:
        """GET /api/version."""
        return await self._call(VersionResponse, calls.VERSION, headers)

    @overload
    async def pull(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse: ...
    @overload
    async def pull(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[True],
        headers: HeadersArg = None,
    ) -> AsyncIterator[ProgressResponse]: ...
    @overload
    async def pull(
        self, model: str, *, insecure: bool | None = None, stream: bool, headers: HeadersArg = None
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]: ...
    async def pull(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: bool = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]:
        """POST /api/pull: download a model from its registry (progress when `stream`)."""
        call = calls.pull(model, insecure=insecure, stream=stream)
        return await self._maybe_stream(ProgressResponse, call, stream=stream, headers=headers)

    @overload
    async def push(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse: ...
    @overload
    async def push(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[True],
        headers: HeadersArg = None,
    ) -> AsyncIterator[ProgressResponse]: ...
    @overload
    async def push(
        self, model: str, *, insecure: bool | None = None, stream: bool, headers: HeadersArg = None
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]: ...
    async def push(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: bool = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]:
        """POST /api/push: upload a model to its registry (progress when `stream`)."""
        call = calls.push(model, insecure=insecure, stream=stream)
        return await self._maybe_stream(ProgressResponse, call, stream=stream, headers=headers)

    @overload
    async def create(
        self,
        model: str,
        *,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> ProgressResponse: ...
    @overload
    async def create(
        self,
        model: str,
        *,
        stream: Literal[True],
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> AsyncIterator[ProgressResponse]: ...
    @overload
    async def create(
        self,
        model: str,
        *,
        stream: bool,
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]: ...
    async def create(
        self,
        model: str,
        *,
        stream: bool = False,
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> ProgressResponse | AsyncIterator[ProgressResponse]:
        """POST /api/create: a model from `from_` or uploaded `files` (see `create_blob`)."""
        call = calls.create(model, stream=stream, params=params)
        return await self._maybe_stream(ProgressResponse, call, stream=stream, headers=headers)

    async def copy(self, source: str, destination: str, *, headers: HeadersArg = None) -> None:
        """POST /api/copy: make `destination` another name for `source`."""
        await self._call_empty(calls.copy(source, destination), headers)

    async def delete(self, model: str, *, headers: HeadersArg = None) -> None:
        """DELETE /api/delete: remove a model (and the blobs nothing else uses)."""
        await self._call_empty(calls.delete(model), headers)

    async def stop(self, model: str, *, headers: HeadersArg = None) -> GenerateResponse:
        """Unload `model` now: an empty generate with ``keep_alive: 0`` (as `ollama stop`)."""
        return await self._call(GenerateResponse, calls.stop(model), headers)

    async def tokenize(
        self, model: str, content: str, *, headers: HeadersArg = None
    ) -> TokenizeResponse:
        """POST /api/tokenize: the model's token ids for `content`."""
        return await self._call(TokenizeResponse, calls.tokenize(model, content), headers)

    async def detokenize(
        self, model: str, tokens: Sequence[int], *, headers: HeadersArg = None
    ) -> DetokenizeResponse:
        """POST /api/detokenize: the text of `tokens`."""
        call = calls.detokenize(model, tokens)
        return await self._call(DetokenizeResponse, call, headers)

    async def blob_exists(self, digest: str, *, headers: HeadersArg = None) -> bool:
        """HEAD /api/blobs/{digest}: whether the server holds the blob (``sha256:<hex>``)."""
        response = await self._send(self._build(calls.blob("HEAD", digest), headers))
        if response.status_code == httpx.codes.NOT_FOUND:
            return False
        if response.is_error:
            raise response_error(response)
        return True

    async def create_blob(self, source: BlobSource, *, headers: HeadersArg = None) -> str:
        """Upload a file (path) or bytes as a blob unless the server has it; return its digest.

        The sha256 is computed here and the upload is streamed, so a large GGUF is never held in
        memory.
        """
        if isinstance(source, bytes):
            digest = bytes_digest(source)
        else:
            path = Path(source)
            digest = await asyncio.to_thread(file_digest, path)
        if await self.blob_exists(digest, headers=headers):
            return digest
        content = source if isinstance(source, bytes) else _aiter_file(path)
        upload_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
        request = self._build(calls.blob("POST", digest), upload_headers, content)
        response = await self._send(request)
        if response.is_error:
            raise response_error(response)
        return digest

    # Last, so that `list` names the builtin in every annotation above.
    async def list(self, *, headers: HeadersArg = None) -> ListResponse:
        """GET /api/tags: the models available locally."""
        return await self._call(ListResponse, calls.LIST, headers)


async def _aiter_file(path: Path) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(f.read, BLOB_CHUNK_SIZE):
            yield chunk
    finally:
        f.close()
