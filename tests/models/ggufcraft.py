"""Hand-built GGUF files for the bounded-reader tests (valid and hostile)."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np

STRING, ARRAY = 8, 9
UINT8, UINT32, INT32, FLOAT32, BOOL, UINT64 = 0, 4, 5, 6, 7, 10


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def gstr(text: str | bytes, length: int | None = None) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return u64(len(raw) if length is None else length) + raw


def kv(key: str | bytes, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + u32(vtype) + payload


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, UINT32, u32(value))


def kv_str(key: str, value: str) -> bytes:
    return kv(key, STRING, gstr(value))


def tensor(name: str | bytes, dims: list[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        gstr(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(ggml_type) + u64(offset)
    )


def build(
    kvs: list[bytes],
    tensors: list[bytes] = (),  # type: ignore[assignment]
    *,
    magic: bytes = b"GGUF",
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    alignment: int = 32,
    data: bytes = b"",
) -> bytes:
    """Header + KVs + tensor infos, padded to ``alignment``, then ``data``."""
    head = magic + u32(version)
    head += u64(len(tensors) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    if tensors:
        body += b"\0" * (-len(body) % alignment)
    return body + data


def minimal(**overrides: object) -> bytes:
    """A valid little file: llama arch, one F32 tensor of 8 elements."""
    return build(
        [kv_str("general.architecture", "llama")],
        [tensor("w", [8])],
        data=b"\0" * 32,
        **overrides,  # type: ignore[arg-type]
    )


ARCH = kv_str("general.architecture", "llama")
HUGE = 1 << 62

# Each of these must make the bounded reader raise InvalidGGUF.
HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "four bytes": b"GGUF",
    "bad magic": b"GGML" + minimal()[4:],
    "version 1": minimal(version=1),
    "version 4": minimal(version=4),
    "big endian": minimal(version=3 << 24),
    "n_kv huge": minimal(n_kv=HUGE),
    "n_tensors huge": minimal(n_tensors=HUGE),
    "n_kv above int64": minimal(n_kv=(1 << 64) - 1),
    "key length huge": build([gstr(b"k", length=HUGE) + u32(UINT32) + u32(1)]),
    "string value huge": build([kv("k", STRING, gstr(b"abc", length=1 << 40))]),
    "string value past eof": build([kv("k", STRING, gstr(b"abc", length=100))]),
    "string over limit": build([kv("k", STRING, gstr(b"", length=(16 << 20) + 1))]),
    "array count huge": build([kv("k", ARRAY, u32(UINT8) + u64(HUGE))]),
    "string array count huge": build([kv("k", ARRAY, u32(STRING) + u64(HUGE))]),
    "array element string huge": build(
        [kv("k", ARRAY, u32(STRING) + u64(2) + gstr(b"a") + u64(HUGE))]
    ),
    "nested array": build([kv("k", ARRAY, u32(ARRAY) + u64(1) + u32(UINT8) + u64(1) + b"\0")]),
    "unknown value type": build([kv("k", 13, u32(0))]),
    "unknown array type": build([kv("k", ARRAY, u32(99) + u64(1) + b"\0" * 8)]),
    "duplicate key": build([kv_u32("k", 1), kv_u32("k", 2)]),
    "key not utf-8": build([kv(b"\xff\xfe", UINT32, u32(1))]),
    "alignment 0": build([ARCH, kv_u32("general.alignment", 0)]),
    "alignment 3": build([ARCH, kv_u32("general.alignment", 3)]),
    "alignment string": build([ARCH, kv_str("general.alignment", "32")]),
    "dims 5": build([ARCH], [tensor("w", [1, 1, 1, 1, 8])], data=b"\0" * 32),
    "dim product overflow": build([ARCH], [tensor("w", [1 << 32, 1 << 32])]),
    "dim above int64": build([ARCH], [tensor("w", [1 << 63])]),
    "tensor end past eof": build([ARCH], [tensor("w", [64])], data=b"\0" * 32),
    "tensor offset past eof": build([ARCH], [tensor("w", [8], offset=1 << 40)], data=b"\0" * 32),
    "tensor offset unaligned": build([ARCH], [tensor("w", [1], offset=4)], data=b"\0" * 64),
    "unknown ggml type": build([ARCH], [tensor("w", [32], ggml_type=4)], data=b"\0" * 128),
    "row not a block multiple": build([ARCH], [tensor("w", [33], ggml_type=2)], data=b"\0" * 64),
    "duplicate tensor": build([ARCH], [tensor("w", [8]), tensor("w", [8], offset=32)]),
    "tensor name too long": build([ARCH], [tensor("w" * 64, [8])], data=b"\0" * 32),
    "tensor count past eof": build([ARCH], [tensor("w", [8])], n_tensors=3, data=b"\0" * 32),
}


def write_valid_gguf(path: Path) -> Path:
    """A small but complete GGUF written by the reference writer (gguf-py)."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_block_count(2)
    w.add_context_length(128)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(1)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<s>", "</s>", "hello", "wörld"])
    w.add_token_types([3, 3, 1, 1])
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_array("general.tags", [])
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.zeros((4, 64), dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(64, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
