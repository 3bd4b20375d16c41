"""A loopback OCI-distribution registry (Docker registry v2 subset) for the pull/push tests.

It serves and accepts manifests and blobs on 127.0.0.1 (``GET/HEAD`` manifests and blobs with
``Range``, ``POST``/``PATCH``/``PUT`` uploads verified against their digest, ``PUT`` manifests),
can require an anonymous bearer token, and injects faults on request: truncated bodies, 5xx
answers, redirects, bodies held at an offset until released, raw replacement bodies (corrupt
data, gzip bombs, malicious manifests). Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from models.manifest import parse_manifest
from models.store import ModelStore

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
_REPO = r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)"
_ROUTES = [
    ("manifest", re.compile(rf"/v2/{_REPO}/manifests/(?P<ref>[^/]+)")),
    ("upload_start", re.compile(rf"/v2/{_REPO}/blobs/uploads/?")),
    ("upload", re.compile(rf"/v2/{_REPO}/blobs/uploads/(?P<id>[0-9a-f]+)")),
    ("blob", re.compile(rf"/v2/{_REPO}/blobs/(?P<digest>[^/]+)")),
    ("cdn", re.compile(r"/cdn/(?P<digest>[^/]+)")),
    ("token", re.compile(r"/token")),
]


@dataclass
class Logged:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Faults:
    """Misbehaviour to inject, keyed by blob digest (or (repo, tag) for manifests)."""

    truncate: dict[str, list[int]] = field(default_factory=dict)  # per GET: bytes, then cut
    fail: dict[str, int] = field(default_factory=dict)  # answer 503 this many times
    gate: dict[str, tuple[int, threading.Event]] = field(default_factory=dict)
    redirect: dict[str, str] = field(default_factory=dict)  # 307 to this URL
    blob_body: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    manifest_body: dict[tuple[str, str], tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    ignore_range: bool = False
    upload_location: str | None = None  # absolute Location for new uploads


class Registry:
    """The registry state plus its HTTP server thread."""

    def __init__(self, *, token: str | None = None, realm: str | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, bytearray] = {}
        self.log: list[Logged] = []
        self.faults = Faults()
        self.token = token
        self.lock = threading.Lock()
        self.served: dict[str, int] = {}  # blob bytes sent, per digest
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.realm = realm or f"{self.url}/token"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        for _, event in self.faults.gate.values():
            event.set()
        self._server.shutdown()
        self._server.server_close()

    def name(self, repo: str, tag: str = "latest") -> str:
        """The model name that pulls ``repo:tag`` from this registry."""
        return f"{self.host}/{repo}:{tag}"

    # -- content -------------------------------------------------------------------------------
    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self.lock:
            self.blobs[digest] = data
        return digest

    def publish(self, repo: str, tag: str, manifest: bytes) -> None:
        with self.lock:
            self.manifests[(repo, tag)] = manifest

    def publish_model(
        self, layers: list[tuple[str, bytes]], repo: str, tag: str = "latest"
    ) -> dict[str, Any]:
        """Publish a model built from ``(media_type, data)`` layers; returns the manifest."""
        config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": _layer("application/vnd.docker.container.image.v1+json", config),
            "layers": [_layer(media, data) for media, data in layers],
        }
        self.add_blob(config)
        for _, data in layers:
            self.add_blob(data)
        self.publish(repo, tag, json.dumps(manifest).encode())
        return manifest

    def publish_from_store(self, store: ModelStore, name: str, repo: str, tag: str) -> bytes:
        """Copy a model of a local store (trusted test data) into the registry."""
        raw = store.read_manifest_bytes(name)
        for digest in parse_manifest(raw).digests:
            self.blobs[digest] = Path(store.blob_path(digest)).read_bytes()
        self.publish(repo, tag, raw)
        return raw

    def requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        with self.lock:
            return [
                r for r in self.log if (method is None or r.method == method) and contains in r.path
            ]


def _layer(media_type: str, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _handler(reg: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        registry = reg

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    registry: Registry

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        sent = {"Content-Length": str(len(body)), **(headers or {})}
        for key, value in sent.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, code: int, err: str) -> None:
        body = json.dumps({"errors": [{"code": err, "message": err.lower()}]}).encode()
        self._send(code, body, {"Content-Type": "application/json"})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _dispatch(self) -> None:
        reg = self.registry
        parts = urlsplit(self.path)
        with reg.lock:
            reg.log.append(Logged(self.command, self.path, dict(self.headers.items())))
        for kind, pattern in _ROUTES:
            match = pattern.fullmatch(parts.path)
            if match is None:
                continue
            if kind not in ("token", "cdn") and not self._authorized(match):
                return
            getattr(self, f"_{kind}")(match, parse_qs(parts.query))
            return
        self._error(404, "NOT_FOUND")

    def _authorized(self, match: re.Match[str]) -> bool:
        token = self.registry.token
        if token is None or self.headers.get("Authorization") == f"Bearer {token}":
            return True
        challenge = (
            f'Bearer realm="{self.registry.realm}",service="test",'
            f'scope="repository:{match["repo"]}:pull,push"'
        )
        body = self._read_body() if self.command in ("PUT", "POST", "PATCH") else b""
        del body
        self._send(401, b"", {"WWW-Authenticate": challenge})
        return False

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _dispatch

    # -- routes --------------------------------------------------------------------------------
    def _token(self, match: re.Match[str], query: dict[str, list[str]]) -> None:
        body = json.dumps({"token": self.registry.token or ""}).encode()
        self._send(200, body, {"Content-Type": "application/json"})

    def _manifest(self, match: re.Match[str], query: dict[str, list[str]]) -> None:
        reg, key = self.registry, (match["repo"], match["ref"])
        if self.command == "PUT":
            data = self._read_body()
            try:
                manifest = parse_manifest(data)
            except ValueError:
                self._error(400, "MANIFEST_INVALID")
                return
            if any(d not in reg.blobs for d in manifest.digests):
                self._error(400, "MANIFEST_BLOB_UNKNOWN")
                return
            reg.publish(*key, data)
            self._send(201, b"", {"Docker-Content-Digest": _digest(data)})
            return
        if key in reg.faults.manifest_body:
            body, headers = reg.faults.manifest_body[key]
            self._send(200, body, headers)
            return
        data = reg.manifests.get(key)
        if data is None:
            self._error(404, "MANIFEST_UNKNOWN")
            return
        self._send(200, data, {"Content-Type": MANIFEST_TYPE})

    def _cdn(self, match: re.Match[str], query: dict[str, list[str]]) -> None:
        self._serve_blob(match["digest"], redirect=False)

    def _blob(self, match: re.Match[str], query: dict[str, list[str]]) -> None:
        self._serve_blob(match["digest"], redirect=True)

    def _serve_blob(self, digest: str, *, redirect: bool) -> None:
        reg, faults = self.registry, self.registry.faults
        if self.command == "HEAD":
            data = reg.blobs.get(digest)
            self._send(
                200 if data is not None else 404, b"", {"Content-Length": str(len(data or b""))}
            )
            return
        with reg.lock:
            failing = faults.fail.get(digest, 0)
            if failing:
                faults.fail[digest] = failing - 1
            cut = faults.truncate.get(digest)
            cut_at = cut.pop(0) if cut else None
        if failing:
            self._error(503, "UNAVAILABLE")
            return
        if redirect and digest in faults.redirect:
            self._send(307, b"", {"Location": faults.redirect[digest]})
            return
        if digest in faults.blob_body:
            body, headers = faults.blob_body[digest]
            self._send(200, body, headers)
            return
        data = reg.blobs.get(digest)
        if data is None:
            self._error(404, "BLOB_UNKNOWN")
            return
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if ranged and not faults.ignore_range:
            start = int(ranged[1])
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Content-Type", "application/octet-stream")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        body = data[start:]
        if cut_at is not None:
            self._write(digest, body[:cut_at])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        gate = faults.gate.get(digest)
        if gate is not None:
            offset, event = gate
            self._write(digest, body[:offset])
            self.wfile.flush()
            event.wait(60)
            body = body[offset:]
        self._write(digest, body)

    def _write(self, digest: str, data: bytes) -> None:
        self.wfile.write(data)
        with self.registry.lock:
            self.registry.served[digest] = self.registry.served.get(digest, 0) + len(data)

    def _upload_start(self, match: re.Match[str], query: dict[str, list[str]]) -> None:
        if self.command != "POST":
            self._error(405, "UNSUPPORTED")
            return
        self._read_body()
        upload = uuid.uuid4().hex
        self.registry.uploads[upload] = bytearray()
        location = f"/v2/{match['repo']}/blobs/uploads/{upload}?state=x"
        if self.registry.faults.upload_location is not None:
            location = self.registry.faults.upload_location + location
        self._send(202, b"", {"Location": location, "Docker-Upload-UUID": upload})

    def _upload(self, match: re.Match[str], query: dict[str, list[str]]) -> None:
        reg = self.registry
        buf = reg.uploads.get(match["id"])
        if buf is None:
            self._error(404, "BLOB_UPLOAD_UNKNOWN")
            return
        buf += self._read_body()
        if self.command == "PATCH":
            self._send(202, b"", {"Location": self.path, "Range": f"0-{len(buf) - 1}"})
            return
        digest = (query.get("digest") or [""])[0]
        if _digest(bytes(buf)) != digest:
            self._error(400, "DIGEST_INVALID")
            return
        reg.blobs[digest] = bytes(buf)
        del reg.uploads[match["id"]]
        self._send(201, b"", {"Docker-Content-Digest": digest})


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
