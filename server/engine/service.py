"""From a resolved request to engine chunks: options, leases, prompts, truncation, streaming.

Routes call :class:`InferenceService`; it resolves names through the store, holds a lease on the
model for the whole request, renders and tokenizes the prompt (dropping old chat turns when the
window is too small, Ollama's way), submits the request to the runner and turns the runner's
thread-side chunks into an async iterator. Leaving the iterator early cancels the request: the
runner frees its slot at its next step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from models.errors import ModelNotFound as StoreModelNotFound
from models.local import LocalModel
from models.names import InvalidModelName, ModelName
from models.store import ModelStore
from server.engine.params import Chunk, GenerationParams, LoadParams
from server.engine.runner import Runner
from server.engine.scheduler import Lease, Scheduler
from server.engine.slots import EngineRequest
from server.engine.templates import (
    ChatMessage,
    ChatTemplate,
    RenderInput,
    TemplateRenderError,
    load_template,
)
from server.engine.text import truncate_tokens
from server.errors import ContextLengthExceeded, InvalidRequest, ModelNotFound, ServerError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineDefaults:
    """Server-wide defaults that requests and model params override."""

    num_ctx: int
    num_batch: int
    num_thread: int
    num_parallel: int
    kv_cache_type: str
    flash_attention: bool | None
    keep_alive: float | None


@dataclass(frozen=True)
class PreparedPrompt:
    """A tokenized prompt that fits the window."""

    tokens: list[int]
    truncated_tokens: int = 0
    dropped_messages: int = 0


class InferenceService:
    """Model resolution, prompt preparation and streaming on top of the scheduler."""

    def __init__(self, store: ModelStore, scheduler: Scheduler, defaults: EngineDefaults) -> None:
        self.store = store
        self.scheduler = scheduler
        self.defaults = defaults
        self._templates: dict[str, ChatTemplate] = {}

    # -- models --------------------------------------------------------------------------------
    def resolve(self, name: str) -> LocalModel:
        """Find a model in the store (case-insensitive); 400 on a bad name, 404 when missing."""
        try:
            parsed = ModelName.parse(name)
        except InvalidModelName as exc:
            raise InvalidRequest(str(exc)) from None
        try:
            return self.store.resolve(parsed)
        except StoreModelNotFound:
            raise ModelNotFound(f"model '{name}' not found") from None

    def load_params(self, options: dict[str, Any]) -> LoadParams:
        """Load-time options: a change reloads the model."""
        d = self.defaults
        return LoadParams(
            num_ctx=int(options.get("num_ctx", d.num_ctx)),
            num_batch=int(options.get("num_batch", d.num_batch)),
            num_thread=_threads(int(options.get("num_thread", 0)), d.num_thread),
            num_parallel=d.num_parallel,
            kv_cache_type=d.kv_cache_type,
            flash_attention=_flash(d.kv_cache_type, setting=d.flash_attention),
        )

    @asynccontextmanager
    async def lease(
        self, local: LocalModel, load: LoadParams, keep_alive: float | None
    ) -> AsyncIterator[Lease]:
        """Hold the model loaded for one request."""
        async with self.scheduler.lease(local, load, keep_alive) as lease:
            yield lease

    def template(self, local: LocalModel, runner: Runner) -> ChatTemplate:
        """The model's chat template (compiled once per manifest digest)."""
        cached = self._templates.get(local.digest)
        if cached is None:
            model = runner.model
            assert model is not None
            bos = model.detokenize([model.bos]) if model.bos >= 0 else ""
            eos = model.detokenize([model.eos]) if model.eos >= 0 else ""
            try:
                cached = load_template(local.template, model.chat_template(), bos=bos, eos=eos)
            except TemplateRenderError as exc:
                raise ServerError(str(exc)) from None
            self._templates[local.digest] = cached
        return cached

    # -- prompts -------------------------------------------------------------------------------
    def prepare_chat(
        self,
        runner: Runner,
        template: ChatTemplate,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        *,
        tools: Sequence[dict[str, Any]] = (),
        think: bool | None = None,
    ) -> PreparedPrompt:
        """Render and tokenize; drop the oldest turns (keeping system messages and the last)."""
        limit = runner.n_ctx_slot - 1
        msgs = list(messages)
        dropped = 0
        while True:
            text = _render(template, RenderInput(msgs, tools, think=think))
            tokens = runner.tokenize(text, add_special=True)
            if len(tokens) <= limit or not params.truncate:
                break
            victim = next(
                (i for i, m in enumerate(msgs[:-1]) if m.role != "system"),
                None,
            )
            if victim is None:
                break
            del msgs[victim]
            dropped += 1
        if dropped:
            logger.info("dropped %d old messages to fit num_ctx=%d", dropped, runner.n_ctx_slot)
        return self._fit(tokens, runner, params, dropped)

    def prepare_tokens(
        self, runner: Runner, tokens: list[int], params: GenerationParams
    ) -> PreparedPrompt:
        """A raw (or already rendered) prompt: keep ``num_keep`` tokens and the tail that fits."""
        return self._fit(tokens, runner, params, 0)

    def _fit(
        self, tokens: list[int], runner: Runner, params: GenerationParams, dropped: int
    ) -> PreparedPrompt:
        if not tokens:
            raise InvalidRequest("the prompt is empty after templating")
        assert runner.model is not None
        n_vocab = runner.model.n_vocab
        if any(t < 0 or t >= n_vocab for t in tokens):
            # e.g. a client-supplied ``context``: llama.cpp must never see an invalid id.
            raise InvalidRequest(f"token ids must be between 0 and {n_vocab - 1}")
        n_ctx = runner.n_ctx_slot
        if len(tokens) < n_ctx:
            return PreparedPrompt(tokens, 0, dropped)
        if not params.truncate:
            raise ContextLengthExceeded(
                f"the prompt is {len(tokens)} tokens, longer than the context length "
                f"num_ctx={n_ctx}; shorten the prompt or raise num_ctx (truncate is false)"
            )
        kept = truncate_tokens(tokens, n_ctx, params.num_keep)
        logger.info("truncated prompt from %d to %d tokens", len(tokens), len(kept))
        return PreparedPrompt(kept, len(tokens) - len(kept), dropped)

    # -- streaming -----------------------------------------------------------------------------
    async def stream(
        self, runner: Runner, prompt: PreparedPrompt, params: GenerationParams
    ) -> AsyncIterator[Chunk]:
        """Run one generation; chunks arrive as the engine thread produces them."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Chunk] = asyncio.Queue()

        def sink(chunk: Chunk) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        req = EngineRequest(prompt.tokens, params, sink, truncated_tokens=prompt.truncated_tokens)
        runner.submit(req)
        finished = False
        try:
            while True:
                chunk = await queue.get()
                if chunk.done:
                    finished = True
                yield chunk
                if chunk.done:
                    return
        finally:
            if not finished:
                runner.cancel(req)


def _render(template: ChatTemplate, data: RenderInput) -> str:
    try:
        return template.render(data)
    except TemplateRenderError as exc:
        raise InvalidRequest(str(exc)) from None


def _threads(requested: int, default: int) -> int:
    # llama.cpp threads must never exceed the cores: oversubscribed it slows down tenfold.
    return min(requested, default) if requested > 0 else default


def _flash(kv_type: str, *, setting: bool | None) -> bool | None:
    # A quantized V cache needs flash attention; f16 leaves it to llama.cpp (auto).
    if kv_type != "f16":
        return True
    return setting
