"""Per-sequence state of the batching engine, and the request object that crosses threads."""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.engine.llama_backend import LlamaModel, SamplerChain
from server.engine.params import Chunk, DoneReason, GenerationParams, Stats
from server.engine.text import IncrementalDecoder, StopMatcher

logger = logging.getLogger(__name__)
_ids = itertools.count(1)


class SlotState(enum.Enum):
    """What a slot is doing."""

    IDLE = "idle"
    PREFILL = "prefill"
    GENERATING = "generating"


@dataclass(eq=False)
class EngineRequest:
    """A generation request handed from the event loop to a runner's engine thread.

    ``sink`` is called on the engine thread for every chunk; it must be cheap and thread-safe
    (the API layer passes ``loop.call_soon_threadsafe``). ``cancelled`` is written by the event
    loop and read by the engine thread at every step.
    """

    prompt: list[int]
    params: GenerationParams
    sink: Callable[[Chunk], None]
    id: int = field(default_factory=lambda: next(_ids))
    cancelled: bool = False
    enqueued_ns: int = field(default_factory=time.perf_counter_ns)
    truncated_tokens: int = 0

    def emit_error(self, message: str) -> None:
        """Deliver a final error chunk."""
        self.emit(Chunk(done=True, error=message))

    def emit(self, chunk: Chunk) -> None:
        """Deliver a chunk; a consumer that is gone cancels the request."""
        if self.cancelled:
            return
        try:
            self.sink(chunk)
        except RuntimeError:  # the event loop is closed
            self.cancelled = True


@dataclass(frozen=True)
class SlotInfo:
    """A snapshot of one slot, for /api/ps, metrics and tests."""

    seq: int
    state: SlotState
    cached_tokens: int
    request_id: int | None


class Slot:
    """One sequence of the shared llama context: its cached tokens and its current request."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.cached: list[int] = []  # tokens whose K/V are in the cache, position i = cached[i]
        self.state = SlotState.IDLE
        self.req: EngineRequest | None = None
        self.last_used = 0.0
        self._reset_request_state()

    def _reset_request_state(self) -> None:
        self.chain: SamplerChain | None = None
        self.decoder = IncrementalDecoder()
        self.stopper = StopMatcher(())
        self.output: list[int] = []
        self.last_token = -1
        self.max_tokens = 0
        self.cached_at_start = 0
        self.prefill_start_ns = 0
        self.first_token_ns = 0
        self.last_token_ns = 0
        self.shifts = 0

    def info(self) -> SlotInfo:
        """Snapshot for observers on other threads."""
        return SlotInfo(self.seq, self.state, len(self.cached), self.req.id if self.req else None)

    @property
    def prompt(self) -> list[int]:
        """The current request's prompt."""
        assert self.req is not None
        return self.req.prompt

    def start(self, req: EngineRequest, chain: SamplerChain, reused: int, max_tokens: int) -> None:
        """Take a request whose first ``reused`` prompt tokens are already cached."""
        self._reset_request_state()
        self.req = req
        self.chain = chain
        self.stopper = StopMatcher(req.params.stop)
        self.max_tokens = max_tokens
        self.cached_at_start = reused
        self.prefill_start_ns = time.perf_counter_ns()
        self.state = SlotState.PREFILL

    def on_token(self, model: LlamaModel, token: int) -> DoneReason | None:
        """Handle a sampled token; returns a done reason when the request is finished."""
        now = time.perf_counter_ns()
        if not self.first_token_ns:
            self.first_token_ns = now
            self.state = SlotState.GENERATING
        self.last_token_ns = now
        assert self.req is not None
        if model.is_eog(token):
            return "stop"
        self.output.append(token)
        self.last_token = token
        text, stopped = self.stopper.feed(self.decoder.feed(model.piece(token)))
        if text:
            self.req.emit(Chunk(text=text))
        if stopped:
            return "stop"
        if len(self.output) >= self.max_tokens:
            return "length"
        return None

    def finish(self, reason: DoneReason) -> tuple[EngineRequest, Chunk]:
        """Release the request; returns it with its final chunk (held-back text, stats, tokens).

        The caller emits the chunk once the slot is fully free, so a client that sees ``done``
        never finds its slot still busy.
        """
        req = self.req
        assert req is not None
        tail = ""
        if not self.stopper.stopped:
            # Ended without a stop string: release held-back text (a partial stop, a split char).
            tail, _ = self.stopper.feed(self.decoder.flush())
            tail += self.stopper.flush()
        first = self.first_token_ns or time.perf_counter_ns()
        stats = Stats(
            prompt_tokens=len(req.prompt),
            prompt_eval_count=len(req.prompt) - self.cached_at_start,
            cached_tokens=self.cached_at_start,
            prompt_eval_duration=first - self.prefill_start_ns,
            eval_count=len(self.output),
            eval_duration=max(self.last_token_ns - first, 0),
            context_shifts=self.shifts,
            truncated_tokens=req.truncated_tokens,
        )
        final = Chunk(
            text=tail,
            done=True,
            done_reason=reason,
            stats=stats,
            output_tokens=tuple(self.output),
        )
        self.release()
        return req, final

    def fail(self, message: str) -> None:
        """End the request with an error chunk (after freeing the slot)."""
        req = self.req
        self.release()
        if req is not None:
            req.emit_error(message)

    def release(self) -> None:
        """Free the request and its sampler; the cached tokens stay as a prompt cache."""
        if self.chain is not None:
            self.chain.close()
        self.req = None
        self.state = SlotState.IDLE
        self.last_used = time.monotonic()
        self._reset_request_state()
