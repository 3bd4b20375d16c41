"""`Client`: `AsyncClient` run on a private event loop, so there is one implementation.

Each `Client` owns one `AsyncClient` and one daemon thread running an asyncio loop (started by the
first call, stopped by `close()`). A method sends its coroutine to that loop with
`asyncio.run_coroutine_threadsafe` and waits for the result, so it works from any thread,
including one that already runs an event loop: nothing ever runs on the caller's loop. A streamed
result (an async iterator) is handed back as a plain `Iterator` that pulls one item at a time from
the loop thread; closing it closes the async iterator, which releases the HTTP response.

Typing without restating the API: the methods are descriptors built from `AsyncClient`'s own
methods, typed with `ParamSpec`. mypy keeps every overload of a function captured by a ParamSpec
and drops those whose return type does not fit, so `_whole` keeps the ``stream=False`` item
(``-> R``) and `_streamed` the ``stream: Literal[True]`` item (``-> AsyncIterator[R]`` becomes
``Iterator[R]``). A call with a plain `bool` for `stream` has no generic mapping (its return type is
the union) and is not typed on `Client`: pass a literal, or use `AsyncClient`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, Self, TypeVar, cast, overload

import httpx

from ._base import DEFAULT_TIMEOUT
from ._client import AsyncClient
from ._types import ResponseModel

__all__ = ["Client"]

P = ParamSpec("P")
P_stream = ParamSpec("P_stream")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R_co = TypeVar("R_co", bound=ResponseModel, covariant=True)
# Everything a method returns except a stream, so `_sync` never picks a ``stream=True`` overload.
V = TypeVar("V", bound=ResponseModel | str | bool | None)
R = TypeVar("R", bound=ResponseModel)

AsyncMethod = Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]


class _Streaming(Protocol[P, R_co, P_stream]):
    """A sync streamed method: its ``stream=False`` overload, then its ``stream=True`` one."""

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    @overload
    def __call__(self, *args: P_stream.args, **kwargs: P_stream.kwargs) -> Iterator[R_co]: ...


class _SyncMethod(Generic[P, T_co]):
    """Descriptor: `Client.<name>` is `AsyncClient.<name>` run to completion on the loop thread."""

    def __init__(self, fn: AsyncMethod[..., Any]) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Client]) -> Self: ...
    @overload
    def __get__(self, obj: Client, owner: type[Client]) -> Callable[P, T_co]: ...
    def __get__(self, obj: Client | None, owner: type[Client]) -> Self | Callable[P, T_co]:
        return self if obj is None else obj._method(self.fn)


class _SyncStreamingMethod(_SyncMethod[P, R_co], Generic[P, R_co, P_stream]):
    """Descriptor for a method with ``stream`` overloads: async iterators become iterators."""

    @overload
    def __get__(self, obj: None, owner: type[Client]) -> Self: ...
    @overload
    def __get__(self, obj: Client, owner: type[Client]) -> _Streaming[P, R_co, P_stream]: ...
    def __get__(
        self, obj: Client | None, owner: type[Client]
    ) -> Self | _Streaming[P, R_co, P_stream]:
        return self if obj is None else obj._method(self.fn)


def _sync(fn: AsyncMethod[P, V]) -> _SyncMethod[P, V]:
    return _SyncMethod(fn)


# Typing views of one overloaded `AsyncClient` method: each keeps the overload its return fits.
# At run time both are the async function itself, which `_streamed` wraps once.
def _whole(fn: AsyncMethod[P, R]) -> Callable[P, R]:
    return cast("Callable[P, R]", fn)


def _iterated(fn: AsyncMethod[P, AsyncIterator[R]]) -> Callable[P, Iterator[R]]:
    return cast("Callable[P, Iterator[R]]", fn)


def _streamed(
    whole: Callable[P, R], streamed: Callable[P_stream, Iterator[R]]
) -> _SyncStreamingMethod[P, R, P_stream]:
    return _SyncStreamingMethod(cast("AsyncMethod[..., Any]", whole))


class Client:
    """Synchronous client for an Ollama-compatible server: the `AsyncClient` API without ``await``.

    `host` defaults to `OLLAMA_HOST` (then ``127.0.0.1:11434``); `timeout` to 5 s to connect and
    no read limit. Every method takes per-call `headers`. Streamed methods (``stream=True``) return
    an iterator; the request is sent when iteration starts, and `close()` on it ends the response.
    `transport` may be sync (run in worker threads) or async.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
        follow_redirects: bool = True,
    ) -> None:
        if isinstance(transport, httpx.BaseTransport):
            transport = _ThreadedTransport(transport)
        self._async = AsyncClient(
            host,
            timeout=timeout,
            headers=headers,
            transport=transport,
            follow_redirects=follow_redirects,
        )
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def base_url(self) -> str:
        """The server's base URL, parsed as Ollama reads `OLLAMA_HOST`."""
        return self._async.base_url

    @property
    def timeout(self) -> httpx.Timeout:
        """The default timeout of every request."""
        return self._async.timeout

    @property
    def headers(self) -> httpx.Headers:
        """The headers sent with every request."""
        return self._async.headers

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close open streams and the connection pool, then stop the loop thread."""
        with self._lock:
            loop, thread, self._closed = self._loop, self._thread, True
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            _wait(loop, _shutdown(loop, self._async))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=_serve, args=(self._loop,), name="quantserve-client-loop", daemon=True
                )
                self._thread.start()
            return self._loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            loop = self._start()
        except BaseException:
            coro.close()  # never scheduled: say so, instead of "was never awaited"
            raise
        return _wait(loop, coro)

    def _method(self, fn: AsyncMethod[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = self._run(fn(self._async, *args, **kwargs))
            if isinstance(result, AsyncIterator):
                return _BlockingIterator(self._start(), result)
            return result

        call.__name__ = fn.__name__
        call.__doc__ = fn.__doc__
        return call

    generate = _streamed(_whole(AsyncClient.generate), _iterated(AsyncClient.generate))
    chat = _streamed(_whole(AsyncClient.chat), _iterated(AsyncClient.chat))
    pull = _streamed(_whole(AsyncClient.pull), _iterated(AsyncClient.pull))
    push = _streamed(_whole(AsyncClient.push), _iterated(AsyncClient.push))
    create = _streamed(_whole(AsyncClient.create), _iterated(AsyncClient.create))
    embed = _sync(AsyncClient.embed)
    show = _sync(AsyncClient.show)
    ps = _sync(AsyncClient.ps)
    version = _sync(AsyncClient.version)
    copy = _sync(AsyncClient.copy)
    delete = _sync(AsyncClient.delete)
    stop = _sync(AsyncClient.stop)
    tokenize = _sync(AsyncClient.tokenize)
    detokenize = _sync(AsyncClient.detokenize)
    blob_exists = _sync(AsyncClient.blob_exists)
    create_blob = _sync(AsyncClient.create_blob)
    list = _sync(AsyncClient.list)


class _BlockingIterator(Iterator[T]):
    """An async iterator on `loop`, pulled one item at a time from another thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: AsyncIterator[T]) -> None:
        self._loop = loop
        self._source: AsyncIterator[T] | None = source

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        if self._source is None:
            raise StopIteration
        try:
            done, item = _wait(self._loop, _anext(self._source))
        except BaseException:
            self._source = None  # the async generator has finished (its `finally` ran)
            raise
        if done:
            self._source = None
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop early: close the async iterator on its loop (for a stream, end the response)."""
        source, self._source = self._source, None
        if source is not None and not self._loop.is_closed():
            _wait(self._loop, _aclose(source))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _ThreadedTransport(httpx.AsyncBaseTransport):
    """A sync transport (e.g. `httpx.HTTPTransport`, `MockTransport`) run in worker threads."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.SyncByteStream):
            # An upload streamed from the loop (a blob file): the worker pulls it chunk by chunk.
            chunks = _BlockingIterator(asyncio.get_running_loop(), aiter(request.stream))
            request.stream = _SyncBody(chunks)
        response = await asyncio.to_thread(self._transport.handle_request, request)
        if isinstance(response.stream, httpx.AsyncByteStream):  # e.g. an in-memory body
            return response
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_AsyncBody(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await asyncio.to_thread(self._transport.close)


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, chunks: _BlockingIterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._chunks.close()


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = iter(self._stream)
        while (chunk := await asyncio.to_thread(_next_chunk, chunks)) is not None:
            yield chunk

    async def aclose(self) -> None:
        await asyncio.to_thread(self._stream.close)


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


async def _shutdown(loop: asyncio.AbstractEventLoop, client: AsyncClient) -> None:
    # Streams left half-read end first (their responses go back to the pool), then the pool.
    await loop.shutdown_asyncgens()
    await client.aclose()
    await loop.shutdown_default_executor()


async def _anext(source: AsyncIterator[T]) -> tuple[bool, T | None]:
    try:
        return False, await anext(source)
    except StopAsyncIteration:
        return True, None


async def _aclose(source: AsyncIterator[Any]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


def _wait(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on `loop` (another thread's) and block until it is done."""
    try:
        future = asyncio.run_coroutine_threadsafe(coro, loop)
    except RuntimeError:  # the loop is closed: its client was closed
        coro.close()
        raise
    try:
        return future.result()
    except BaseException:
        future.cancel()  # e.g. KeyboardInterrupt in the caller: stop the work on the loop too
        raise
