"""Exceptions raised by the client.

The tree::

    ClientError                  base class of everything this package raises on purpose
    ├── ResponseError            the server answered with an error: a non-2xx status with
    │                            {"error": ...}, or an {"error": ...} line in the middle of a stream
    ├── RequestError             no usable answer: a transport failure (the httpx exception is
    │   │                        kept as ``__cause__``)
    │   ├── ConnectError         could not connect (refused, DNS, connect timeout); nothing was
    │   │                        sent, so a retry is safe
    │   └── RequestTimeout       a read/write/pool timeout, or the orchestrator's per-request
    │                            deadline (also a builtin ``TimeoutError``)
    └── OrchestratorClosed       the orchestrator is closed, or was closed before this submission
                                 finished
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

__all__ = [
    "ClientError",
    "ConnectError",
    "OrchestratorClosed",
    "RequestError",
    "RequestTimeout",
    "ResponseError",
]


class ClientError(Exception):
    """Base class of every error raised by `clients`.

    `transaction_id` is set by the `Orchestrator` on errors that escape `submit()`, so that a
    failure can be correlated with server logs even when the caller did not choose the id.
    """

    transaction_id: str | None = None


class ResponseError(ClientError):
    """The server answered with an error.

    `status_code` is the HTTP status; for an error line in the middle of a stream it is the
    status of the (already started, usually 200) response. `headers` are the response headers.
    """

    def __init__(
        self,
        error: str,
        status_code: int = -1,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code
        self.headers: Mapping[str, str] = dict(headers) if headers is not None else {}

    def __str__(self) -> str:
        return f"{self.error} (status code: {self.status_code})"

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait from the `Retry-After` header (delta-seconds or HTTP-date), if any."""
        value = next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)
        return parse_retry_after(value) if value is not None else None


class RequestError(ClientError):
    """The request failed at the transport level; the httpx exception is the `__cause__`."""


class ConnectError(RequestError):
    """The client could not connect to the server (nothing was sent)."""


class RequestTimeout(RequestError, TimeoutError):
    """A timeout elapsed while sending the request or waiting for the response."""


class OrchestratorClosed(ClientError):
    """The orchestrator is closed (or was closed before the submission finished)."""


def parse_retry_after(value: str) -> float | None:
    """Parse a `Retry-After` value: delta-seconds or an HTTP-date; ``None`` when malformed."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    # A date in the past, or a negative delta, means "now".
    return max(seconds, 0.0)
