"""A bounded GGUF reader, safe on hostile files.

Every length, count and offset is checked against the bytes that remain *before*
anything is allocated or read (gguf-py's reader allocates gigabytes on a 50-byte
file; see reliability.md). Only the header, metadata and tensor infos are read:
never the tensor data. Supports GGUF v2 and v3, little-endian.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO

from models._fs import open_regular_file
from models.errors import InvalidGGUF
from models.ggml import GGML_TYPES, file_type_name, human_number

__all__ = [
    "ArrayInfo",
    "GGUFFile",
    "InvalidGGUF",
    "TensorInfo",
    "ValueType",
    "read_gguf",
]

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSOR_NAME = 63  # GGML_MAX_NAME - 1 (room for the NUL)
INT64_MAX = (1 << 63) - 1
_HEADER = struct.Struct("<4sIQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F32 = struct.Struct("<f")
_CHUNK = 1 << 20


class ValueType(IntEnum):
    """GGUF metadata value types."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


_SCALAR_FORMATS: dict[int, str] = {
    ValueType.UINT8: "B",
    ValueType.INT8: "b",
    ValueType.UINT16: "H",
    ValueType.INT16: "h",
    ValueType.UINT32: "I",
    ValueType.INT32: "i",
    ValueType.FLOAT32: "f",
    ValueType.BOOL: "B",
    ValueType.UINT64: "Q",
    ValueType.INT64: "q",
    ValueType.FLOAT64: "d",
}
_SCALARS = {t: struct.Struct("<" + fmt) for t, fmt in _SCALAR_FORMATS.items()}
# Smallest encoding of one KV pair (empty key, 1-byte value) and one tensor info (0 dims).
_MIN_KV_BYTES = 8 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8


@dataclass(frozen=True)
class ArrayInfo:
    """An array that was not materialised: only its element type and length."""

    item_type: ValueType
    length: int


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry; ``offset`` is relative to :attr:`GGUFFile.data_offset`."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def n_elements(self) -> int:
        """The number of elements (product of the dims)."""
        return math.prod(self.dims)

    @property
    def n_bytes(self) -> int:
        """The size of the tensor data in bytes."""
        _, block, size = GGML_TYPES[self.ggml_type]
        return self.n_elements // block * size

    @property
    def type_name(self) -> str:
        """The ggml type name, e.g. ``"Q4_1"``."""
        return GGML_TYPES[self.ggml_type][0]


@dataclass(frozen=True)
class _Limits:
    max_metadata_bytes: int
    max_array_len: int
    max_string_len: int
    keep_array_len: int


class _Cursor:
    """Sequential reads over the header region; every read is bounds-checked first."""

    def __init__(self, f: BinaryIO, file_size: int, limit: int) -> None:
        self._f = f
        self._file_size = file_size
        self._limit = min(file_size, limit)
        self._buf = b""
        self._buf_start = 0
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self._limit - self.pos

    def need(self, n: int, what: str) -> None:
        if n > self.remaining:
            if self._limit < self._file_size:
                raise InvalidGGUF(f"{what} exceeds the metadata size limit ({self._limit} bytes)")
            raise InvalidGGUF(f"{what} extends past the end of the file (offset {self.pos})")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        start = self.pos - self._buf_start
        if start + n <= len(self._buf):
            data = self._buf[start : start + n]
        else:
            self._f.seek(self.pos)
            if n >= _CHUNK:
                data = self._f.read(n)
                self._buf = b""
            else:
                self._buf = self._f.read(min(_CHUNK, self.remaining))
                self._buf_start = self.pos
                data = self._buf[:n]
            if len(data) != n:  # the file shrank while we read it
                raise InvalidGGUF(f"{what}: unexpected end of file")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n

    def u32(self, what: str) -> int:
        value: int = _U32.unpack(self.read(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = _U64.unpack(self.read(8, what))[0]
        return value

    def string_len(self, what: str, max_len: int) -> int:
        n = self.u64(what)
        if n > max_len:
            raise InvalidGGUF(f"{what}: string length {n} exceeds the limit of {max_len}")
        self.need(n, what)
        return n

    def string(self, what: str, max_len: int, *, strict: bool = False) -> str:
        raw = self.read(self.string_len(what, max_len), what)
        try:
            return raw.decode("utf-8", "strict" if strict else "replace")
        except UnicodeDecodeError:
            raise InvalidGGUF(f"{what} is not valid UTF-8") from None


def _shortest_f32(x: float) -> float:
    """The shortest decimal that round-trips as float32 (what Go prints for float32)."""
    if not math.isfinite(x):
        return x
    packed = _F32.pack(x)
    for precision in range(1, 10):
        candidate = float(f"{x:.{precision}g}")
        if _F32.pack(candidate) == packed:
            return candidate
    return x


def _read_array(cur: _Cursor, lim: _Limits, key: str) -> object:
    item_type = cur.u32(f"array type of {key!r}")
    count = cur.u64(f"array length of {key!r}")
    if item_type == ValueType.ARRAY:
        raise InvalidGGUF(f"nested arrays are not supported ({key!r})")
    if item_type != ValueType.STRING and item_type not in _SCALARS:
        raise InvalidGGUF(f"unknown array element type {item_type} ({key!r})")
    if count > lim.max_array_len:
        raise InvalidGGUF(f"array {key!r} has {count} elements, over the limit")
    elem = 8 if item_type == ValueType.STRING else _SCALARS[item_type].size
    cur.need(count * elem, f"array {key!r}")
    keep = lim.keep_array_len < 0 or count <= lim.keep_array_len
    if item_type == ValueType.STRING:
        if keep:
            return [cur.string(f"element of {key!r}", lim.max_string_len) for _ in range(count)]
        for _ in range(count):
            cur.skip(cur.string_len(f"element of {key!r}", lim.max_string_len), key)
        return ArrayInfo(ValueType.STRING, count)
    if not keep:
        cur.skip(count * elem, f"array {key!r}")
        return ArrayInfo(ValueType(item_type), count)
    fmt = f"<{count}{_SCALAR_FORMATS[item_type]}"
    values = list(struct.unpack(fmt, cur.read(count * elem, f"array {key!r}")))
    if item_type == ValueType.BOOL:
        return [bool(v) for v in values]
    return values


def _read_value(cur: _Cursor, vtype: int, lim: _Limits, key: str) -> object:
    if vtype == ValueType.STRING:
        return cur.string(f"value of {key!r}", lim.max_string_len)
    if vtype == ValueType.ARRAY:
        return _read_array(cur, lim, key)
    scalar = _SCALARS.get(vtype)
    if scalar is None:
        raise InvalidGGUF(f"unknown value type {vtype} for key {key!r}")
    value = scalar.unpack(cur.read(scalar.size, f"value of {key!r}"))[0]
    if vtype == ValueType.BOOL:
        return bool(value)
    if vtype == ValueType.FLOAT32:
        return _shortest_f32(value)
    return value


def _check_version(version: int) -> None:
    if version in (2, 3):
        return
    if int.from_bytes(version.to_bytes(4, "little"), "big") in (1, 2, 3):
        raise InvalidGGUF("big-endian GGUF files are not supported")
    if version == 1:
        raise InvalidGGUF("GGUF version 1 is not supported (only versions 2 and 3)")
    raise InvalidGGUF(f"unsupported GGUF version {version} (only versions 2 and 3)")


def _alignment(metadata: Mapping[str, object]) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidGGUF("general.alignment must be an integer")
    if value <= 0 or value & (value - 1) or value > 1 << 30:
        raise InvalidGGUF(f"general.alignment must be a power of two, got {value}")
    return value


def _read_tensor_info(cur: _Cursor, alignment: int, index: int) -> TensorInfo:
    name = cur.string(f"name of tensor {index}", MAX_TENSOR_NAME, strict=True)
    n_dims = cur.u32(f"dims of tensor {name!r}")
    if n_dims > MAX_DIMS:
        raise InvalidGGUF(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS})")
    raw = cur.read(8 * n_dims + 4 + 8, f"tensor info {name!r}")
    dims = struct.unpack_from(f"<{n_dims}Q", raw)
    ggml_type, offset = struct.unpack_from("<IQ", raw, 8 * n_dims)
    elements = 1
    for dim in dims:
        if dim > INT64_MAX or (dim and elements > INT64_MAX // dim):
            raise InvalidGGUF(f"tensor {name!r} element count overflows int64")
        elements *= dim
    if ggml_type not in GGML_TYPES:
        raise InvalidGGUF(f"tensor {name!r} has unknown ggml type {ggml_type}")
    block = GGML_TYPES[ggml_type][1]
    if (dims[0] if dims else 1) % block:
        raise InvalidGGUF(f"tensor {name!r} row size is not a multiple of the block size")
    if offset % alignment:
        raise InvalidGGUF(f"tensor {name!r} offset is not aligned to {alignment}")
    return TensorInfo(name=name, dims=tuple(dims), ggml_type=ggml_type, offset=offset)


def _parse(f: BinaryIO, file_size: int, lim: _Limits) -> GGUFFile:
    if file_size < _HEADER.size:
        raise InvalidGGUF(f"file too small to be GGUF ({file_size} bytes)")
    cur = _Cursor(f, file_size, lim.max_metadata_bytes)
    magic, version, n_tensors, n_kv = _HEADER.unpack(cur.read(_HEADER.size, "header"))
    if magic != GGUF_MAGIC:
        raise InvalidGGUF("not a GGUF file (bad magic)")
    _check_version(version)
    minimum = n_kv * _MIN_KV_BYTES + n_tensors * _MIN_TENSOR_INFO_BYTES
    cur.need(minimum, f"header with {n_kv} keys and {n_tensors} tensors")
    metadata: dict[str, object] = {}
    for i in range(n_kv):
        key = cur.string(f"key {i}", lim.max_string_len, strict=True)
        if key in metadata:
            raise InvalidGGUF(f"duplicate key {key!r}")
        metadata[key] = _read_value(cur, cur.u32(f"type of {key!r}"), lim, key)
    alignment = _alignment(metadata)
    cur.need(n_tensors * _MIN_TENSOR_INFO_BYTES, "tensor infos")
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for i in range(n_tensors):
        info = _read_tensor_info(cur, alignment, i)
        if info.name in seen:
            raise InvalidGGUF(f"duplicate tensor name {info.name!r}")
        seen.add(info.name)
        tensors.append(info)
    data_offset = -(-cur.pos // alignment) * alignment
    for info in tensors:
        if data_offset + info.offset + info.n_bytes > file_size:
            raise InvalidGGUF(f"tensor {info.name!r} data extends past the end of the file")
    return GGUFFile(
        version=version,
        metadata=metadata,
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
        file_size=file_size,
    )


def read_gguf(
    path: Path,
    *,
    max_metadata_bytes: int = 64 << 20,
    max_array_len: int = 64 << 20,
    max_string_len: int = 16 << 20,
    keep_array_len: int = 0,
) -> GGUFFile:
    """Read and validate the header of the GGUF file at ``path``.

    Arrays longer than ``keep_array_len`` (a negative value keeps all) are returned
    as :class:`ArrayInfo` instead of lists. Raises :class:`InvalidGGUF` for anything
    malformed; ``OSError`` if the file cannot be opened or is not a regular file.
    """
    limits = _Limits(max_metadata_bytes, max_array_len, max_string_len, keep_array_len)
    with open_regular_file(path) as f:
        return _parse(f, os.fstat(f.fileno()).st_size, limits)


@dataclass(frozen=True)
class GGUFFile:
    """The parsed header of a GGUF file."""

    version: int
    metadata: dict[str, object]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    file_size: int

    def _str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def _int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        # some architectures store per-layer values (e.g. head_count_kv) as arrays
        if isinstance(value, list) and value and all(type(v) is int for v in value):
            return max(int(v) for v in value)
        return None

    def _arch_int(self, suffix: str) -> int | None:
        arch = self.architecture
        return None if arch is None else self._int(f"{arch}.{suffix}")

    @property
    def architecture(self) -> str | None:
        """``general.architecture``, e.g. ``"llama"``."""
        return self._str("general.architecture")

    @property
    def file_type(self) -> int | None:
        """``general.file_type`` (llama_ftype)."""
        return self._int("general.file_type")

    @property
    def file_type_name(self) -> str | None:
        """The quantization name, e.g. ``"Q4_K_M"``; ``None`` when the key is absent."""
        ft = self.file_type
        return None if ft is None else file_type_name(ft)

    @property
    def parameter_count(self) -> int:
        """The total number of tensor elements."""
        return sum(t.n_elements for t in self.tensors)

    @property
    def parameter_size(self) -> str:
        """The parameter count as Ollama prints it, e.g. ``"134.52M"``."""
        return human_number(self.parameter_count)

    @property
    def context_length(self) -> int | None:
        """``<arch>.context_length`` (the training context)."""
        return self._arch_int("context_length")

    @property
    def embedding_length(self) -> int | None:
        """``<arch>.embedding_length``."""
        return self._arch_int("embedding_length")

    @property
    def block_count(self) -> int | None:
        """``<arch>.block_count`` (number of layers)."""
        return self._arch_int("block_count")

    @property
    def head_count(self) -> int | None:
        """``<arch>.attention.head_count``."""
        return self._arch_int("attention.head_count")

    @property
    def head_count_kv(self) -> int | None:
        """``<arch>.attention.head_count_kv``, defaulting to the head count like llama.cpp."""
        value = self._arch_int("attention.head_count_kv")
        return self.head_count if value is None else value

    def _head_dim(self, suffix: str) -> int | None:
        value = self._arch_int(suffix)
        if value is not None:
            return value
        embd, heads = self.embedding_length, self.head_count
        return embd // heads if embd and heads else None

    @property
    def key_length(self) -> int | None:
        """Per-head key size: ``<arch>.attention.key_length`` or embedding / heads."""
        return self._head_dim("attention.key_length")

    @property
    def value_length(self) -> int | None:
        """Per-head value size: ``<arch>.attention.value_length`` or embedding / heads."""
        return self._head_dim("attention.value_length")

    @property
    def chat_template(self) -> str | None:
        """``tokenizer.chat_template`` (Jinja source), if present."""
        return self._str("tokenizer.chat_template")

    @property
    def pooling_type(self) -> int | None:
        """``<arch>.pooling_type``; present on embedding models."""
        return self._arch_int("pooling_type")

    # positional `verbose` kept on purpose: it mirrors ShowRequest.verbose
    def model_info(self, verbose: bool = False) -> dict[str, object]:  # noqa: FBT001, FBT002
        """Flattened metadata as Ollama's ``/api/show`` ``model_info``.

        Like Ollama, ``general.name`` and ``tokenizer.chat_template`` are left out,
        ``general.parameter_count`` is added, and non-empty arrays are ``None`` unless
        ``verbose`` (and materialised: read with a large ``keep_array_len``).
        Non-finite floats become ``None`` so the result is valid JSON.
        """
        info: dict[str, object] = {}
        for key, value in self.metadata.items():
            if key in ("general.name", "tokenizer.chat_template"):
                continue
            if isinstance(value, ArrayInfo):
                info[key] = [] if value.length == 0 else None
            elif isinstance(value, list):
                info[key] = value if verbose or not value else None
            elif isinstance(value, float) and not math.isfinite(value):
                info[key] = None
            else:
                info[key] = value
        info["general.parameter_count"] = self.parameter_count
        return dict(sorted(info.items()))
