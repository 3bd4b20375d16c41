"""Client tests run on asyncio, through `httpx.MockTransport` (no server, no network).

The helpers are handed out as fixtures because pytest runs with ``--import-mode=importlib``,
where a test module cannot import a sibling helper module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx
import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _ndjson(
    *objects: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)
    return httpx.Response(
        status, content=body, headers={"Content-Type": "application/x-ndjson", **(headers or {})}
    )


def _body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


class Recorder:
    """A MockTransport handler that records every request and answers with `respond`."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


async def _delayed(parts: Iterable[tuple[float, bytes]]) -> AsyncIterator[bytes]:
    for delay, data in parts:
        await asyncio.sleep(delay)
        yield data


@pytest.fixture
def ndjson() -> Callable[..., httpx.Response]:
    """Build an NDJSON response, as Ollama streams it: ``ndjson(*objects, status=, headers=)``."""
    return _ndjson


@pytest.fixture
def body_of() -> Callable[[httpx.Request], Any]:
    """The JSON body a request carried (None when it had none)."""
    return _body_of


@pytest.fixture
def recorder() -> type[Recorder]:
    """The `Recorder` class: ``recorder(respond)`` records requests and answers them."""
    return Recorder


@pytest.fixture
def delayed() -> Callable[[Iterable[tuple[float, bytes]]], AsyncIterator[bytes]]:
    """Response content that sleeps `delay` seconds before each `(delay, bytes)` part."""
    return _delayed
