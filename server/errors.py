"""Errors the server reports, one HTTP status per class.

    ServerError (500)
     ├── InvalidRequest (400)
     │    ├── ContextLengthExceeded (400)
     │    └── CapabilityMissing (400)
     ├── ModelNotFound (404)
     ├── RequestCancelled (499)
     ├── QueueFull (503, Retry-After)
     ├── EngineUnavailable (503)
     └── ModelLoadFailed (500)

One handler renders every one of them as Ollama's ``{"error": "..."}`` body (and the OpenAI
routes render the same classes in OpenAI's shape). Engine and store code raise these (or their
own exceptions, translated once at the route boundary); nothing matches on message text.
"""

from __future__ import annotations

from typing import ClassVar


class ServerError(Exception):
    """Base class: an error with an HTTP status code and a user-facing message."""

    status_code: ClassVar[int] = 500
    openai_type: ClassVar[str] = "api_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers for this error."""
        return {}


class InvalidRequest(ServerError):
    """The request is malformed or asks for something impossible."""

    status_code = 400
    openai_type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    """The prompt does not fit in the context window and truncation was refused."""


class CapabilityMissing(InvalidRequest):
    """The model cannot do what the endpoint needs (tools, embeddings, vision...)."""


class ModelNotFound(ServerError):
    """No model of that name in the store."""

    status_code = 404
    openai_type = "not_found_error"


class RequestCancelled(ServerError):
    """The client went away before the request was scheduled."""

    status_code = 499


class QueueFull(ServerError):
    """Too many requests are waiting; try again later."""

    status_code = 503
    retry_after_s: ClassVar[int] = 1

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message or "server busy, please try again.  maximum pending requests exceeded"
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class EngineUnavailable(ServerError):
    """The engine for this model is not running (stopped or crashed)."""

    status_code = 503


class ModelLoadFailed(ServerError):
    """llama.cpp could not load the model or create its context."""
