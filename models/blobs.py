"""Writing content-addressed blobs: stream to a temp file, hash, verify, then rename."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from models import _fs
from models._fs import commit_temp, discard_temp, make_temp
from models.digest import blob_filename, parse_digest, sha256_digest
from models.errors import BlobNotFound, BlobTooLarge, DigestMismatch, StoreError
from models.local import MAX_TEXT_LAYER_BYTES

__all__ = ["BlobStore", "BlobWriter"]

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class BlobWriter:
    """Streams one blob into ``blobs_dir``; nothing is visible until :meth:`commit`.

    Use as a context manager: leaving the block without a successful commit (an
    exception, or simply not committing) removes the temp file, so a failed or
    aborted upload leaves nothing behind.
    """

    def __init__(
        self, blobs_dir: Path, expected_digest: str | None = None, max_bytes: int | None = None
    ) -> None:
        # validate the expected digest before touching the filesystem
        self._expected = None if expected_digest is None else parse_digest(expected_digest)
        self._dir = blobs_dir
        self._max_bytes = max_bytes
        self._hash = hashlib.sha256()
        self._size = 0
        fd, self._tmp = make_temp(blobs_dir)
        self._file = os.fdopen(fd, "wb")
        self._done = False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def write(self, data: bytes) -> None:
        """Append ``data``; raises :class:`BlobTooLarge` past ``max_bytes``."""
        if self._done:
            raise StoreError("blob writer is closed")
        self._size += len(data)
        if self._max_bytes is not None and self._size > self._max_bytes:
            self.abort()
            raise BlobTooLarge(f"blob exceeds the limit of {self._max_bytes} bytes")
        self._hash.update(data)
        self._file.write(data)

    def commit(self) -> str:
        """Verify the digest, fsync and move the blob into place; return its digest."""
        if self._done:
            raise StoreError("blob writer is closed")
        got = "sha256:" + self._hash.hexdigest()
        try:
            if self._expected is not None and got != self._expected:
                raise DigestMismatch(self._expected, got)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            commit_temp(self._tmp, self._dir / blob_filename(got))
        except BaseException:
            self.abort()
            raise
        self._done = True
        return got

    def abort(self) -> None:
        """Discard everything written; safe to call more than once."""
        self._done = True
        if not self._file.closed:
            self._file.close()
        discard_temp(self._tmp)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


class BlobStore:
    """Content-addressed blobs at ``<root>/blobs/sha256-<hex>``."""

    def __init__(self, root: Path | str) -> None:
        self._root = Path(root).resolve()

    @property
    def root(self) -> Path:
        """The store root (absolute)."""
        return self._root

    @property
    def blobs_dir(self) -> Path:
        """``<root>/blobs``."""
        return self._root / "blobs"

    def blob_path(self, digest: str) -> Path:
        """The path of a blob; the digest is validated first (:class:`InvalidDigest`)."""
        return self.blobs_dir / blob_filename(digest)

    def has_blob(self, digest: str) -> bool:
        """Whether the blob is present."""
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        """The size of a stored blob; :class:`BlobNotFound` if absent."""
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(parse_digest(digest)) from None

    def read_blob(self, digest: str, *, max_bytes: int = MAX_TEXT_LAYER_BYTES) -> bytes:
        """Read a small blob whole and verify its sha256."""
        expected = parse_digest(digest)
        try:
            with _fs.open_regular_file(self.blob_path(expected)) as f:
                if os.fstat(f.fileno()).st_size > max_bytes:
                    raise BlobTooLarge(f"blob {expected} is larger than {max_bytes} bytes")
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise BlobNotFound(expected) from None
        if len(data) > max_bytes:
            raise BlobTooLarge(f"blob {expected} is larger than {max_bytes} bytes")
        got = sha256_digest(data)
        if got != expected:
            raise DigestMismatch(expected, got)
        return data

    def open_blob_writer(
        self, expected_digest: str | None = None, max_bytes: int | None = None
    ) -> BlobWriter:
        """A :class:`BlobWriter` for streaming a blob in (e.g. an upload or a pull)."""
        return BlobWriter(self.blobs_dir, expected_digest, max_bytes)

    def add_blob_bytes(self, data: bytes) -> str:
        """Store ``data`` as a blob and return its digest."""
        with self.open_blob_writer() as writer:
            writer.write(data)
            return writer.commit()

    def add_blob_stream(
        self, expected_digest: str, chunks: Iterable[bytes], max_bytes: int | None = None
    ) -> str:
        """Store a stream that must hash to ``expected_digest`` (:class:`DigestMismatch`)."""
        with self.open_blob_writer(expected_digest, max_bytes) as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def add_blob_file(self, src: Path, *, link: bool = False) -> str:
        """Copy a regular file into the store (streaming); return its digest.

        With ``link=True`` the file is hashed and hard-linked into the store when it
        is on the same filesystem (falling back to a copy); only for trusted files
        that are never modified in place.
        """
        with _fs.open_regular_file(src) as f:
            if link:
                digest = self._try_link(src, f)
                if digest is not None:
                    return digest
                f.seek(0)
            with self.open_blob_writer() as writer:
                while chunk := f.read(_CHUNK):
                    writer.write(chunk)
                return writer.commit()

    def _try_link(self, src: Path, f: BinaryIO) -> str | None:
        h = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            h.update(chunk)
        digest = "sha256:" + h.hexdigest()
        target = self.blob_path(digest)
        if target.is_file() and target.stat().st_size == os.fstat(f.fileno()).st_size:
            return digest
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.blobs_dir / f"{_fs.TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            os.link(src, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            _fs.discard_temp(tmp)
            logger.debug("hard link into the store failed (%s); copying", exc.strerror)
            return None
        _fs.fsync_dir(self.blobs_dir)
        return digest
