"""Fixtures for the live client tests: the real server (``live`` from tests/conftest.py).

Helpers are fixtures because with ``--import-mode=importlib`` a test module cannot import a
sibling module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest


@dataclass
class Exchange:
    """One request sent through `RecordingTransport` and the headers of its answer."""

    request_headers: httpx.Headers
    status_code: int
    response_headers: httpx.Headers


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport, remembering the headers of each exchange (no stand-in)."""

    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)
    exchanges: list[Exchange] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.exchanges.append(Exchange(request.headers, response.status_code, response.headers))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def recording_transport() -> RecordingTransport:
    return RecordingTransport()
