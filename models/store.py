"""The on-disk model store, in Ollama's layout.

::

    <root>/manifests/<host>/<namespace>/<model>/<tag>   manifest JSON
    <root>/blobs/sha256-<hex>                          content-addressed blobs

Every path is built from a validated :class:`ModelName` or digest. Every write
goes to a temp file in the target directory, is fsynced and renamed into place.
Mutations (manifest writes, copy, delete, prune) are serialised by a thread lock
plus an ``flock`` on ``<root>/.lock`` so a CLI import and a running server agree.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from models import _fs
from models.blobs import BlobStore
from models.digest import DIGEST_RE, parse_digest
from models.errors import (
    BlobNotFound,
    BlobTooLarge,
    DigestMismatch,
    InvalidManifest,
    InvalidModelName,
    ModelNotFound,
    StoreError,
)
from models.layers import build_layers
from models.local import (
    MAX_TEXT_LAYER_BYTES,
    LocalModel,
    ModelEntry,
    decode_messages,
    decode_params,
    decode_text,
)
from models.manifest import (
    MAX_MANIFEST_BYTES,
    MEDIA_ADAPTER,
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
    ModelConfig,
    parse_manifest,
)
from models.names import ModelName

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BlobNotFound",
    "DigestMismatch",
    "LocalModel",
    "ModelEntry",
    "ModelNotFound",
    "ModelStore",
    "StoreError",
]

logger = logging.getLogger(__name__)

_STALE_TEMP_SECONDS = 3600.0
_DIGEST_IN_TEXT = re.compile(rb"sha256[:-]([0-9a-f]{64})")


def _as_name(name: ModelName | str) -> ModelName:
    return name if isinstance(name, ModelName) else ModelName.parse(name)


class ModelStore(BlobStore):
    """Manifests and blobs under one root directory (Ollama's ``OLLAMA_MODELS``)."""

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        self._lock = threading.RLock()
        self._depth = 0
        self._lock_fd: int | None = None

    @property
    def manifests_dir(self) -> Path:
        """``<root>/manifests``."""
        return self._root / "manifests"

    @contextlib.contextmanager
    def _mutating(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._root.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    if fcntl is not None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._lock_fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)  # closing releases the flock
                    self._lock_fd = None

    # ---- manifests ---------------------------------------------------------

    def _manifest_path(self, name: ModelName) -> Path:
        return self.manifests_dir.joinpath(*name.manifest_parts)

    def _locate(self, name: ModelName) -> Path | None:
        """The existing manifest for ``name``, matched case-insensitively (getExistingName)."""
        exact = self._manifest_path(name)
        if exact.is_file():
            return exact
        current = self.manifests_dir
        for part in name.manifest_parts:
            wanted = part.lower()
            try:
                with os.scandir(current) as entries:
                    match = next(
                        (e.name for e in entries if e.name.isascii() and e.name.lower() == wanted),
                        None,
                    )
            except (FileNotFoundError, NotADirectoryError):
                return None
            if match is None:
                return None
            current = current / match
        return current if current.is_file() else None

    def find(self, name: ModelName | str) -> ModelName | None:
        """The stored name (with its on-disk case) matching ``name``, or ``None``."""
        path = self._locate(_as_name(name))
        if path is None:
            return None
        return ModelName(*path.relative_to(self.manifests_dir).parts)

    def exists(self, name: ModelName | str) -> bool:
        """Whether a manifest exists for ``name`` (case-insensitive)."""
        return self._locate(_as_name(name)) is not None

    def read_manifest_bytes(self, name: ModelName | str) -> bytes:
        """The raw manifest file; :class:`ModelNotFound` if absent."""
        path = self._locate(_as_name(name))
        if path is None:
            raise ModelNotFound(str(name))
        return self._read_manifest_file(path, name)

    def _read_manifest_file(self, path: Path, name: ModelName | str) -> bytes:
        try:
            with _fs.open_regular_file(path) as f:
                data = f.read(MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            raise ModelNotFound(str(name)) from None
        except OSError as exc:
            raise StoreError(f"cannot read manifest for {name}: {exc.strerror}") from None
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidManifest("manifest too large")
        return data

    def read_manifest(self, name: ModelName | str) -> Manifest:
        """The parsed manifest; :class:`ModelNotFound` or :class:`InvalidManifest`."""
        return parse_manifest(self.read_manifest_bytes(name))

    def manifest_digest(self, name: ModelName | str) -> str:
        """The sha256 hex (no prefix) of the manifest file, as ``/api/tags`` shows it."""
        return hashlib.sha256(self.read_manifest_bytes(name)).hexdigest()

    def _check_blobs(self, manifest: Manifest) -> None:
        for layer in (manifest.config, *manifest.layers):
            size = self.blob_size(layer.digest)
            if size != layer.size:
                raise InvalidManifest(
                    f"layer {layer.digest} has size {layer.size} but the blob has {size} bytes"
                )

    def write_manifest(self, name: ModelName | str, manifest: Manifest) -> None:
        """Write the manifest for ``name`` after checking every referenced blob exists."""
        self.write_manifest_bytes(name, manifest.to_json())

    def write_manifest_bytes(self, name: ModelName | str, data: bytes) -> Manifest:
        """Validate and write a manifest byte-for-byte (pulled manifests keep their digest)."""
        model_name = _as_name(name)
        manifest = parse_manifest(data)
        with self._mutating():
            self._check_blobs(manifest)
            path = self._locate(model_name) or self._manifest_path(model_name)
            _fs.atomic_write(path, data)
        return manifest

    def _iter_manifests(self) -> Iterator[tuple[tuple[str, ...], Path]]:
        """Every file at ``manifests/*/*/*/*`` (temp files skipped)."""
        root = self.manifests_dir
        if not root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root).parts
            if len(rel) >= 3:
                dirnames.clear()
            if len(rel) != 3:
                continue
            for filename in sorted(filenames):
                if not filename.startswith(_fs.TEMP_PREFIX):
                    yield (*rel, filename), Path(dirpath, filename)

    def list_models(self) -> list[ModelEntry]:
        """Every valid model, newest first; unreadable or invalid manifests are skipped."""
        entries: list[ModelEntry] = []
        for parts, path in self._iter_manifests():
            try:
                name = ModelName(*parts)
                data = self._read_manifest_file(path, "/".join(parts))
                manifest = parse_manifest(data)
                mtime = path.stat().st_mtime
            except (InvalidModelName, StoreError, ModelNotFound, OSError) as exc:
                logger.warning("skipping manifest %s: %s", "/".join(parts), exc)
                continue
            entries.append(
                ModelEntry(
                    name=name,
                    manifest=manifest,
                    digest=hashlib.sha256(data).hexdigest(),
                    size=manifest.total_size,
                    modified_at=datetime.fromtimestamp(mtime, UTC),
                    config=self._read_config(manifest),
                )
            )
        entries.sort(key=lambda e: (-e.modified_at.timestamp(), e.name.key))
        return entries

    def _read_config(self, manifest: Manifest) -> ModelConfig:
        try:
            return ModelConfig.from_json(self.read_blob(manifest.config.digest))
        except StoreError as exc:
            logger.warning("unreadable config blob %s: %s", manifest.config.digest, exc)
            return ModelConfig()

    def _text(self, layer: Layer | None, what: str) -> str | None:
        if layer is None:
            return None
        return decode_text(self._small_blob(layer), what)

    def _small_blob(self, layer: Layer) -> bytes:
        if layer.size > MAX_TEXT_LAYER_BYTES:
            raise BlobTooLarge(f"{layer.media_type} layer is larger than {MAX_TEXT_LAYER_BYTES}")
        return self.read_blob(layer.digest)

    def _existing_blob(self, layer: Layer) -> Path:
        path = self.blob_path(layer.digest)
        if not path.is_file():
            raise BlobNotFound(layer.digest)
        return path

    def resolve(self, name: ModelName | str) -> LocalModel:
        """Everything needed to serve ``name``; :class:`ModelNotFound` if absent."""
        model_name = _as_name(name)
        path = self._locate(model_name)
        if path is None:
            raise ModelNotFound(str(name))
        data = self._read_manifest_file(path, name)
        manifest = parse_manifest(data)
        mtime = path.stat().st_mtime
        models = manifest.layers_of(MEDIA_MODEL)
        if not models:
            raise InvalidManifest(f"model {name} has no GGUF model layer")
        last = {layer.media_type: layer for layer in manifest.layers}
        projectors = manifest.layers_of(MEDIA_PROJECTOR)
        params_layer, messages_layer = last.get(MEDIA_PARAMS), last.get(MEDIA_MESSAGES)
        return LocalModel(
            name=ModelName(*path.relative_to(self.manifests_dir).parts),
            digest=hashlib.sha256(data).hexdigest(),
            model_path=self._existing_blob(models[0]),
            projector_path=self._existing_blob(projectors[0]) if projectors else None,
            template=self._text(last.get(MEDIA_TEMPLATE), "template"),
            system=self._text(last.get(MEDIA_SYSTEM), "system"),
            params=decode_params(self._small_blob(params_layer)) if params_layer else {},
            license=[
                decode_text(self._small_blob(x), "license")
                for x in manifest.layers_of(MEDIA_LICENSE)
            ],
            messages=decode_messages(self._small_blob(messages_layer)) if messages_layer else [],
            config=self._read_config(manifest),
            size=manifest.total_size,
            modified_at=datetime.fromtimestamp(mtime, UTC),
            manifest=manifest,
            adapter_paths=tuple(self._existing_blob(x) for x in manifest.layers_of(MEDIA_ADAPTER)),
        )

    def create_model(
        self,
        name: ModelName | str,
        *,
        model_blob: str,
        template: str | None = None,
        system: str | None = None,
        params: dict[str, object] | None = None,
        license: list[str] | None = None,
        messages: list[dict[str, object]] | None = None,
        config: ModelConfig,
        projector_blob: str | None = None,
        adapter_blobs: Iterable[str] = (),
    ) -> Manifest:
        """Write the text/JSON layers and the config as blobs, then the manifest."""
        model_name = _as_name(name)
        with self._mutating():

            def existing(media_type: str, digest: str) -> Layer:
                return Layer(mediaType=media_type, digest=digest, size=self.blob_size(digest))

            def new(media_type: str, data: bytes) -> Layer:
                if len(data) > MAX_TEXT_LAYER_BYTES:
                    raise BlobTooLarge(f"{media_type} layer is larger than {MAX_TEXT_LAYER_BYTES}")
                return Layer(mediaType=media_type, digest=self.add_blob_bytes(data), size=len(data))

            layers = build_layers(
                existing,
                new,
                model_blob=model_blob,
                projector_blob=projector_blob,
                adapter_blobs=adapter_blobs,
                template=template,
                system=system,
                params=params,
                license=license,
                messages=messages,
            )
            config_json = config.to_json()
            config_layer = Layer(
                mediaType=MEDIA_CONFIG,
                digest=self.add_blob_bytes(config_json),
                size=len(config_json),
            )
            manifest = Manifest(config=config_layer, layers=layers)
            self.write_manifest(model_name, manifest)
        return manifest

    def copy(self, src: ModelName | str, dst: ModelName | str) -> None:
        """Copy the manifest of ``src`` to ``dst`` (blobs are shared)."""
        src_name, dst_name = _as_name(src), _as_name(dst)
        with self._mutating():
            src_path = self._locate(src_name)
            if src_path is None:
                raise ModelNotFound(str(src))
            data = self._read_manifest_file(src_path, src)
            parse_manifest(data)
            dst_path = self._locate(dst_name) or self._manifest_path(dst_name)
            if dst_path != src_path:
                _fs.atomic_write(dst_path, data)

    def delete(self, name: ModelName | str) -> None:
        """Remove the manifest, then the blobs no other manifest references."""
        model_name = _as_name(name)
        with self._mutating():
            path = self._locate(model_name)
            if path is None:
                raise ModelNotFound(str(name))
            try:
                digests = set(parse_manifest(self._read_manifest_file(path, name)).digests)
            except StoreError as exc:
                logger.warning("deleting unreadable manifest for %s: %s", model_name, exc)
                digests = set()
            path.unlink()
            _fs.fsync_dir(path.parent)
            self._remove_empty_dirs(path.parent)
            for digest in digests - self._referenced_digests():
                with contextlib.suppress(FileNotFoundError):
                    self.blob_path(digest).unlink()

    def remove_blob_if_unreferenced(self, digest: str) -> bool:
        """Delete one blob unless a manifest references it; return whether it was removed."""
        path = self.blob_path(digest)
        with self._mutating():
            if parse_digest(digest) in self._referenced_digests() or not path.is_file():
                return False
            path.unlink()
            return True

    def _referenced_digests(self) -> set[str]:
        refs: set[str] = set()
        for parts, path in self._iter_manifests():
            try:
                data = self._read_manifest_file(path, "/".join(parts))
            except (StoreError, ModelNotFound):
                continue
            try:
                refs.update(parse_manifest(data).digests)
            except InvalidManifest:
                # keep whatever an unparsable manifest seems to reference, to be safe
                refs.update("sha256:" + m.decode() for m in _DIGEST_IN_TEXT.findall(data))
        return refs

    def _remove_empty_dirs(self, start: Path) -> None:
        current = start
        while current != self.manifests_dir and current.is_relative_to(self.manifests_dir):
            try:
                current.rmdir()
            except OSError:
                return
            current = current.parent

    def prune(self, *, stale_after: float = _STALE_TEMP_SECONDS) -> int:
        """Remove unreferenced blobs, stale temp files and empty manifest directories.

        Meant for startup (like Ollama unless ``OLLAMA_NOPRUNE``): a blob uploaded for
        a create that has not happened yet is unreferenced too. Returns the number
        of blobs removed.
        """
        removed = 0
        with self._mutating():
            refs = self._referenced_digests()
            cutoff = time.time() - stale_after
            try:
                with os.scandir(self.blobs_dir) as it:
                    entries = list(it)
            except FileNotFoundError:
                entries = []
            for entry in entries:
                if DIGEST_RE.fullmatch(entry.name):
                    if parse_digest(entry.name) not in refs:
                        Path(entry.path).unlink(missing_ok=True)
                        removed += 1
                elif self._is_stale_temp(entry, cutoff):
                    Path(entry.path).unlink(missing_ok=True)
            self._prune_manifest_dirs(cutoff)
        if removed:
            logger.info("pruned %d unreferenced blobs", removed)
        return removed

    @staticmethod
    def _is_stale_temp(entry: os.DirEntry[str], cutoff: float) -> bool:
        if not (entry.name.startswith(_fs.TEMP_PREFIX) or "-partial" in entry.name):
            return False
        try:
            return entry.stat().st_mtime < cutoff
        except FileNotFoundError:
            return False

    def _prune_manifest_dirs(self, cutoff: float) -> None:
        if not self.manifests_dir.is_dir():
            return
        for dirpath, _, filenames in os.walk(self.manifests_dir, topdown=False):
            for filename in filenames:
                path = Path(dirpath, filename)
                with contextlib.suppress(FileNotFoundError):
                    if filename.startswith(_fs.TEMP_PREFIX) and path.stat().st_mtime < cutoff:
                        path.unlink(missing_ok=True)
            if Path(dirpath) != self.manifests_dir:
                with contextlib.suppress(OSError):
                    Path(dirpath).rmdir()
