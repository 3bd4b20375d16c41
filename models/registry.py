"""Pull and push models over the OCI distribution protocol (Docker registry v2), like Ollama.

Pull: ``GET /v2/<ns>/<model>/manifests/<tag>``, validate every field of the manifest, then
``GET /v2/<ns>/<model>/blobs/<digest>`` for each missing blob into ``blobs/sha256-<hex>-partial``
(resumed with ``Range`` across retries and across pulls), hash while writing, and rename into
place only when the sha256 matches. The manifest is written last, so a failed pull leaves no
model. Concurrent pulls of one blob (threads or processes) share one download: the partial file
is ``flock``-ed, and a waiter reports the holder's progress from the file size.

Push: ``HEAD`` each blob, upload the missing ones (``POST .../blobs/uploads/`` then ``PUT
<location>?digest=``), then ``PUT`` the manifest. Everything is synchronous: the server runs it
in a worker thread and passes ``cancel`` to stop it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from models import _fs
from models._registry_http import (
    RegistryCancelled,
    RegistryError,
    RegistryNotFound,
    RegistryRefused,
    RegistryUnauthorized,
    RegistryUnavailable,
    Resolver,
    Session,
    iter_body,
    raise_for_status,
    read_body,
)
from models.digest import digest_hex
from models.errors import DigestMismatch, InvalidGGUF, InvalidManifest, ModelNotFound, StoreError
from models.gguf import read_gguf
from models.local import MAX_TEXT_LAYER_BYTES
from models.manifest import (
    MANIFEST_MEDIA_TYPES,
    MAX_MANIFEST_BYTES,
    MEDIA_CONFIG,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
    parse_manifest,
)
from models.names import ModelName
from models.store import ModelStore

__all__ = [
    "Progress",
    "ProgressFn",
    "RegistryCancelled",
    "RegistryError",
    "RegistryNotFound",
    "RegistryOptions",
    "RegistryRefused",
    "RegistryUnauthorized",
    "RegistryUnavailable",
    "partial_path",
    "pull_model",
    "push_model",
    "validate_remote_manifest",
]

logger = logging.getLogger(__name__)

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER_MEDIA = re.compile(r"application/vnd\.ollama\.image\.[a-z0-9][a-z0-9.+-]{0,63}")
_SMALL_LAYERS = frozenset(
    {MEDIA_TEMPLATE, MEDIA_SYSTEM, MEDIA_PARAMS, MEDIA_LICENSE, MEDIA_MESSAGES}
)
_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
_CHUNK = 1 << 20
_PROGRESS_STEP = 1 << 20
_POLL_S = 0.1


@dataclass(frozen=True)
class Progress:
    """One progress report (Ollama's ``api.ProgressResponse``)."""

    status: str
    digest: str = ""
    total: int = 0
    completed: int = 0


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class RegistryOptions:
    """How to talk to the registry."""

    insecure: bool = False  # plain http allowed
    timeout: float = 60.0  # per connect/read, seconds
    retries: int = 6  # per blob, on transport errors and 5xx
    backoff: float = 0.25  # first retry delay, doubled each time up to 4 s
    resolver: Resolver | None = None  # DNS lookups for the address policy


def _no_progress(_: Progress) -> None:
    return None


def validate_remote_manifest(raw: bytes) -> Manifest:
    """Check a manifest from a registry before anything is written (:class:`InvalidManifest`).

    Beyond the schema (digests, sizes, config, at least one layer): config and layer media
    types, small-layer size caps, a GGUF model layer, and one size per digest.
    """
    manifest = parse_manifest(raw)
    if manifest.config.media_type not in (MEDIA_CONFIG, OCI_CONFIG):
        raise InvalidManifest("invalid manifest: unsupported config media type")
    if manifest.config.size > MAX_TEXT_LAYER_BYTES:
        raise InvalidManifest("invalid manifest: config is too large")
    sizes: dict[str, int] = {}
    for layer in (manifest.config, *manifest.layers):
        if layer is not manifest.config and not _LAYER_MEDIA.fullmatch(layer.media_type):
            raise InvalidManifest("invalid manifest: unsupported layer media type")
        if layer.media_type in _SMALL_LAYERS and layer.size > MAX_TEXT_LAYER_BYTES:
            raise InvalidManifest(f"invalid manifest: {layer.media_type} layer is too large")
        if sizes.setdefault(layer.digest, layer.size) != layer.size:
            raise InvalidManifest("invalid manifest: one digest with two sizes")
    if not manifest.layers_of(MEDIA_MODEL):
        raise InvalidManifest("invalid manifest: no GGUF model layer")
    return manifest


def partial_path(store: ModelStore, digest: str) -> Path:
    """Where a download of ``digest`` is kept until it is verified."""
    return store.blobs_dir / f"sha256-{digest_hex(digest)}-partial"


def _unique_layers(manifest: Manifest) -> list[Layer]:
    # Ollama fetches the layers, then the config.
    seen: dict[str, Layer] = {}
    for layer in (*manifest.layers, manifest.config):
        seen.setdefault(layer.digest, layer)
    return list(seen.values())


def _status(verb: str, layer: Layer) -> str:
    return f"{verb} {digest_hex(layer.digest)[:12]}"


# -- pull -------------------------------------------------------------------------------------


def pull_model(
    store: ModelStore,
    name: ModelName | str,
    *,
    options: RegistryOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> Manifest:
    """Download ``name`` from its registry into ``store``; returns the manifest written."""
    opts = options or RegistryOptions()
    emit = progress or _no_progress
    model_name = name if isinstance(name, ModelName) else ModelName.parse(name)
    emit(Progress("pulling manifest"))
    with Session(
        model_name,
        insecure=opts.insecure,
        timeout=opts.timeout,
        cancel=cancel,
        resolver=opts.resolver,
    ) as session:
        raw = _fetch_manifest(session, model_name.tag)
        manifest = validate_remote_manifest(raw)
        old = _old_digests(store, model_name)
        for layer in _unique_layers(manifest):
            _fetch_blob(session, store, layer, opts, emit)
    emit(Progress("verifying sha256 digest"))
    _verify_pulled(store, manifest)
    emit(Progress("writing manifest"))
    store.write_manifest_bytes(model_name, raw)
    unused = old - set(manifest.digests)
    if unused:
        emit(Progress("removing unused layers"))
        for digest in sorted(unused):
            store.remove_blob_if_unreferenced(digest)
    emit(Progress("success"))
    return manifest


def _fetch_manifest(session: Session, tag: str) -> bytes:
    url = f"{session.repo_url}/manifests/{tag}"
    with session.open("GET", url, headers={"Accept": _ACCEPT}) as response:
        if response.status_code == 404:
            raise RegistryNotFound("pull model manifest: file does not exist")
        raise_for_status(response, "pull model manifest")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_MANIFEST_BYTES:
            raise InvalidManifest("manifest too large")
        try:
            return read_body(response, MAX_MANIFEST_BYTES, "manifest")
        except RegistryError as exc:
            if isinstance(exc, RegistryUnavailable):
                raise
            raise InvalidManifest(str(exc)) from None


def _old_digests(store: ModelStore, name: ModelName) -> set[str]:
    try:
        return set(store.read_manifest(name).digests)
    except (ModelNotFound, StoreError):
        return set()


def _verify_pulled(store: ModelStore, manifest: Manifest) -> None:
    for layer in (manifest.config, *manifest.layers):
        if store.blob_size(layer.digest) != layer.size:
            raise InvalidManifest(f"blob {layer.digest} does not have the size of its layer")
    for layer in manifest.layers_of(MEDIA_MODEL) + manifest.layers_of(MEDIA_PROJECTOR):
        try:
            read_gguf(store.blob_path(layer.digest))
        except InvalidGGUF as exc:
            store.remove_blob_if_unreferenced(layer.digest)
            raise InvalidManifest(f"model layer is not a valid GGUF file: {exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot read a pulled blob: {exc.strerror}") from None


def _fetch_blob(
    session: Session, store: ModelStore, layer: Layer, opts: RegistryOptions, emit: ProgressFn
) -> None:
    status = _status("pulling", layer)

    def report(done: int) -> None:
        emit(Progress(status, layer.digest, layer.size, done))

    if _have_blob(store, layer):
        report(layer.size)
        return
    report(0)
    try:
        with _locked_partial(store, layer, session, report) as fd:
            if fd is None:  # another pull finished it while we waited
                report(layer.size)
                return
            _download(session, store, layer, fd, opts, report)
    except OSError as exc:
        raise StoreError(f"cannot write blob {layer.digest}: {exc.strerror}") from None


def _have_blob(store: ModelStore, layer: Layer) -> bool:
    try:
        return store.blob_size(layer.digest) == layer.size
    except StoreError:
        return False


@contextlib.contextmanager
def _locked_partial(
    store: ModelStore, layer: Layer, session: Session, report: Callable[[int], None]
) -> Iterator[int | None]:
    """Hold the ``flock`` on the blob's partial file (yield its fd); ``None`` if the blob
    appeared while we waited."""
    path = partial_path(store, layer.digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            _wait_for_lock(fd, layer, session, report)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = -1
            if current == os.fstat(fd).st_ino:
                if _have_blob(store, layer):
                    path.unlink()
                    yield None
                else:
                    yield fd
                return
        finally:
            os.close(fd)  # closing releases the lock
        # The holder renamed or removed the file we waited on: start over on the new one.


def _wait_for_lock(fd: int, layer: Layer, session: Session, report: Callable[[int], None]) -> None:
    seen = -1
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            size = os.fstat(fd).st_size  # another pull is writing it: show its progress
            if size != seen:
                seen = size
                report(min(size, layer.size))
            session.wait(_POLL_S)


@dataclass
class _Partial:
    """A locked partial file and the hash of what it holds so far."""

    fd: int
    hasher: hashlib._Hash
    have: int

    def restart(self) -> None:
        os.ftruncate(self.fd, 0)
        self.hasher, self.have = hashlib.sha256(), 0

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.hasher.update(data)
        self.have += len(data)


def _download(
    session: Session,
    store: ModelStore,
    layer: Layer,
    fd: int,
    opts: RegistryOptions,
    report: Callable[[int], None],
) -> None:
    path = partial_path(store, layer.digest)
    partial = _resume(fd, layer.size, session)
    url = f"{session.repo_url}/blobs/{layer.digest}"
    failures = 0
    while partial.have < layer.size:
        try:
            _get_range(session, url, partial, layer, report)
        except RegistryUnavailable as exc:
            failures += 1
            if failures > opts.retries:
                raise
            logger.info("retrying %s at byte %d: %s", layer.digest[:19], partial.have, exc)
            session.wait(min(opts.backoff * 2 ** (failures - 1), 4.0))
    got = "sha256:" + partial.hasher.hexdigest()
    if got != layer.digest:
        # a corrupt download cannot be resumed: start from scratch next time
        partial.restart()
        path.unlink(missing_ok=True)
        raise DigestMismatch(layer.digest, got)
    os.fsync(fd)
    os.chmod(path, 0o644)
    os.replace(path, store.blob_path(layer.digest))
    _fs.fsync_dir(store.blobs_dir)
    report(layer.size)


def _resume(fd: int, size: int, session: Session) -> _Partial:
    """Hash what an earlier attempt left (dropping it if it is longer than the blob)."""
    partial = _Partial(fd, hashlib.sha256(), 0)
    have = os.fstat(fd).st_size
    if have > size:
        partial.restart()
        return partial
    os.lseek(fd, 0, os.SEEK_SET)
    while partial.have < have:
        session.check_cancel()
        chunk = os.read(fd, min(_CHUNK, have - partial.have))
        if not chunk:
            break
        partial.hasher.update(chunk)
        partial.have += len(chunk)
    return partial


def _get_range(
    session: Session,
    url: str,
    partial: _Partial,
    layer: Layer,
    report: Callable[[int], None],
) -> None:
    headers = {"Range": f"bytes={partial.have}-"} if partial.have else {}
    with session.open("GET", url, headers=headers) as response:
        if response.status_code == 206:
            if _range_start(response) != partial.have:
                raise RegistryError("registry answered a different byte range")
        elif response.status_code == 200:
            if partial.have:  # the registry ignored the Range: start over
                partial.restart()
        else:
            raise_for_status(response, f"pull blob {layer.digest[:19]}")
            raise RegistryError(f"unexpected registry response {response.status_code}")
        os.lseek(partial.fd, partial.have, os.SEEK_SET)
        reported = -1
        for chunk in iter_body(response, layer.size - partial.have, "blob"):
            session.check_cancel()
            partial.append(chunk)
            if partial.have - reported >= _PROGRESS_STEP or reported < 0:
                reported = partial.have
                report(partial.have)
    if partial.have < layer.size:
        raise RegistryUnavailable("blob download ended early")


def _range_start(response: httpx.Response) -> int:
    match = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", response.headers.get("content-range", ""))
    return int(match[1]) if match else -1


# -- push -------------------------------------------------------------------------------------


def push_model(
    store: ModelStore,
    name: ModelName | str,
    *,
    options: RegistryOptions | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Upload ``name`` (its blobs, then its manifest) to the registry its name points at."""
    opts = options or RegistryOptions()
    emit = progress or _no_progress
    model_name = name if isinstance(name, ModelName) else ModelName.parse(name)
    emit(Progress("retrieving manifest"))
    stored = store.find(model_name)
    if stored is None:
        raise ModelNotFound(str(model_name))
    raw = store.read_manifest_bytes(stored)
    manifest = parse_manifest(raw)
    with Session(
        model_name,
        insecure=opts.insecure,
        timeout=opts.timeout,
        cancel=cancel,
        resolver=opts.resolver,
    ) as session:
        for layer in _unique_layers(manifest):
            _push_blob(session, store, layer, emit)
        emit(Progress("pushing manifest"))
        url = f"{session.repo_url}/manifests/{model_name.tag}"
        headers: dict[str, str] = {"Content-Type": manifest.media_type}
        with session.open("PUT", url, headers=headers, body=lambda: raw) as response:
            raise_for_status(response, "push manifest")
    emit(Progress("success"))


def _push_blob(session: Session, store: ModelStore, layer: Layer, emit: ProgressFn) -> None:
    status = _status("pushing", layer)
    if store.blob_size(layer.digest) != layer.size:
        raise InvalidManifest(f"blob {layer.digest} does not have the size of its layer")
    with session.open("HEAD", f"{session.repo_url}/blobs/{layer.digest}") as response:
        if response.status_code == 200:
            emit(Progress(status, layer.digest, layer.size, layer.size))
            return
        if response.status_code != 404:
            raise_for_status(response, "check blob")
    emit(Progress(status, layer.digest, layer.size, 0))
    with session.open("POST", f"{session.repo_url}/blobs/uploads/") as response:
        raise_for_status(response, "start upload")
        location = response.headers.get("location")
        if response.status_code != 202 or not location:
            raise RegistryError("registry did not start the upload")
        target = httpx.URL(str(response.url)).join(location)
    target = target.copy_merge_params({"digest": layer.digest})
    path = store.blob_path(layer.digest)

    def chunks() -> Iterator[bytes]:
        sent = 0
        try:
            with _fs.open_regular_file(path) as f:
                while chunk := f.read(_CHUNK):
                    session.check_cancel()
                    sent += len(chunk)
                    emit(Progress(status, layer.digest, layer.size, sent))
                    yield chunk
        except OSError as exc:
            raise StoreError(f"cannot read blob {layer.digest}: {exc.strerror}") from None

    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(layer.size)}
    with session.open("PUT", str(target), headers=headers, body=chunks) as response:
        raise_for_status(response, f"upload blob {layer.digest[:19]}")
        if response.status_code not in (200, 201, 204):
            raise RegistryError(f"unexpected registry response {response.status_code}")
