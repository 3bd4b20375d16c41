"""What `AsyncClient` and `Client` share: host parsing, configuration, response decoding.

Everything here is pure (no I/O): `AsyncClient` does the I/O, and the sync `Client` runs an
`AsyncClient` on a private loop thread, so there is one implementation of every call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import urllib.parse
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import ValidationError

from ._exceptions import ConnectError, RequestError, RequestTimeout, ResponseError
from ._requests import ApiCall
from ._types import ResponseModel

__all__ = ["DEFAULT_TIMEOUT", "BaseClient", "BlobSource", "decode", "decode_line", "parse_host"]

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=ResponseModel)

DEFAULT_PORT = 11434
DEFAULT_TIMEOUT = httpx.Timeout(None, connect=5.0)
"""Connect within 5 s; no read limit, since a model load or a long generation can take minutes."""

BLOB_CHUNK_SIZE = 1 << 20

BlobSource = str | os.PathLike[str] | bytes
"""What `create_blob` uploads: a file path or the bytes themselves."""


def _version() -> str:
    try:
        return metadata.version("quantserve")
    except metadata.PackageNotFoundError:
        return "0.0.0"


USER_AGENT = f"quantserve-clients/{_version()} Python/{platform.python_version()}"


def parse_host(host: str | None) -> str:
    """Turn ``[scheme://]host[:port][/path]`` into a base URL, the way Ollama reads `OLLAMA_HOST`.

    No scheme means http and port 11434; an explicit ``http://`` or ``https://`` without a port
    means 80 or 443 (as Ollama's `envconfig.Host`). `0.0.0.0` and `::` are bind-all addresses, not
    destinations, so they become the loopback address.
    """
    value = (host or "").strip().strip("'\"")
    scheme, sep, rest = value.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, rest = "http", value
    else:
        scheme = scheme.lower()
        default_port = {"http": 80, "https": 443}.get(scheme, DEFAULT_PORT)
    hostport, _, path = rest.partition("/")
    split = urllib.parse.urlsplit(f"//{hostport}")
    try:
        port = split.port
    except ValueError:
        logger.warning("invalid port in host %r, using %d", value, default_port)
        port = None
    hostname = split.hostname or "127.0.0.1"
    if hostname == "0.0.0.0":
        hostname = "127.0.0.1"
    elif hostname == "::":
        hostname = "::1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    path = path.strip("/")
    return f"{scheme}://{hostname}:{port or default_port}" + (f"/{path}" if path else "")


class BaseClient:
    """Configuration shared by both clients; builds requests and decodes responses."""

    _http: httpx.Client | httpx.AsyncClient

    def __init__(
        self,
        host: str | None = None,
        *,
        timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # OLLAMA_HOST is only a default: an explicit host always wins.
        self.base_url = parse_host(host if host is not None else os.environ.get("OLLAMA_HOST"))
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.headers = httpx.Headers({"Accept": "application/json", "User-Agent": USER_AGENT})
        self.headers.update(headers or {})

    def _build(
        self,
        call: ApiCall,
        headers: Mapping[str, str] | None,
        content: bytes | Iterable[bytes] | AsyncIterable[bytes] | None = None,
    ) -> httpx.Request:
        return self._http.build_request(
            call.method,
            call.path,
            json=call.body.body() if call.body is not None else None,
            content=content,
            headers=headers,
        )

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Translate httpx transport errors into this package's `RequestError` tree."""
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ConnectError(f"could not connect to {self.base_url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"{type(exc).__name__}: {exc}") from exc
        except httpx.RequestError as exc:
            raise RequestError(f"{type(exc).__name__}: {exc}") from exc


def response_error(response: httpx.Response) -> ResponseError:
    """The `ResponseError` for a non-2xx response whose body has been read."""
    text = response.content.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        message: str = payload["error"]
    else:
        message = text.strip() or response.reason_phrase
    return ResponseError(message, response.status_code, headers=response.headers)


def decode(cls: type[R], response: httpx.Response) -> R:
    """Decode a whole (already read) response body into `cls`, or raise `ResponseError`."""
    if response.is_error:
        raise response_error(response)
    try:
        obj = cls.model_validate_json(response.content)
    except ValidationError as exc:
        raise _invalid(response, exc) from exc
    obj._headers = response.headers
    return obj


def decode_line(cls: type[R], line: str, response: httpx.Response) -> R | None:
    """Decode one NDJSON line; ``None`` for a blank line; an ``{"error"}`` line raises."""
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _invalid(response, exc) from exc
    if isinstance(data, dict) and "error" in data:
        # Ollama keeps the 200 status and reports a failure after the first byte as a last line.
        raise ResponseError(str(data["error"]), response.status_code, headers=response.headers)
    try:
        obj = cls.model_validate(data)
    except ValidationError as exc:
        raise _invalid(response, exc) from exc
    obj._headers = response.headers
    return obj


def _invalid(response: httpx.Response, exc: Exception) -> ResponseError:
    return ResponseError(
        f"invalid response from server: {exc}", response.status_code, headers=response.headers
    )


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(BLOB_CHUNK_SIZE):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def bytes_digest(data: bytes) -> str:
    """``sha256:<hex>`` of in-memory bytes."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"
