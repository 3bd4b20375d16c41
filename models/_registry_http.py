"""HTTP plumbing of the registry client: address policy, redirects, bearer tokens, bounded bodies.

Policy (CVE-2026-5530, CVE-2025-51471, CVE-2024-12886):

- the registry is the host the user named; link-local, multicast and unspecified addresses
  (cloud metadata endpoints) are refused even when named;
- a redirect (or an upload ``Location``) to another host is followed only when that host
  resolves to public addresses; private, loopback and link-local targets are refused;
- ``https`` unless the request said ``insecure``; no downgrade to ``http`` on a redirect;
- a bearer-token realm must be on the registry's own host, and the token is only ever sent
  to that host;
- bodies are read raw and inflated here, chunk by bounded chunk, so a gzip bomb is stopped
  at the byte cap instead of being inflated into memory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from models.errors import ModelsError
from models.names import ModelName

__all__ = [
    "BodyFactory",
    "RegistryCancelled",
    "RegistryError",
    "RegistryNotFound",
    "RegistryRefused",
    "RegistryUnauthorized",
    "RegistryUnavailable",
    "Resolver",
    "Session",
    "iter_body",
    "raise_for_status",
    "read_body",
]

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], list[str]]
BodyFactory = Callable[[], bytes | Iterable[bytes]]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10
_MAX_TOKEN_BYTES = 64 << 10
_MAX_ERROR_BYTES = 8 << 10
_INFLATE_STEP = 1 << 20
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(ModelsError):
    """A registry request failed; the message is safe to show to clients."""


class RegistryNotFound(RegistryError, LookupError):
    """The registry has no such manifest or blob."""


class RegistryRefused(RegistryError):
    """Refused by policy: a private redirect target, a foreign auth realm, a bad scheme."""


class RegistryUnauthorized(RegistryError):
    """The registry wants credentials we do not have."""


class RegistryUnavailable(RegistryError):
    """A transport failure or a 5xx answer: worth retrying."""


class RegistryCancelled(RegistryError):
    """The operation was cancelled (the client went away)."""


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _never_allowed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Metadata services live on link-local addresses; no registry does.
    return ip.is_link_local or ip.is_multicast or ip.is_unspecified


def _not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not ip.is_global or _never_allowed(ip)


class Session:
    """Requests to one registry on behalf of one model name (``host/namespace/model``)."""

    def __init__(
        self,
        name: ModelName,
        *,
        insecure: bool,
        timeout: float,
        cancel: threading.Event | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.scheme = "http" if insecure else "https"
        self._insecure = insecure
        self._cancel = cancel
        self._resolve = resolver or _system_resolver
        parsed = urlsplit(f"//{name.host}")
        try:
            port = parsed.port
        except ValueError:
            raise RegistryRefused("invalid registry port") from None
        if not parsed.hostname:
            raise RegistryRefused("invalid registry host")
        self.hostname = parsed.hostname.lower()
        self._port = port or (80 if insecure else 443)
        self.repo_url = f"{self.scheme}://{name.host}/v2/{name.namespace}/{name.model}"
        self._token: str | None = None
        self._checked_named = False
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 30.0)),
            follow_redirects=False,
            headers={"User-Agent": "quantserve/0.1", "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_cancel(self) -> None:
        """Raise :class:`RegistryCancelled` once the caller has asked to stop."""
        if self._cancel is not None and self._cancel.is_set():
            raise RegistryCancelled("operation cancelled")

    def wait(self, seconds: float) -> None:
        """Sleep, waking early (and raising) on cancellation."""
        if self._cancel is None:
            threading.Event().wait(seconds)
        elif self._cancel.wait(seconds):
            raise RegistryCancelled("operation cancelled")

    # -- policy ---------------------------------------------------------------------------------
    def _addresses(
        self, host: str, port: int
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        literal = _ip(host)
        if literal is not None:
            return [literal]
        try:
            found = self._resolve(host, port)
        except (OSError, UnicodeError):
            return []  # the connection attempt will report it
        return [ip for ip in (_ip(a) for a in found) if ip is not None]

    def _check_named(self) -> None:
        if self._checked_named:
            return
        if any(_never_allowed(ip) for ip in self._addresses(self.hostname, self._port)):
            raise RegistryRefused("registry address is not allowed (link-local or unspecified)")
        self._checked_named = True

    def check_url(self, url: str) -> None:
        """Refuse a URL the policy does not allow (see the module docstring)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise RegistryRefused("registry redirected to an unsupported URL scheme")
        if parts.scheme == "http" and not self._insecure:
            raise RegistryRefused("registry redirected to plain http; use insecure to allow it")
        host = (parts.hostname or "").lower()
        if not host:
            raise RegistryRefused("registry redirected to a URL without a host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise RegistryRefused("registry redirected to an invalid port") from None
        if host == self.hostname:
            self._check_named()
            return
        addresses = self._addresses(host, port)
        if any(_not_public(ip) for ip in addresses):
            raise RegistryRefused(
                f"refusing to follow the registry to {host}: private, loopback or "
                "link-local address"
            )

    def _same_host(self, url: str) -> bool:
        return (urlsplit(url).hostname or "").lower() == self.hostname

    # -- requests -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: BodyFactory | None = None,
    ) -> Iterator[httpx.Response]:
        """Send a request and yield the streaming response (redirects and one bearer
        challenge handled); transport errors become :class:`RegistryUnavailable`."""
        current, redirects, challenged = url, 0, False
        while True:
            self.check_cancel()
            self.check_url(current)
            sent = dict(headers or {})
            if self._token is not None and self._same_host(current):
                sent["Authorization"] = f"Bearer {self._token}"
            content = None if body is None else body()
            request = self._client.build_request(method, current, headers=sent, content=content)
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                raise RegistryUnavailable(f"{method} {_where(current)}: {_describe(exc)}") from None
            try:
                if response.status_code in _REDIRECTS:
                    redirects += 1
                    location = response.headers.get("location")
                    if not location or redirects > _MAX_REDIRECTS:
                        raise RegistryError("registry sent a bad or endless redirect")
                    current = urljoin(current, location)
                    if response.status_code == 303:
                        method, body = "GET", None
                    continue
                challenge = response.headers.get("www-authenticate", "")
                if response.status_code == 401 and not challenged and _is_bearer(challenge):
                    challenged = True
                    self._token = self._fetch_token(challenge)
                    continue
                yield response
                return
            finally:
                response.close()

    def _fetch_token(self, challenge: str) -> str:
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = params.pop("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryUnauthorized("registry sent an invalid authentication realm")
        if parts.hostname.lower() != self.hostname:
            # CVE-2025-51471: a realm elsewhere would receive our credentials.
            raise RegistryRefused("registry authentication realm is on another host")
        query = urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
        url = f"{realm}{'&' if parts.query else '?'}{query}" if query else realm
        self.check_url(url)
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise RegistryUnauthorized(
                        f"registry refused a token (code {response.status_code})"
                    )
                data = read_body(response, _MAX_TOKEN_BYTES, "token response")
        except httpx.TransportError as exc:
            raise RegistryUnavailable(f"token request failed: {_describe(exc)}") from None
        try:
            decoded = json.loads(data)
        except ValueError:
            decoded = None
        token = (
            decoded.get("token") or decoded.get("access_token")
            if isinstance(decoded, dict)
            else None
        )
        if not isinstance(token, str) or not token:
            raise RegistryUnauthorized("registry sent an invalid token response")
        return token


def _is_bearer(challenge: str) -> bool:
    return challenge.strip().lower().startswith("bearer ")


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _describe(exc: httpx.TransportError) -> str:
    kind = {
        httpx.ConnectError: "cannot connect",
        httpx.TimeoutException: "timed out",
        httpx.RemoteProtocolError: "connection closed early",
    }
    for cls, text in kind.items():
        if isinstance(exc, cls):
            return text
    return type(exc).__name__


def _inflate(decoder: zlib._Decompress, data: bytes) -> Iterator[bytes]:
    out = decoder.decompress(data, _INFLATE_STEP)
    yield out
    while decoder.unconsumed_tail:
        out = decoder.decompress(decoder.unconsumed_tail, _INFLATE_STEP)
        if not out:
            return
        yield out


def iter_body(response: httpx.Response, limit: int, what: str) -> Iterator[bytes]:
    """The decoded body in pieces; raises :class:`RegistryError` past ``limit`` bytes (after
    decompression) and :class:`RegistryUnavailable` when the connection breaks."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder: zlib._Decompress | None
    if encoding in ("", "identity"):
        decoder = None
    elif encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    else:
        raise RegistryError(f"{what}: unsupported content encoding")
    total = 0
    try:
        for raw in response.iter_raw():  # unchunked: a cut body keeps every byte received
            for piece in [raw] if decoder is None else _inflate(decoder, raw):
                total += len(piece)
                if total > limit:
                    raise RegistryError(f"{what} is larger than {limit} bytes")
                if piece:
                    yield piece
    except httpx.TransportError as exc:
        raise RegistryUnavailable(f"{what}: {_describe(exc)}") from None
    except zlib.error:
        raise RegistryError(f"{what}: corrupt compressed body") from None


def read_body(response: httpx.Response, limit: int, what: str) -> bytes:
    """The whole (bounded) body."""
    return b"".join(iter_body(response, limit, what))


def raise_for_status(response: httpx.Response, what: str) -> None:
    """Translate an error status into the right :class:`RegistryError`."""
    code = response.status_code
    if code < 400:
        return
    detail = _error_detail(response)
    message = f"{what}: registry responded with code {code}" + (f": {detail}" if detail else "")
    if code == 404:
        raise RegistryNotFound(f"{what}: file does not exist")
    if code in (401, 403):
        raise RegistryUnauthorized(message)
    if code >= 500 or code == 429:
        raise RegistryUnavailable(message)
    raise RegistryError(message)


def _error_detail(response: httpx.Response) -> str:
    try:
        data = read_body(response, _MAX_ERROR_BYTES, "error body")
        decoded = json.loads(data)
    except (RegistryError, ValueError):
        return ""
    errors = decoded.get("errors") if isinstance(decoded, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = errors[0].get("message")
        if isinstance(message, str):
            return "".join(c for c in message[:200] if c.isprintable())
    return ""
