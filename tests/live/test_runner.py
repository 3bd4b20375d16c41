"""The runner on its own: per-slot sampler state, exact numerics under identical batches."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest

from models.defaults import default_gguf_path
from server.engine.llama_backend import SamplerConfig
from server.engine.params import Chunk, GenerationParams, LoadParams
from server.engine.runner import Runner
from server.engine.slots import EngineRequest, SlotState
from tests.conftest import THREADS

PROMPT = "<|im_start|>user\nTell me a story about a dragon.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    r = Runner("smol", default_gguf_path(), LoadParams(512, 512, THREADS, 4))
    r.start().result(timeout=120)
    yield r
    r.stop()


def _run_together(runner: Runner, configs: list[SamplerConfig], n: int = 12) -> list[str]:
    """Submit all requests before the engine thread can admit any: one deterministic batch."""
    tokens = runner.tokenize(PROMPT)
    queues: list[queue.Queue[Chunk]] = []
    with runner._cond:  # the engine thread waits on this lock: admission happens after all
        for cfg in configs:
            q: queue.Queue[Chunk] = queue.Queue()
            runner.submit(EngineRequest(list(tokens), GenerationParams(cfg, num_predict=n), q.put))
            queues.append(q)
    out = []
    for q in queues:
        text = ""
        while True:
            chunk = q.get(timeout=120)
            assert chunk.error is None
            text += chunk.text
            if chunk.done:
                break
        out.append(text)
    return out


def _clear_cache(runner: Runner) -> None:
    # Make the next run start cold, exactly like the first (the engine is idle here).
    assert all(s.state is SlotState.IDLE for s in runner.slot_states())
    assert runner._ctx is not None
    runner._ctx.clear()
    for slot in runner._slots:
        slot.cached.clear()


def test_seed_and_temperature_hold_per_slot(runner: Runner) -> None:
    configs = [
        SamplerConfig(temperature=0.9, seed=42),
        SamplerConfig(temperature=0.0),
        SamplerConfig(temperature=0.9, seed=7),
        SamplerConfig(temperature=1.5, seed=42, top_k=0, top_p=1.0),
    ]
    _clear_cache(runner)
    first = _run_together(runner, configs)
    _clear_cache(runner)
    second = _run_together(runner, configs)
    # Same batch, same seeds: the same text in every slot (each slot owns its RNG).
    assert first == second
    # Different seeds or settings in neighbouring slots give different text.
    assert len(set(first)) == len(first)
