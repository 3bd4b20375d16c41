"""Filesystem helpers: atomic writes and safe opening of files we did not create."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` for reading, refusing FIFOs, devices and directories.

    ``O_NONBLOCK`` keeps ``open`` from hanging on a FIFO (CVE-2024-39721 was an
    endless read of ``/dev/random``); it has no effect on regular files.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"not a regular file: {path.name}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (rename, unlink) to disk; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_temp(directory: Path) -> tuple[int, Path]:
    """Create a hidden temp file in ``directory`` (same filesystem as the target)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    return fd, Path(name)


def commit_temp(tmp: Path, target: Path) -> None:
    """Atomically move a finished temp file into place (readable by all, like Ollama)."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def discard_temp(tmp: Path) -> None:
    """Remove a temp file if it still exists."""
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` via temp file + fsync + ``os.replace``."""
    fd, tmp = make_temp(target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        commit_temp(tmp, target)
    except BaseException:
        discard_temp(tmp)
        raise
