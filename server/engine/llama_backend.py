"""The only module that imports llama_cpp: typed wrappers over llama.cpp's low-level API.

Everything untyped stays here. The objects are plain owners of native handles: a
:class:`LlamaModel` (read-only weights and vocabulary, safe to share between threads), a
:class:`LlamaContext` (KV cache + compute state: ONE thread may touch it, the runner's), a
reusable :class:`Batch`, and per-request :class:`SamplerChain` objects.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import llama_cpp as L
import numpy as np
from llama_cpp import llama_grammar

logger = logging.getLogger(__name__)

GGML_TYPES: Final[dict[str, int]] = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 8}
FTYPES: Final[dict[str, int]] = {
    "q4_0": 2,
    "q8_0": 7,
    "q4_k_s": 14,
    "q4_k_m": 15,
    "q5_k_m": 17,
    "q6_k": 18,
}
POOLING_NONE: Final = 0
POOLING_RANK: Final = 4
_LOG_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}


class BackendError(RuntimeError):
    """llama.cpp refused an operation (load, context creation, grammar, quantize)."""


# ---------------------------------------------------------------------------------------------
# Logging: route llama.cpp's log lines to Python logging and remember the KV-cache allocations,
# which memory.py's tests compare with the formula.
_log_state = threading.local()
_kv_sizes: list[float] = []
_KV_LINE = re.compile(r"llama_kv_cache:.*size\s*=\s*([0-9.]+)\s*MiB")
_native_logger = logging.getLogger("llama_cpp.native")


@L.llama_log_callback  # type: ignore[untyped-decorator]
def _log_callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", "replace")
    match = _KV_LINE.search(line)
    if match:
        _kv_sizes.append(float(match[1]) * 1024 * 1024)
    if level == 5:  # continuation of the previous line
        level = getattr(_log_state, "level", 4)
    _log_state.level = level
    stripped = line.rstrip()
    if stripped:
        _native_logger.log(_LOG_LEVELS.get(level, logging.DEBUG), "%s", stripped)


_init_lock = threading.Lock()
_initialised = False


def init_backend() -> None:
    """Initialise llama.cpp once per process and install the log router."""
    global _initialised
    with _init_lock:
        if not _initialised:
            L.llama_log_set(_log_callback, ctypes.c_void_p(0))
            L.llama_backend_init()
            _initialised = True


def last_kv_allocation_bytes() -> float | None:
    """Bytes llama.cpp reported for the most recent KV cache it allocated (from its log)."""
    return _kv_sizes[-1] if _kv_sizes else None


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelGeometry:
    """What memory estimates and context sizing need to know about a model."""

    n_layer: int
    n_head: int
    n_head_kv: int
    n_embd: int
    head_dim_k: int
    head_dim_v: int
    n_ctx_train: int
    n_vocab: int
    n_params: int
    size_bytes: int


class LlamaModel:
    """Loaded weights and vocabulary. Read-only after load, so any thread may tokenize."""

    def __init__(self, path: Path, *, use_mmap: bool = True) -> None:
        init_backend()
        params = L.llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_mmap = use_mmap
        handle = L.llama_model_load_from_file(str(path).encode(), params)
        if not handle:
            raise BackendError(f"llama.cpp could not load the model file ({path.name})")
        self._model: Any = handle
        self._vocab: Any = L.llama_model_get_vocab(handle)
        self.path = path
        self.n_vocab: int = L.llama_vocab_n_tokens(self._vocab)
        self.add_bos: bool = bool(L.llama_vocab_get_add_bos(self._vocab))
        self.bos: int = L.llama_vocab_bos(self._vocab)
        self.eos: int = L.llama_vocab_eos(self._vocab)
        self.n_embd_out: int = L.llama_model_n_embd_out(handle)
        self.n_ctx_train: int = L.llama_model_n_ctx_train(handle)
        self._piece_cache: dict[int, bytes] = {}

    @property
    def handle(self) -> Any:
        """The native llama_model pointer (for contexts created on it)."""
        return self._model

    def close(self) -> None:
        """Free the weights. Every context on this model must be closed first."""
        if self._model:
            L.llama_model_free(self._model)
            self._model = None

    def geometry(self) -> ModelGeometry:
        """Layer, head and size figures of the loaded model."""
        m = self._model
        n_embd = L.llama_model_n_embd(m)
        n_head = max(1, L.llama_model_n_head(m))
        arch = self.meta("general.architecture") or ""
        k_len = self.meta(f"{arch}.attention.key_length")
        v_len = self.meta(f"{arch}.attention.value_length")
        return ModelGeometry(
            n_layer=L.llama_model_n_layer(m),
            n_head=n_head,
            n_head_kv=L.llama_model_n_head_kv(m),
            n_embd=n_embd,
            head_dim_k=int(k_len) if k_len else n_embd // n_head,
            head_dim_v=int(v_len) if v_len else n_embd // n_head,
            n_ctx_train=L.llama_model_n_ctx_train(m),
            n_vocab=self.n_vocab,
            n_params=L.llama_model_n_params(m),
            size_bytes=L.llama_model_size(m),
        )

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None."""
        buf = ctypes.create_string_buffer(4096)
        n = L.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            L.llama_model_meta_val_str(self._model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace")

    def chat_template(self) -> str | None:
        """The GGUF's ``tokenizer.chat_template``."""
        raw = L.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        """Text to token ids (thread-safe)."""
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (L.llama_token * cap)()
        n = L.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (L.llama_token * cap)()
            n = L.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            raise BackendError("tokenization failed")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens rendered), cached per model."""
        cached = self._piece_cache.get(token)
        if cached is not None:
            return cached
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        out = buf.raw[: max(n, 0)]
        self._piece_cache[token] = out
        return out

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Token ids back to text (special tokens rendered as text)."""
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        """End-of-generation token (EOS, EOT, ...)."""
        return bool(L.llama_vocab_is_eog(self._vocab, token))

    def grammar_sampler(self, gbnf: str, root: str = "root") -> Any:
        """A grammar sampler for GBNF text; BackendError when llama.cpp rejects it."""
        s = L.llama_sampler_init_grammar(self._vocab, gbnf.encode(), root.encode())
        if not s:
            raise BackendError("llama.cpp rejected the grammar")
        return s


def json_schema_to_gbnf(schema: str) -> str:
    """A JSON schema (as JSON text) to GBNF, with llama.cpp's Python converter."""
    return str(llama_grammar.json_schema_to_gbnf(schema))


JSON_GBNF: Final[str] = llama_grammar.JSON_GBNF


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContextParams:
    """How to build a context: cells, batch, sequences, threads and KV precision."""

    n_ctx: int
    n_batch: int
    n_seq_max: int
    n_threads: int
    kv_type: str = "f16"
    flash_attn: bool | None = None
    embeddings: bool = False
    n_ubatch: int = 512


class LlamaContext:
    """A llama context: KV cache and compute buffers. Owned by exactly one thread."""

    def __init__(self, model: LlamaModel, params: ContextParams) -> None:
        cp = L.llama_context_default_params()
        cp.n_ctx = params.n_ctx
        cp.n_batch = params.n_batch
        cp.n_ubatch = min(params.n_ubatch, params.n_batch)
        cp.n_seq_max = params.n_seq_max
        cp.n_threads = params.n_threads
        cp.n_threads_batch = params.n_threads
        cp.kv_unified = True
        cp.type_k = GGML_TYPES[params.kv_type]
        cp.type_v = GGML_TYPES[params.kv_type]
        if params.flash_attn is None:
            cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_AUTO
        else:
            cp.flash_attn_type = (
                L.LLAMA_FLASH_ATTN_TYPE_ENABLED
                if params.flash_attn
                else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
            )
        if params.embeddings:
            cp.embeddings = True
            cp.pooling_type = -1  # the model's own (LLAMA_POOLING_TYPE_UNSPECIFIED)
        handle = L.llama_init_from_model(model.handle, cp)
        if not handle:
            raise BackendError("llama.cpp could not create the context")
        self._ctx: Any = handle
        self._mem: Any = L.llama_get_memory(handle)
        self.model = model
        self.n_ctx: int = L.llama_n_ctx(handle)
        self.n_batch: int = L.llama_n_batch(handle)
        self.n_seq_max: int = L.llama_n_seq_max(handle)
        self.can_shift: bool = bool(L.llama_memory_can_shift(self._mem))
        self.pooling: int = L.llama_pooling_type(handle) if params.embeddings else POOLING_NONE

    @property
    def handle(self) -> Any:
        """The native context pointer."""
        return self._ctx

    def close(self) -> None:
        """Free the context."""
        if self._ctx:
            L.llama_free(self._ctx)
            self._ctx = None

    def decode(self, batch: Batch) -> int:
        """Decode one batch; returns llama_decode's code (0 ok, 1 no KV slot, <0 error)."""
        return int(L.llama_decode(self._ctx, batch.native))

    def _check_seq(self, seq: int) -> None:
        # llama.cpp GGML_ASSERTs (aborting the process) on a seq id out of range.
        if not 0 <= seq < self.n_seq_max:
            raise ValueError(f"sequence id {seq} out of range")

    def seq_rm(self, seq: int, p0: int, p1: int) -> bool:
        """Remove positions [p0, p1) of one sequence (p1 < 0: to the end)."""
        self._check_seq(seq)
        return bool(L.llama_memory_seq_rm(self._mem, seq, p0, p1))

    def seq_add(self, seq: int, p0: int, p1: int, delta: int) -> None:
        """Shift positions [p0, p1) of one sequence by delta (RoPE applied at next decode)."""
        self._check_seq(seq)
        L.llama_memory_seq_add(self._mem, seq, p0, p1, delta)

    def clear(self) -> None:
        """Drop every cached token of every sequence."""
        L.llama_memory_clear(self._mem, True)

    def embedding_seq(self, seq: int, n_embd: int) -> np.ndarray[Any, np.dtype[np.float32]]:
        """A copy of the pooled embedding of a sequence after the last decode."""
        ptr = L.llama_get_embeddings_seq(self._ctx, seq)
        if not ptr:
            raise BackendError("no pooled embedding for this sequence")
        return np.ctypeslib.as_array(ptr, shape=(n_embd,)).copy()


class Batch:
    """A reusable llama_batch of up to ``capacity`` tokens, one sequence id per token."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.native: Any = L.llama_batch_init(capacity, 0, 1)
        self._token = np.ctypeslib.as_array(self.native.token, shape=(capacity,))
        self._pos = np.ctypeslib.as_array(self.native.pos, shape=(capacity,))
        self._n_seq = np.ctypeslib.as_array(self.native.n_seq_id, shape=(capacity,))
        self._logits = np.ctypeslib.as_array(self.native.logits, shape=(capacity,))
        self._seq_ptrs = [self.native.seq_id[i] for i in range(capacity)]
        self._n_seq[:] = 1
        self.n_tokens = 0

    def clear(self) -> None:
        """Empty the batch."""
        self.n_tokens = 0
        self.native.n_tokens = 0

    @property
    def free(self) -> int:
        """Room left."""
        return self.capacity - self.n_tokens

    def add(self, tokens: Sequence[int], start_pos: int, seq: int, *, last_output: bool) -> int:
        """Append tokens of one sequence at consecutive positions; returns the last index."""
        n = len(tokens)
        i = self.n_tokens
        if n == 0 or i + n > self.capacity:
            raise ValueError("batch overflow")
        self._token[i : i + n] = tokens
        self._pos[i : i + n] = np.arange(start_pos, start_pos + n, dtype=np.int32)
        self._logits[i : i + n] = 0
        for k in range(i, i + n):
            self._seq_ptrs[k][0] = seq
        if last_output:
            self._logits[i + n - 1] = 1
        self.n_tokens = i + n
        self.native.n_tokens = self.n_tokens
        return i + n - 1

    def close(self) -> None:
        """Free the native batch."""
        if self.native is not None:
            L.llama_batch_free(self.native)
            self.native = None


# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplerConfig:
    """Per-request sampling settings (Ollama's option names and defaults)."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = 0xFFFFFFFF
    grammar: str | None = None


class SamplerChain:
    """One request's sampler chain.

    Order: penalties → grammar → top_k → typical → top_p → min_p → temp → dist (greedy at temp 0).
    """

    def __init__(self, model: LlamaModel, cfg: SamplerConfig) -> None:
        self._chain: Any = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        add = self._add
        penalised = (
            cfg.repeat_penalty != 1.0 or cfg.presence_penalty != 0.0 or cfg.frequency_penalty != 0.0
        )
        if penalised and cfg.repeat_last_n != 0:
            add(
                L.llama_sampler_init_penalties(
                    model.n_vocab,
                    cfg.repeat_last_n,
                    cfg.repeat_penalty,
                    cfg.frequency_penalty,
                    cfg.presence_penalty,
                )
            )
        if cfg.grammar is not None:
            # Before the truncating samplers, so the grammar sees the whole distribution.
            add(model.grammar_sampler(cfg.grammar))
        if cfg.temperature <= 0:
            add(L.llama_sampler_init_greedy())
            return
        if cfg.top_k > 0:
            add(L.llama_sampler_init_top_k(cfg.top_k))
        if 0 < cfg.typical_p < 1:
            add(L.llama_sampler_init_typical(cfg.typical_p, 1))
        if 0 < cfg.top_p < 1:
            add(L.llama_sampler_init_top_p(cfg.top_p, 1))
        if cfg.min_p > 0:
            add(L.llama_sampler_init_min_p(cfg.min_p, 1))
        add(L.llama_sampler_init_temp(cfg.temperature))
        add(L.llama_sampler_init_dist(cfg.seed & 0xFFFFFFFF))

    def _add(self, sampler: Any) -> None:
        L.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: LlamaContext, index: int) -> int:
        """Sample from the logits at batch index ``index`` and accept the token."""
        return int(L.llama_sampler_sample(self._chain, ctx.handle, index))

    def accept(self, token: int) -> None:
        """Feed a token the chain did not sample (e.g. a prompt token) to its history."""
        L.llama_sampler_accept(self._chain, token)

    def close(self) -> None:
        """Free the chain and every sampler in it."""
        if self._chain:
            L.llama_sampler_free(self._chain)
            self._chain = None


# ---------------------------------------------------------------------------------------------
def quantize(src: Path, dst: Path, ftype: str, *, n_threads: int) -> None:
    """Quantize a GGUF file with llama.cpp's quantizer (blocking)."""
    init_backend()
    params = L.llama_model_quantize_default_params()
    params.nthread = n_threads
    params.ftype = FTYPES[ftype.lower()]
    rc = L.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise BackendError(f"quantization to {ftype} failed (code {rc})")
