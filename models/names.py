"""Model names: ``[host/][namespace/]model[:tag]`` with Ollama's validation rules.

Follows ollama ``types/model/name.go``: each part starts with a letter, digit or
``_`` and continues with ``[A-Za-z0-9_.-]``; the namespace may not contain dots;
the host may also contain ``:`` (a port) and be up to 350 characters long; the
other parts are 1-80 characters. Lookups are case-insensitive, storage keeps case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from models.errors import InvalidModelName

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_NAMESPACE",
    "DEFAULT_TAG",
    "InvalidModelName",
    "ModelName",
]

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_MAX_TEXT = 350 + 1 + 80 + 1 + 80 + 1 + 80 + len("https://")
_PART_RE = {
    "host": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*"), 350),
    "namespace": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*"), 80),
    "model": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 80),
    "tag": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 80),
}


def _check_part(kind: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidModelName(f"invalid model name: {kind} must be a string")
    pattern, max_len = _PART_RE[kind]
    if not 1 <= len(value) <= max_len:
        raise InvalidModelName(f"invalid model name: {kind} must be 1-{max_len} characters")
    if pattern.fullmatch(value) is None:
        allowed = "letters, digits, '_', '-'" + ("" if kind == "namespace" else ", '.'")
        if kind == "host":
            allowed += ", ':'"
        raise InvalidModelName(
            f"invalid model name: {kind} must start with a letter, digit or '_' "
            f"and contain only {allowed}"
        )
    if ".." in value:
        raise InvalidModelName(f"invalid model name: {kind} must not contain '..'")


@dataclass(frozen=True)
class ModelName:
    """A fully qualified, validated model name (case preserved)."""

    host: str
    namespace: str
    model: str
    tag: str

    def __post_init__(self) -> None:
        for kind in ("host", "namespace", "model", "tag"):
            _check_part(kind, getattr(self, kind))

    @classmethod
    def parse(cls, text: str) -> ModelName:
        """Parse ``[host/][namespace/]model[:tag]``, filling Ollama's defaults."""
        if not isinstance(text, str):
            raise InvalidModelName("invalid model name: must be a string")
        if not text:
            raise InvalidModelName("invalid model name: name is empty")
        if len(text) > _MAX_TEXT:
            raise InvalidModelName("invalid model name: name is too long")
        rest, tag = text, DEFAULT_TAG
        # '/' can't be in a tag, so a ':' after the last '/' starts the tag
        # (one before it belongs to host:port).
        if rest.rfind(":") > rest.rfind("/"):
            rest, _, tag = rest.rpartition(":")
        scheme, sep, after = rest.partition("://")
        if sep:
            if scheme not in ("http", "https"):
                raise InvalidModelName("invalid model name: unsupported scheme")
            rest = after
        parts = rest.split("/")
        if len(parts) > 3:
            raise InvalidModelName("invalid model name: too many '/' separated parts")
        host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
        if len(parts) == 3:
            host, namespace, model = parts
        elif len(parts) == 2:
            namespace, model = parts
        else:
            (model,) = parts
        if sep and len(parts) != 3:
            raise InvalidModelName("invalid model name: a scheme needs a host")
        return cls(host, namespace, model, tag)

    @property
    def display(self) -> str:
        """The short form Ollama shows: ``model:tag``, ``ns/model:tag`` or the full name."""
        if self.host.lower() != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.lower() != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def full(self) -> str:
        """The fully qualified form ``host/namespace/model:tag``."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """A lowercased tuple for case-insensitive comparison and dict keys."""
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    @property
    def manifest_parts(self) -> tuple[str, str, str, str]:
        """The four path components under ``manifests/`` (case as given)."""
        return (self.host, self.namespace, self.model, self.tag)

    def equal_fold(self, other: ModelName) -> bool:
        """Case-insensitive equality, like Ollama's ``Name.EqualFold``."""
        return self.key == other.key

    def __str__(self) -> str:
        return self.display
