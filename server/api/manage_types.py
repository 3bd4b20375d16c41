"""Wire schemas of the model-management endpoints (names as Ollama's ``api/types.go``).

``/api/pull``, ``/api/push``, ``/api/create``, ``/api/copy``, ``/api/delete`` and their
progress lines. Unknown fields are ignored, as Ollama's JSON decoding does; types are strict
(a string is not a bool).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from server.errors import InvalidRequest

__all__ = [
    "CopyRequest",
    "CreateMessage",
    "CreateRequest",
    "DeleteRequest",
    "ProgressResponse",
    "PullRequest",
    "PushRequest",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _NamedBody(_Body):
    model: StrictStr | None = Field(None, description="Model name.")
    name: StrictStr | None = Field(None, description="Deprecated alias of model.")

    def model_name(self) -> str:
        """The model name (``model``, else the deprecated ``name``); 400 when missing."""
        value = self.model or self.name
        if not value:
            raise InvalidRequest("model is required")
        return value


class PullRequest(_NamedBody):
    """``POST /api/pull``."""

    insecure: StrictBool = Field(False, description="Allow plain http to the registry.")
    stream: StrictBool = Field(True, description="Stream progress as NDJSON.")


class PushRequest(_NamedBody):
    """``POST /api/push``."""

    insecure: StrictBool = Field(False, description="Allow plain http to the registry.")
    stream: StrictBool = Field(True, description="Stream progress as NDJSON.")


class DeleteRequest(_NamedBody):
    """``DELETE /api/delete``."""


class CopyRequest(_Body):
    """``POST /api/copy``."""

    source: StrictStr = Field(description="Existing model name.")
    destination: StrictStr = Field(description="New name for it.")


class CreateMessage(_Body):
    """One ``MESSAGE`` of a created model."""

    role: StrictStr = Field(description="system, user or assistant.")
    content: StrictStr = Field("", description="Message text.")


class CreateRequest(_NamedBody):
    """``POST /api/create`` (the JSON form Ollama's CLI sends)."""

    from_: StrictStr | None = Field(None, alias="from", description="Base model name.")
    files: dict[StrictStr, StrictStr] | None = Field(
        None, description="Relative file name -> blob digest (uploaded with /api/blobs)."
    )
    adapters: dict[StrictStr, StrictStr] | None = Field(
        None, description="LoRA adapter file name -> blob digest."
    )
    template: StrictStr | None = Field(None, description="Prompt template (Go text/template).")
    system: StrictStr | None = Field(None, description="System prompt.")
    license: StrictStr | list[StrictStr] | None = Field(None, description="License text(s).")
    parameters: dict[StrictStr, Any] | None = Field(None, description="Default options.")
    messages: list[CreateMessage] | None = Field(None, description="Conversation seed.")
    quantize: StrictStr | None = Field(None, description="Quantize an F16/BF16/F32 model.")
    quantization: StrictStr | None = Field(None, description="Deprecated alias of quantize.")
    stream: StrictBool = Field(True, description="Stream progress as NDJSON.")

    def licenses(self) -> list[str] | None:
        """``license`` as a list (``None`` when not given)."""
        if self.license is None:
            return None
        return [self.license] if isinstance(self.license, str) else list(self.license)


class ProgressResponse(BaseModel):
    """One progress line; empty fields are omitted (Go's ``omitempty``)."""

    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0

    def event(self) -> dict[str, Any]:
        """The NDJSON object."""
        return self.model_dump(exclude_defaults=True)
