"""What the engine is asked to do: typed parameters, produced by the wire schemas' ``to_params``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from server.engine.llama_backend import SamplerConfig

DoneReason = Literal["stop", "length", "load", "unload"]

# num_predict = -1 ("until the model stops") is bounded so a model that never emits EOS cannot
# generate forever while sliding its window: Ollama once capped it at 10 x num_ctx (PR #3918).
UNBOUNDED_PREDICT_FACTOR = 10


@dataclass(frozen=True)
class LoadParams:
    """Load-time options: a request asking for different ones reloads the model."""

    num_ctx: int
    num_batch: int
    num_thread: int
    num_parallel: int
    kv_cache_type: str = "f16"
    flash_attention: bool | None = None


@dataclass(frozen=True)
class GenerationParams:
    """One generation: sampling, limits, stop strings and context handling."""

    sampling: SamplerConfig = field(default_factory=SamplerConfig)
    num_predict: int = -1
    stop: tuple[str, ...] = ()
    num_keep: int = 4
    truncate: bool = True
    shift: bool = True

    def max_tokens(self, num_ctx: int) -> int:
        """The hard cap on generated tokens."""
        cap = UNBOUNDED_PREDICT_FACTOR * num_ctx
        return cap if self.num_predict < 0 else min(self.num_predict, cap)


@dataclass(frozen=True)
class Stats:
    """Counts and durations (ns) reported on the final chunk."""

    prompt_tokens: int = 0
    prompt_eval_count: int = 0
    cached_tokens: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    context_shifts: int = 0
    truncated_tokens: int = 0


@dataclass(frozen=True)
class Chunk:
    """A piece of a response streamed from the engine thread to the event loop."""

    text: str = ""
    done: bool = False
    done_reason: DoneReason | None = None
    error: str | None = None
    stats: Stats | None = None
    output_tokens: tuple[int, ...] = ()
