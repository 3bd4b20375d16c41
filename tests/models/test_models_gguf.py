from __future__ import annotations

import os
import threading
import tracemalloc
from pathlib import Path

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.ggml import human_number
from models.gguf import ArrayInfo, InvalidGGUF, ValueType, read_gguf
from tests.models.ggufcraft import (
    ARCH,
    ARRAY,
    BOOL,
    FLOAT32,
    HOSTILE,
    STRING,
    UINT8,
    build,
    gstr,
    kv,
    kv_str,
    kv_u32,
    tensor,
    u32,
    u64,
    write_valid_gguf,
)


@pytest.fixture
def valid(tmp_path: Path) -> Path:
    return write_valid_gguf(tmp_path / "valid.gguf")


def write(tmp_path: Path, data: bytes, name: str = "x.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_reads_a_file_written_by_gguf_py(valid: Path) -> None:
    g = read_gguf(valid)
    reference = gguf.GGUFReader(valid)
    assert g.version == 3
    assert g.architecture == "llama"
    assert g.file_type_name == "F16"
    assert g.context_length == 128
    assert g.embedding_length == 64
    assert g.block_count == 2
    assert (g.head_count, g.head_count_kv, g.key_length, g.value_length) == (4, 2, 16, 16)
    assert g.chat_template == "{% for m in messages %}{{ m.content }}{% endfor %}"
    assert g.metadata["llama.rope.freq_base"] == 10000.0
    assert g.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-05
    assert g.metadata["tokenizer.ggml.add_bos_token"] is True
    assert g.metadata["tokenizer.ggml.tokens"] == ArrayInfo(ValueType.STRING, 4)
    assert g.file_size == valid.stat().st_size
    assert [(t.name, list(t.dims), g.data_offset + t.offset) for t in g.tensors] == [
        (t.name, [int(d) for d in t.shape], t.data_offset) for t in reference.tensors
    ]
    assert [t.type_name for t in g.tensors] == ["F32", "F16"]
    assert g.parameter_count == 4 * 64 + 64
    assert g.parameter_size == "320"
    assert g.pooling_type is None


def test_keep_array_len_materialises_arrays(valid: Path) -> None:
    g = read_gguf(valid, keep_array_len=-1)
    assert g.metadata["tokenizer.ggml.tokens"] == ["<s>", "</s>", "hello", "wörld"]
    assert g.metadata["tokenizer.ggml.token_type"] == [3, 3, 1, 1]
    small = read_gguf(valid, keep_array_len=3)
    assert small.metadata["tokenizer.ggml.token_type"] == ArrayInfo(ValueType.INT32, 4)


def test_model_info_follows_ollama_show(valid: Path) -> None:
    info = read_gguf(valid, keep_array_len=-1).model_info()
    assert "general.name" not in info
    assert "tokenizer.chat_template" not in info
    assert info["general.parameter_count"] == 320
    assert info["tokenizer.ggml.tokens"] is None
    assert info["llama.context_length"] == 128
    assert list(info) == sorted(info)
    verbose = read_gguf(valid, keep_array_len=-1).model_info(verbose=True)
    assert verbose["tokenizer.ggml.tokens"] == ["<s>", "</s>", "hello", "wörld"]
    # not materialised -> still None even when verbose
    assert read_gguf(valid).model_info(True)["tokenizer.ggml.tokens"] is None


def test_empty_array_and_scalar_types(tmp_path: Path) -> None:
    data = build(
        [
            ARCH,
            kv("general.tags", ARRAY, u32(STRING) + u64(0)),
            kv("x.flag", BOOL, b"\x01"),
            kv("x.f", FLOAT32, b"\x00\x00\xc0\x3f"),
            kv("x.bytes", ARRAY, u32(UINT8) + u64(3) + b"\x01\x02\x03"),
        ]
    )
    g = read_gguf(write(tmp_path, data), keep_array_len=8)
    assert g.metadata["general.tags"] == []
    assert g.metadata["x.flag"] is True
    assert g.metadata["x.f"] == 1.5
    assert g.metadata["x.bytes"] == [1, 2, 3]
    assert g.model_info()["general.tags"] == []
    assert g.tensors == []


def test_real_default_model(smollm_path: Path) -> None:
    g = read_gguf(smollm_path)
    assert g.architecture == "llama"
    assert g.file_type_name == "Q4_1"
    assert g.parameter_count == 134_515_008
    assert g.parameter_size == "134.52M"
    assert g.chat_template is not None and "<|im_start|>" in g.chat_template
    assert (g.context_length, g.embedding_length, g.block_count) == (8192, 576, 30)
    assert (g.head_count, g.head_count_kv, g.key_length) == (9, 3, 64)
    assert len(g.tensors) == 272
    assert g.metadata["tokenizer.ggml.tokens"] == ArrayInfo(ValueType.STRING, 49152)
    info = g.model_info()
    assert info["general.architecture"] == "llama"
    assert info["tokenizer.ggml.merges"] is None


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0"),
        (999, "999"),
        (1_500, "2K"),
        (134_515_008, "134.52M"),
        (135_000_000, "135M"),
        (7_615_616_512, "7.6B"),
        (8_000_000_000, "8B"),
    ],
)
def test_human_number_matches_ollama(n: int, text: str) -> None:
    assert human_number(n) == text


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_raise_invalid_gguf_with_bounded_memory(tmp_path: Path, case: str) -> None:
    path = write(tmp_path, HOSTILE[case])
    tracemalloc.start()
    try:
        with pytest.raises(InvalidGGUF):
            read_gguf(path, keep_array_len=-1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20


def test_specific_messages(tmp_path: Path) -> None:
    def message(data: bytes) -> str:
        with pytest.raises(InvalidGGUF) as info:
            read_gguf(write(tmp_path, data))
        return str(info.value)

    assert "bad magic" in message(HOSTILE["bad magic"])
    assert "version 1" in message(HOSTILE["version 1"])
    assert "big-endian" in message(HOSTILE["big endian"])
    assert "power of two" in message(HOSTILE["alignment 0"])
    assert "past the end" in message(HOSTILE["tensor end past eof"])
    assert "duplicate key" in message(HOSTILE["duplicate key"])


def test_truncation_at_every_header_offset(valid: Path, tmp_path: Path) -> None:
    data = valid.read_bytes()
    header_end = read_gguf(valid).data_offset
    path = tmp_path / "cut.gguf"
    for cut in range(header_end + 1):
        path.write_bytes(data[:cut])
        with pytest.raises(InvalidGGUF):
            read_gguf(path)


def test_metadata_size_limit(valid: Path) -> None:
    with pytest.raises(InvalidGGUF, match="metadata size limit"):
        read_gguf(valid, max_metadata_bytes=100)
    with pytest.raises(InvalidGGUF, match="over the limit"):
        read_gguf(valid, max_array_len=2)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            read_gguf(fifo)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], OSError)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_files_only_raise_invalid_gguf(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    seed = build(
        [
            ARCH,
            kv_u32("llama.context_length", 64),
            kv("tokenizer.ggml.tokens", ARRAY, u32(STRING) + u64(2) + gstr("a") + gstr("bc")),
        ],
        [tensor("a", [8]), tensor("b", [32], ggml_type=2, offset=32)],
        data=b"\0" * 64,
    )
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    path = tmp_path_factory.mktemp("fuzz") / "f.gguf"
    path.write_bytes(bytes(blob))
    try:
        g = read_gguf(path, keep_array_len=-1)
    except InvalidGGUF:
        return
    assert g.data_offset <= len(blob) or not g.tensors
    for t in g.tensors:
        assert g.data_offset + t.offset + t.n_bytes <= len(blob)


def test_long_strings_and_many_keys(tmp_path: Path) -> None:
    template = "x" * (3 << 20)  # larger than the reader's buffer
    data = build(
        [ARCH, kv_str("tokenizer.chat_template", template)]
        + [kv_u32(f"k{i}", i) for i in range(2000)],
        [tensor("w", [8])],
        data=b"\0" * 32,
    )
    g = read_gguf(write(tmp_path, data))
    assert g.chat_template == template
    assert g.metadata["k1999"] == 1999
    assert g.tensors[0].name == "w"
    with pytest.raises(InvalidGGUF, match="limit"):
        read_gguf(write(tmp_path, data), max_string_len=1 << 20)
