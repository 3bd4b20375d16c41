"""Memory estimates: weights plus the KV cache, from the model geometry.

    M_kv = 2 x n_layer x n_cells x n_head_kv x head_dim x bytes_per_element(type)

(K and V each hold ``n_head_kv x head_dim`` values per layer per cell; with different K and V head
sizes the two halves are summed.) Block-quantized types are counted per 32-element block:
q8_0 stores 32 int8 plus one f16 scale (34 bytes), q4_0 stores 32 nibbles plus one scale (18).
tests/live/test_memory.py checks the formula against what llama.cpp allocates.
"""

from __future__ import annotations

from typing import Final, Protocol

BLOCK: Final = 32
BYTES_PER_ELEMENT: Final[dict[str, float]] = {
    "f32": 4.0,
    "f16": 2.0,
    "q8_0": 34 / BLOCK,
    "q4_0": 18 / BLOCK,
}
QUANTIZED_KV: Final = frozenset({"q8_0", "q4_0"})


class Geometry(Protocol):
    """The model figures the estimate needs."""

    @property
    def n_layer(self) -> int: ...
    @property
    def n_head_kv(self) -> int: ...
    @property
    def head_dim_k(self) -> int: ...
    @property
    def head_dim_v(self) -> int: ...


def kv_cache_bytes(geometry: Geometry, n_cells: int, kv_type: str) -> int:
    """Bytes of K and V for ``n_cells`` cache cells at precision ``kv_type``."""
    bpe = BYTES_PER_ELEMENT[kv_type]
    per_cell = geometry.n_layer * geometry.n_head_kv * (geometry.head_dim_k + geometry.head_dim_v)
    return int(per_cell * n_cells * bpe)


def check_kv_type(geometry: Geometry, kv_type: str, *, flash_attention: bool | None) -> None:
    """Raise ValueError when llama.cpp could not build this cache (instead of a NULL context)."""
    if kv_type not in QUANTIZED_KV:
        return
    if flash_attention is False:
        raise ValueError(f"KV cache type {kv_type} needs flash attention, which is disabled")
    for dim in (geometry.head_dim_k, geometry.head_dim_v):
        if dim % BLOCK:
            raise ValueError(
                f"KV cache type {kv_type} needs a head size divisible by {BLOCK}; "
                f"this model has {dim}"
            )


def model_memory_bytes(weights_bytes: int, geometry: Geometry, n_cells: int, kv_type: str) -> int:
    """Weights plus KV cache: what /api/ps reports as ``size``."""
    return weights_bytes + kv_cache_bytes(geometry, n_cells, kv_type)
