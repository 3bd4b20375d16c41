"""Long model-management jobs (pull, push, create) on a worker thread, as async progress events.

The job runs on its own thread (not the default executor, which a slow pull would starve)
and reports through ``emit``; the route streams what it emits. When the response is closed
early (the client went away), ``cancel`` is set and the job stops at its next check. Store
and registry errors are translated here, once, into :class:`ServerError` classes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any

from models.errors import (
    BlobNotFound,
    BlobTooLarge,
    InvalidDigest,
    InvalidGGUF,
    InvalidModelName,
    ModelsError,
)
from models.errors import ModelNotFound as StoreModelNotFound
from models.registry import (
    RegistryCancelled,
    RegistryNotFound,
    RegistryRefused,
    RegistryUnauthorized,
    RegistryUnavailable,
)
from server.engine.quantize import QuantizeError
from server.engine.templates import TemplateRenderError
from server.errors import InvalidRequest, ModelNotFound, RequestCancelled, ServerError

__all__ = [
    "BadGateway",
    "Emit",
    "Forbidden",
    "Job",
    "NotFound",
    "PayloadTooLarge",
    "Unauthorized",
    "job_events",
    "translate",
]

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Emit = Callable[[Event], None]
Job = Callable[[Emit, threading.Event], None]


class NotFound(ServerError):
    """A blob (or other non-model thing) that does not exist."""

    status_code = 404


class Unauthorized(ServerError):
    """The registry wants credentials."""

    status_code = 401


class Forbidden(ServerError):
    """Refused by the registry address policy."""

    status_code = 403


class PayloadTooLarge(ServerError):
    """An upload over the size cap."""

    status_code = 413


class BadGateway(ServerError):
    """The registry could not be reached or failed."""

    status_code = 502


_TRANSLATIONS: list[tuple[type[BaseException], type[ServerError]]] = [
    (RegistryNotFound, ModelNotFound),
    (StoreModelNotFound, ModelNotFound),
    (RegistryCancelled, RequestCancelled),
    (RegistryUnauthorized, Unauthorized),
    (RegistryRefused, Forbidden),
    (RegistryUnavailable, BadGateway),
    (BlobTooLarge, PayloadTooLarge),
    (InvalidModelName, InvalidRequest),
    (InvalidDigest, InvalidRequest),
    (InvalidGGUF, InvalidRequest),
    (BlobNotFound, InvalidRequest),
    (QuantizeError, InvalidRequest),
    (TemplateRenderError, InvalidRequest),
]


def translate(exc: BaseException) -> ServerError:
    """The :class:`ServerError` for an exception of the store, the registry or the engine."""
    if isinstance(exc, ServerError):
        return exc
    for source, target in _TRANSLATIONS:
        if isinstance(exc, source):
            return target(str(exc))
    if isinstance(exc, ModelsError):
        return ServerError(str(exc))  # messages of the models package carry no paths
    logger.error("model management job failed", exc_info=exc)
    return ServerError("internal error")


async def job_events(job: Job, *, name: str) -> AsyncGenerator[Event, None]:
    """Run ``job`` on a new thread and yield what it emits; its exception is raised here."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancel = threading.Event()

    def put(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: the server is shutting down
            cancel.set()

    def run() -> None:
        try:
            job(lambda event: put("event", event), cancel)
        except BaseException as exc:
            put("error", exc)
        else:
            put("done", None)

    threading.Thread(target=run, name=f"quantserve-{name}", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "event":
                yield value
            elif kind == "error":
                raise translate(value)
            else:
                return
    finally:
        cancel.set()
