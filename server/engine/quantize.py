"""Quantizing a stored GGUF blob into a new blob with llama.cpp's quantizer (for /api/create).

llama.cpp reports no progress, so the output file's growth against an estimate of its final
size stands in for it. Blocking: call from a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from models.gguf import GGUFFile, read_gguf
from models.store import ModelStore
from server.engine import llama_backend

__all__ = [
    "QUANTIZE_TYPES",
    "QuantizeError",
    "quantize_blob",
    "quantize_type",
    "source_type",
]

logger = logging.getLogger(__name__)

# request spelling (lowercased) -> Ollama's display name
QUANTIZE_TYPES: dict[str, str] = {
    "q4_0": "Q4_0",
    "q4_k_s": "Q4_K_S",
    "q4_k_m": "Q4_K_M",
    "q5_k_m": "Q5_K_M",
    "q6_k": "Q6_K",
    "q8_0": "Q8_0",
}
# llama_ftype -> name: the only sources Ollama quantizes from
_SOURCES = {0: "F32", 1: "F16", 32: "BF16"}
_SOURCE_TENSORS = frozenset({"F32", "F16", "BF16"})
# average bits per weight of each target, for the progress estimate only
_BITS = {"q4_0": 4.5, "q4_k_s": 4.6, "q4_k_m": 4.9, "q5_k_m": 5.7, "q6_k": 6.6, "q8_0": 8.5}
_POLL_S = 0.25

Progress = Callable[[float], None]


class QuantizeError(ValueError):
    """The request cannot be quantized (type unknown, source not F16/BF16/F32)."""


def quantize_type(name: str) -> str:
    """The canonical (lowercase) target type; :class:`QuantizeError` if unsupported."""
    key = name.strip().lower()
    if key not in QUANTIZE_TYPES or key not in llama_backend.FTYPES:
        supported = ", ".join(QUANTIZE_TYPES.values())
        raise QuantizeError(f"unsupported quantization type; use one of {supported}")
    return key


def source_type(header: GGUFFile) -> str:
    """``F16``, ``BF16`` or ``F32``; :class:`QuantizeError` for an already quantized model."""
    if header.file_type is not None:
        name = _SOURCES.get(header.file_type)
    else:  # no general.file_type: judge by the matrices
        kinds = {t.type_name for t in header.tensors if len(t.dims) >= 2}
        name = next(iter(kinds)) if len(kinds) == 1 and kinds <= _SOURCE_TENSORS else None
    if name is None:
        raise QuantizeError("quantization is only supported for F16, BF16 and F32 models")
    return name


def _estimate(header: GGUFFile, qtype: str) -> int:
    size = header.data_offset
    for t in header.tensors:
        # 1-D tensors (norms, biases) stay F32
        size += t.n_elements * 4 if len(t.dims) < 2 else int(t.n_elements * _BITS[qtype] / 8)
    return max(size, 1)


def quantize_blob(
    store: ModelStore, digest: str, qtype: str, *, threads: int, progress: Progress
) -> str:
    """Quantize the GGUF blob ``digest`` to ``qtype``; returns the new blob's digest.

    ``progress`` gets the estimated fraction done (0..1). The output is validated with the
    bounded GGUF reader before it enters the store.
    """
    src = store.blob_path(digest)
    estimate = _estimate(read_gguf(src), qtype)
    store.blobs_dir.mkdir(parents=True, exist_ok=True)
    # a hidden temp name in blobs/: the store's prune removes it if we die halfway
    fd, name = tempfile.mkstemp(dir=store.blobs_dir, prefix=".tmp-quantize-")
    os.close(fd)
    tmp = Path(name)
    try:
        _run(src, tmp, qtype, threads, estimate, progress)
        read_gguf(tmp)
        new = store.add_blob_file(tmp, link=True)
    finally:
        tmp.unlink(missing_ok=True)
    progress(1.0)
    return new


def _run(src: Path, dst: Path, qtype: str, threads: int, estimate: int, progress: Progress) -> None:
    failure: list[BaseException] = []

    def work() -> None:
        try:
            llama_backend.quantize(src, dst, qtype, n_threads=threads)
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    worker = threading.Thread(target=work, name="quantize", daemon=True)
    worker.start()
    progress(0.0)
    while worker.is_alive():
        worker.join(_POLL_S)
        with contextlib.suppress(FileNotFoundError):
            progress(min(dst.stat().st_size / estimate, 0.99))
    if failure:
        raise failure[0]
    logger.info("quantized %s to %s", src.name[:19], qtype)
