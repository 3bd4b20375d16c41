"""KV-cache memory: the formula against what llama.cpp allocates, and quantized caches in use."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest

from models.defaults import default_gguf_path
from server.engine.llama_backend import (
    ContextParams,
    LlamaContext,
    LlamaModel,
    last_kv_allocation_bytes,
)
from server.engine.memory import kv_cache_bytes
from server.settings import SettingsError, load_settings
from tests.conftest import DEFAULT_MODEL, THREADS, LiveServer, start_server


@pytest.fixture(scope="module")
def model() -> Iterator[LlamaModel]:
    m = LlamaModel(default_gguf_path())
    yield m
    m.close()


@pytest.mark.parametrize("kv_type", ["f16", "q8_0", "q4_0"])
@pytest.mark.parametrize(("n_ctx", "n_seq"), [(2048, 4), (1024, 2)])
def test_formula_matches_llama_cpp(model: LlamaModel, kv_type: str, n_ctx: int, n_seq: int) -> None:
    ctx = LlamaContext(
        model,
        ContextParams(
            n_ctx=n_ctx * n_seq, n_batch=512, n_seq_max=n_seq, n_threads=THREADS, kv_type=kv_type
        ),
    )
    try:
        allocated = last_kv_allocation_bytes()
        expected = kv_cache_bytes(model.geometry(), ctx.n_ctx, kv_type)
    finally:
        ctx.close()
    assert allocated is not None
    assert abs(allocated - expected) / allocated < 0.02
    # Quantized types really are smaller: q8_0 is 34/64 of f16, q4_0 is 18/64.
    f16 = kv_cache_bytes(model.geometry(), n_ctx * n_seq, "f16")
    ratio = {"f16": 1.0, "q8_0": 34 / 64, "q4_0": 18 / 64}[kv_type]
    assert kv_cache_bytes(model.geometry(), n_ctx * n_seq, kv_type) == pytest.approx(
        f16 * ratio, rel=1e-6
    )


def test_quantized_v_without_flash_attention_is_a_startup_error() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(kv_cache_type="q8_0", flash_attention=False)
    assert "flash attention" in str(err.value)


@pytest.fixture(scope="module")
def q8(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("q8"), kv_cache_type="q8_0", context_length=256, num_parallel=2
    )
    yield server
    server.stop()


def test_q8_cache_serves_slides_and_reports_its_size(q8: LiveServer, model: LlamaModel) -> None:
    client = ollama.Client(host=q8.url)
    r = client.generate(
        DEFAULT_MODEL,
        "1, 2, 3, 4, 5, 6, 7, 8,",
        raw=True,
        options={"temperature": 0, "num_predict": 300},
    )
    numbers = [int(x) for x in r.response.replace(",", " ").split() if x.isdigit()]
    assert numbers[:3] == [9, 10, 11]
    assert numbers == list(range(9, 9 + len(numbers)))  # coherent across a shift of a q8_0 cache
    (loaded,) = q8.scheduler().loaded()
    assert loaded.runner.counters.context_shifts >= 1
    geometry = model.geometry()
    kv = kv_cache_bytes(geometry, 256 * 2, "q8_0")
    ps = client.ps().models[0]
    assert ps.size == geometry.size_bytes + kv
    assert ps.context_length == 256
