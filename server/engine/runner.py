"""One loaded model: its llama context, owned by ONE engine thread running a continuous batcher.

Each step of the engine thread builds one batch — the last sampled token of every generating
slot plus prompt chunks of prefilling slots, up to ``num_batch`` — decodes it once and samples
every slot with its own sampler chain. Requests beyond the free slots wait in arrival order.
Nothing else ever touches the context: the event loop only enqueues requests, flips cancel
flags and reads snapshots.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.llama_backend import (
    POOLING_NONE,
    POOLING_RANK,
    BackendError,
    Batch,
    ContextParams,
    LlamaContext,
    LlamaModel,
    SamplerChain,
)
from server.engine.params import LoadParams
from server.engine.slots import EngineRequest, Slot, SlotInfo, SlotState
from server.engine.text import common_prefix

logger = logging.getLogger(__name__)


EMBED_MAX_SEQS = 64


class EmbeddingUnsupported(ValueError):
    """The model has no pooling suitable for sentence embeddings."""


@dataclass(eq=False)
class EmbedJob:
    """Texts (tokenized) to embed as separate sequences of shared batches."""

    inputs: list[list[int]]
    future: concurrent.futures.Future[list[np.ndarray[Any, np.dtype[np.float32]]]] = field(
        default_factory=concurrent.futures.Future
    )
    results: list[np.ndarray[Any, np.dtype[np.float32]]] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class RunnerCounters:
    """Monotonic counters read by /metrics (written only by the engine thread)."""

    prompt_tokens_evaluated: int = 0
    prompt_tokens_cached: int = 0
    tokens_generated: int = 0
    context_shifts: int = 0
    decode_calls: int = 0
    embed_batches: int = 0
    requests_finished: dict[str, int] = field(default_factory=dict)


class Runner:
    """A loaded model with ``num_parallel`` slots batched on one llama context."""

    def __init__(self, name: str, model_path: Path, load: LoadParams) -> None:
        self.name = name
        self.model_path = model_path
        self.load_params = load
        self.n_ctx_slot = load.num_ctx
        self.counters = RunnerCounters()
        self.model: LlamaModel | None = None
        self.load_seconds = 0.0
        self.kv_bytes = 0
        self._ctx: LlamaContext | None = None
        self._batch: Batch | None = None
        self._slots = [Slot(i) for i in range(load.num_parallel)]
        self._pending: deque[EngineRequest] = deque()
        self._embed_jobs: deque[EmbedJob] = deque()
        self._embed_ctx: LlamaContext | None = None
        self._embed_batch: Batch | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=f"engine-{name}", daemon=True)

    # -- event-loop side ------------------------------------------------------------------------
    def start(self) -> concurrent.futures.Future[None]:
        """Start the engine thread; the future resolves once the model is loaded."""
        self._thread.start()
        return self._ready

    @property
    def alive(self) -> bool:
        """Whether the engine thread is running."""
        return self._thread.is_alive()

    def submit(self, req: EngineRequest) -> None:
        """Queue a request (tokenized, already within the window)."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("runner is stopping")
            self._pending.append(req)
            self._cond.notify()

    def embed(self, job: EmbedJob) -> concurrent.futures.Future[list[Any]]:
        """Queue an embedding job; its inputs must fit ``embed_limit`` tokens each."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("runner is stopping")
            self._embed_jobs.append(job)
            self._cond.notify()
        return job.future

    @property
    def embed_limit(self) -> int:
        """The longest input an embedding may have (tokens)."""
        assert self.model is not None
        return min(self.n_ctx_slot, self.model.n_ctx_train or self.n_ctx_slot)

    def cancel(self, req: EngineRequest) -> None:
        """Cancel a request: dropped from the queue now, or its slot freed at the next step."""
        req.cancelled = True
        with self._cond:
            with contextlib.suppress(ValueError):
                self._pending.remove(req)
            self._cond.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the engine thread (failing what is left) and free the model."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return len(self._pending)

    @property
    def active(self) -> int:
        """Slots busy with a request."""
        return sum(1 for s in self._slots if s.state is not SlotState.IDLE)

    def slot_states(self) -> list[SlotInfo]:
        """A snapshot of every slot."""
        return [s.info() for s in self._slots]

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """Tokenize with this model's vocabulary (thread-safe)."""
        assert self.model is not None
        return self.model.tokenize(text, add_special=add_special)

    # -- engine thread ------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._load()
        except BaseException as exc:
            self._ready.set_exception(exc)
            self._free()
            return
        self._ready.set_result(None)
        try:
            self._loop()
        except Exception:
            logger.exception("engine thread for %s crashed", self.name)
            for slot in self._slots:
                if slot.req is not None:
                    slot.fail("the engine failed while serving this request")
        finally:
            with self._cond:
                self._stopping = True
                left = list(self._pending)
                self._pending.clear()
            for req in left:
                req.emit_error("the model was unloaded before this request started")
            for job in self._embed_jobs:
                if not job.future.done():
                    job.future.set_exception(RuntimeError("the model was unloaded"))
            for slot in self._slots:
                if slot.req is not None:
                    slot.fail("the model was unloaded while serving this request")
            self._free()

    def _load(self) -> None:
        t0 = time.perf_counter()
        lp = self.load_params
        self.model = LlamaModel(self.model_path)
        self._ctx = LlamaContext(
            self.model,
            ContextParams(
                n_ctx=lp.num_ctx * lp.num_parallel,
                n_batch=lp.num_batch,
                n_seq_max=lp.num_parallel,
                n_threads=lp.num_thread,
                kv_type=lp.kv_cache_type,
                flash_attn=lp.flash_attention,
            ),
        )
        self._batch = Batch(max(lp.num_batch, lp.num_parallel))
        self.load_seconds = time.perf_counter() - t0

    def _free(self) -> None:
        if self._embed_batch is not None:
            self._embed_batch.close()
        if self._embed_ctx is not None:
            self._embed_ctx.close()
        self._embed_batch, self._embed_ctx = None, None
        if self._batch is not None:
            self._batch.close()
        if self._ctx is not None:
            self._ctx.close()
        if self.model is not None:
            self.model.close()
        self._batch, self._ctx, self.model = None, None, None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while (
                    not self._stopping
                    and not self._pending
                    and not self._embed_jobs
                    and self.active == 0
                ):
                    self._cond.wait()
                if self._stopping:
                    return
                admitted = self._take_admissible()
                job = self._embed_jobs[0] if self._embed_jobs else None
            if job is not None and self._embed_step(job):
                with self._cond:
                    self._embed_jobs.popleft()
            self._reap_cancelled()
            for req in admitted:
                self._admit(req)
            self._step()

    def _take_admissible(self) -> list[EngineRequest]:
        free = sum(1 for s in self._slots if s.state is SlotState.IDLE)
        out: list[EngineRequest] = []
        while self._pending and len(out) < free:
            req = self._pending.popleft()
            if not req.cancelled:
                out.append(req)
        return out

    def _reap_cancelled(self) -> None:
        for slot in self._slots:
            if slot.req is not None and slot.req.cancelled:
                self._count("cancelled")
                slot.release()

    def _admit(self, req: EngineRequest) -> None:
        """Put a request in the idle slot whose cache shares the longest prefix with it."""
        assert self.model is not None and self._ctx is not None
        idle = [s for s in self._slots if s.state is SlotState.IDLE]
        slot = max(idle, key=lambda s: (common_prefix(s.cached, req.prompt), -s.last_used))
        reuse = min(common_prefix(slot.cached, req.prompt), len(req.prompt) - 1)
        try:
            chain = SamplerChain(self.model, req.params.sampling)
        except BackendError as exc:
            req.emit_error(str(exc))
            return
        self._ctx.seq_rm(slot.seq, reuse, -1)
        del slot.cached[reuse:]
        slot.start(req, chain, reuse, req.params.max_tokens(self.n_ctx_slot))
        self.counters.prompt_tokens_cached += reuse

    def _step(self) -> None:
        assert self._batch is not None and self._ctx is not None and self.model is not None
        batch = self._batch
        batch.clear()
        outputs: list[tuple[Slot, int]] = []
        added: list[tuple[Slot, int]] = []
        for slot in self._slots:
            if slot.state is not SlotState.GENERATING:
                continue
            if len(slot.cached) + 1 > self.n_ctx_slot and not self._shift(slot):
                self._finish(slot, "length")
                continue
            idx = batch.add([slot.last_token], len(slot.cached), slot.seq, last_output=True)
            slot.cached.append(slot.last_token)
            outputs.append((slot, idx))
            added.append((slot, 1))
        # Prompt chunks fill what is left of the batch, oldest request first (chunked prefill:
        # a long prompt never stalls the streams that are already generating).
        prefilling = [s for s in self._slots if s.state is SlotState.PREFILL]
        for slot in sorted(prefilling, key=lambda s: s.prefill_start_ns):
            if batch.free == 0:
                break
            todo = slot.prompt[len(slot.cached) :]
            take = todo[: batch.free]
            last = len(take) == len(todo)
            idx = batch.add(take, len(slot.cached), slot.seq, last_output=last)
            slot.cached.extend(take)
            added.append((slot, len(take)))
            self.counters.prompt_tokens_evaluated += len(take)
            if last:
                outputs.append((slot, idx))
        if batch.n_tokens == 0:
            return
        rc = self._ctx.decode(batch)
        self.counters.decode_calls += 1
        if rc != 0:
            self._decode_failed(rc, added)
            return
        for slot, idx in outputs:
            if slot.req is None or slot.chain is None:
                continue
            token = slot.chain.sample(self._ctx, idx)
            emitted = len(slot.output)
            reason = slot.on_token(self.model, token)
            self.counters.tokens_generated += len(slot.output) - emitted
            if reason is not None:
                self._finish(slot, reason)
            elif slot.req.cancelled:
                self._count("cancelled")
                slot.release()

    def _count(self, outcome: str) -> None:
        finished = self.counters.requests_finished
        finished[outcome] = finished.get(outcome, 0) + 1

    def _finish(self, slot: Slot, reason: str) -> None:
        self._count(reason)
        shifted = slot.shifts > 0
        req, final = slot.finish(reason)  # type: ignore[arg-type]
        if shifted and self._ctx is not None:
            # After a shift the cached K/V no longer match a plain prefix: drop them.
            self._ctx.seq_rm(slot.seq, 0, -1)
            slot.cached.clear()
        req.emit(final)

    def _shift(self, slot: Slot) -> bool:
        """Slide the window: keep ``num_keep`` tokens, discard half of the rest."""
        assert self._ctx is not None and slot.req is not None and self.model is not None
        if not (slot.req.params.shift and self._ctx.can_shift):
            return False
        n_past = len(slot.cached)
        n_keep = slot.req.params.num_keep
        n_keep = len(slot.req.prompt) if n_keep < 0 else n_keep
        n_keep = min(n_keep + (1 if self.model.add_bos else 0), self.n_ctx_slot - 4)
        n_discard = (n_past - n_keep) // 2
        if n_discard <= 0:
            return False
        self._ctx.seq_rm(slot.seq, n_keep, n_keep + n_discard)
        self._ctx.seq_add(slot.seq, n_keep + n_discard, n_past, -n_discard)
        del slot.cached[n_keep : n_keep + n_discard]
        slot.shifts += 1
        self.counters.context_shifts += 1
        logger.debug("slot %d shifted: kept %d, discarded %d", slot.seq, n_keep, n_discard)
        return True

    def _decode_failed(self, rc: int, added: list[tuple[Slot, int]]) -> None:
        assert self._ctx is not None
        logger.error("llama_decode returned %d for %s", rc, self.name)
        for slot, n in added:
            if rc == 1:
                # No KV slot: the batch was rolled back, so the cache is as before it.
                del slot.cached[len(slot.cached) - n :]
            else:
                self._ctx.seq_rm(slot.seq, 0, -1)
                slot.cached.clear()
            slot.fail(f"the model failed to process this request (llama_decode code {rc})")

    # -- embeddings (engine thread) ------------------------------------------------------------
    def _embed_step(self, job: EmbedJob) -> bool:
        """Embed the next group of a job's inputs in one batch; True when the job is complete."""
        try:
            if job.cancelled:
                raise RuntimeError("cancelled")
            ctx, batch = self._embedding_context()
            ctx.clear()
            batch.clear()
            group = 0
            start = len(job.results)
            for tokens in job.inputs[start:]:
                if group == ctx.n_seq_max or len(tokens) > batch.free:
                    break
                batch.add(tokens, 0, group, last_output=True)
                group += 1
            rc = ctx.decode(batch)
            self.counters.embed_batches += 1
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc} while embedding")
            assert self.model is not None
            n_embd = self.model.n_embd_out
            job.results.extend(ctx.embedding_seq(seq, n_embd) for seq in range(group))
            self.counters.prompt_tokens_evaluated += batch.n_tokens
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(exc)
            return True
        if len(job.results) == len(job.inputs):
            job.future.set_result(job.results)
            return True
        return False

    def _embedding_context(self) -> tuple[LlamaContext, Batch]:
        """A second context on the same weights, made for pooled embeddings (created once)."""
        if self._embed_ctx is None or self._embed_batch is None:
            assert self.model is not None
            limit = self.embed_limit
            ctx = LlamaContext(
                self.model,
                ContextParams(
                    n_ctx=limit,
                    n_batch=limit,
                    n_ubatch=limit,
                    n_seq_max=EMBED_MAX_SEQS,
                    n_threads=self.load_params.num_thread,
                    embeddings=True,
                ),
            )
            if ctx.pooling in (POOLING_NONE, POOLING_RANK):
                ctx.close()
                raise EmbeddingUnsupported(
                    f"{self.name} does not support embeddings (its GGUF sets no pooling type)"
                )
            self._embed_ctx, self._embed_batch = ctx, Batch(limit)
        return self._embed_ctx, self._embed_batch
