"""`Client`: the synchronous client, built on the same `_base`/`_requests` builders.

Only the I/O differs from `_client.AsyncClient`; see that module for why `Client` is not a wrapper
that runs the async client on a private event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, TypeAlias, TypeVar, Unpack, overload

import httpx

from . import _requests as calls
from ._base import (
    DEFAULT_TIMEOUT,
    BaseClient,
    BlobSource,
    bytes_digest,
    decode,
    decode_line,
    file_digest,
    iter_file,
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

__all__ = ["Client"]

R = TypeVar("R", bound=ResponseModel)
HeadersArg: TypeAlias = Mapping[str, str] | None


class Client(BaseClient):
    """Synchronous client for an Ollama-compatible server (same API as `AsyncClient`).

    `host` defaults to `OLLAMA_HOST` (then ``127.0.0.1:11434``); `timeout` to 5 s to connect and
    no read limit. Every method takes per-call `headers` (e.g. ``X-Transaction-Id``). Streamed
    methods (``stream=True``) return an iterator; the request is sent when iteration starts.
    """

    _http: httpx.Client

    def __init__(
        self,
        host: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        follow_redirects: bool = True,
    ) -> None:
        super().__init__(host, timeout=timeout, headers=headers)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            headers=self.headers,
            transport=transport,
            follow_redirects=follow_redirects,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, request: httpx.Request) -> httpx.Response:
        with self._transport_errors():
            return self._http.send(request)

    def _call(self, cls: type[R], call: ApiCall, headers: HeadersArg) -> R:
        return decode(cls, self._send(self._build(call, headers)))

    def _call_empty(self, call: ApiCall, headers: HeadersArg) -> None:
        response = self._send(self._build(call, headers))
        if response.is_error:
            raise response_error(response)

    def _stream(self, cls: type[R], request: httpx.Request) -> Iterator[R]:
        with self._transport_errors():
            response = self._http.send(request, stream=True)
            try:
                if response.is_error:
                    response.read()
                    raise response_error(response)
                for line in response.iter_lines():
                    if (chunk := decode_line(cls, line, response)) is not None:
                        yield chunk
            finally:
                response.close()

    def _maybe_stream(
        self, cls: type[R], call: ApiCall, *, stream: bool, headers: HeadersArg
    ) -> R | Iterator[R]:
        if stream:
            return self._stream(cls, self._build(call, headers))
        return self._call(cls, call, headers)

    @overload
    def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> GenerateResponse: ...
    @overload
    def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: Literal[True],
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> Iterator[GenerateResponse]: ...
    @overload
    def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: bool,
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> GenerateResponse | Iterator[GenerateResponse]: ...
    def generate(
        self,
        model: str,
        prompt: str | None = None,
        *,
        stream: bool = False,
        headers: HeadersArg = None,
        **params: Unpack[GenerateParams],
    ) -> GenerateResponse | Iterator[GenerateResponse]:
        """POST /api/generate: complete `prompt` (NDJSON chunks when `stream`)."""
        call = calls.generate(model, prompt, stream=stream, params=params)
        return self._maybe_stream(GenerateResponse, call, stream=stream, headers=headers)

    @overload
    def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse: ...
    @overload
    def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: Literal[True],
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> Iterator[ChatResponse]: ...
    @overload
    def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: bool,
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse | Iterator[ChatResponse]: ...
    def chat(
        self,
        model: str,
        messages: Sequence[MessageInput] | None = None,
        *,
        stream: bool = False,
        headers: HeadersArg = None,
        **params: Unpack[ChatParams],
    ) -> ChatResponse | Iterator[ChatResponse]:
        """POST /api/chat: the assistant's next message (NDJSON chunks when `stream`)."""
        call = calls.chat(model, messages, stream=stream, params=params)
        return self._maybe_stream(ChatResponse, call, stream=stream, headers=headers)

    def embed(
        self,
        model: str,
        input: str | Sequence[str],
        *,
        headers: HeadersArg = None,
        **params: Unpack[EmbedParams],
    ) -> EmbedResponse:
        """POST /api/embed: one embedding per input."""
        return self._call(EmbedResponse, calls.embed(model, input, params=params), headers)

    def show(
        self, model: str, *, verbose: bool | None = None, headers: HeadersArg = None
    ) -> ShowResponse:
        """POST /api/show: a model's Modelfile, template, parameters and metadata."""
        return self._call(ShowResponse, calls.show(model, verbose=verbose), headers)

    def ps(self, *, headers: HeadersArg = None) -> ProcessResponse:
        """GET /api/ps: the models loaded in memory."""
        return self._call(ProcessResponse, calls.PS, headers)

    def version(self, *, headers: HeadersArg = None) -> VersionResponse:
        """GET /api/version."""
        return self._call(VersionResponse, calls.VERSION, headers)

    @overload
    def pull(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse: ...
    @overload
    def pull(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[True],
        headers: HeadersArg = None,
    ) -> Iterator[ProgressResponse]: ...
    @overload
    def pull(
        self, model: str, *, insecure: bool | None = None, stream: bool, headers: HeadersArg = None
    ) -> ProgressResponse | Iterator[ProgressResponse]: ...
    def pull(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: bool = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse | Iterator[ProgressResponse]:
        """POST /api/pull: download a model from its registry (progress when `stream`)."""
        call = calls.pull(model, insecure=insecure, stream=stream)
        return self._maybe_stream(ProgressResponse, call, stream=stream, headers=headers)

    @overload
    def push(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse: ...
    @overload
    def push(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: Literal[True],
        headers: HeadersArg = None,
    ) -> Iterator[ProgressResponse]: ...
    @overload
    def push(
        self, model: str, *, insecure: bool | None = None, stream: bool, headers: HeadersArg = None
    ) -> ProgressResponse | Iterator[ProgressResponse]: ...
    def push(
        self,
        model: str,
        *,
        insecure: bool | None = None,
        stream: bool = False,
        headers: HeadersArg = None,
    ) -> ProgressResponse | Iterator[ProgressResponse]:
        """POST /api/push: upload a model to its registry (progress when `stream`)."""
        call = calls.push(model, insecure=insecure, stream=stream)
        return self._maybe_stream(ProgressResponse, call, stream=stream, headers=headers)

    @overload
    def create(
        self,
        model: str,
        *,
        stream: Literal[False] = False,
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> ProgressResponse: ...
    @overload
    def create(
        self,
        model: str,
        *,
        stream: Literal[True],
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> Iterator[ProgressResponse]: ...
    @overload
    def create(
        self,
        model: str,
        *,
        stream: bool,
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> ProgressResponse | Iterator[ProgressResponse]: ...
    def create(
        self,
        model: str,
        *,
        stream: bool = False,
        headers: HeadersArg = None,
        **params: Unpack[CreateParams],
    ) -> ProgressResponse | Iterator[ProgressResponse]:
        """POST /api/create: a model from `from_` or uploaded `files` (see `create_blob`)."""
        call = calls.create(model, stream=stream, params=params)
        return self._maybe_stream(ProgressResponse, call, stream=stream, headers=headers)

    def copy(self, source: str, destination: str, *, headers: HeadersArg = None) -> None:
        """POST /api/copy: make `destination` another name for `source`."""
        self._call_empty(calls.copy(source, destination), headers)

    def delete(self, model: str, *, headers: HeadersArg = None) -> None:
        """DELETE /api/delete: remove a model (and the blobs nothing else uses)."""
        self._call_empty(calls.delete(model), headers)

    def stop(self, model: str, *, headers: HeadersArg = None) -> GenerateResponse:
        """Unload `model` now: an empty generate with ``keep_alive: 0`` (as `ollama stop`)."""
        return self._call(GenerateResponse, calls.stop(model), headers)

    def tokenize(self, model: str, content: str, *, headers: HeadersArg = None) -> TokenizeResponse:
        """POST /api/tokenize: the model's token ids for `content`."""
        return self._call(TokenizeResponse, calls.tokenize(model, content), headers)

    def detokenize(
        self, model: str, tokens: Sequence[int], *, headers: HeadersArg = None
    ) -> DetokenizeResponse:
        """POST /api/detokenize: the text of `tokens`."""
        call = calls.detokenize(model, tokens)
        return self._call(DetokenizeResponse, call, headers)

    def blob_exists(self, digest: str, *, headers: HeadersArg = None) -> bool:
        """HEAD /api/blobs/{digest}: whether the server holds the blob (``sha256:<hex>``)."""
        response = self._send(self._build(calls.blob("HEAD", digest), headers))
        if response.status_code == httpx.codes.NOT_FOUND:
            return False
        if response.is_error:
            raise response_error(response)
        return True

    def create_blob(self, source: BlobSource, *, headers: HeadersArg = None) -> str:
        """Upload a file (path) or bytes as a blob unless the server has it; return its digest.

        The sha256 is computed here and the upload is streamed, so a large GGUF is never held in
        memory.
        """
        if isinstance(source, bytes):
            digest = bytes_digest(source)
        else:
            path = Path(source)
            digest = file_digest(path)
        if self.blob_exists(digest, headers=headers):
            return digest
        content = source if isinstance(source, bytes) else iter_file(path)
        upload_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
        request = self._build(calls.blob("POST", digest), upload_headers, content)
        response = self._send(request)
        if response.is_error:
            raise response_error(response)
        return digest

    # Last, so that `list` names the builtin in every annotation above.
    def list(self, *, headers: HeadersArg = None) -> ListResponse:
        """GET /api/tags: the models available locally."""
        return self._call(ListResponse, calls.LIST, headers)
