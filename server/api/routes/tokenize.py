"""POST /api/tokenize and POST /api/detokenize (ollama#3582): the model's own vocabulary.

Beyond Ollama. The model is loaded (or kept) with the same load options as a generation, so a
following request reuses it. Special tokens in the text are parsed as special tokens;
``add_special`` adds the model's BOS like a prompt would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import ServiceDep
from server.api.ollama_types import Options, keep_alive_value, merge_options
from server.api.streaming import parse_body
from server.engine.llama_backend import LlamaModel
from server.engine.service import InferenceService
from server.errors import InvalidRequest

router = APIRouter()
MAX_TOKENS = 1 << 20


class _TokenRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("", max_length=512, description="Model name.")
    keep_alive: str | float | None = Field(None, description="How long to keep the model loaded.")
    options: Options | None = Field(None, description="Load options (num_ctx, ...).")


class TokenizeRequest(_TokenRequest):
    """POST /api/tokenize."""

    content: str = Field(..., description="The text to tokenize.")
    add_special: bool = Field(False, description="Add BOS/EOS as the model does for a prompt.")


class DetokenizeRequest(_TokenRequest):
    """POST /api/detokenize."""

    tokens: list[Annotated[int, Field(strict=True)]] = Field(..., max_length=MAX_TOKENS)


@asynccontextmanager
async def _vocabulary(service: InferenceService, req: _TokenRequest) -> AsyncIterator[LlamaModel]:
    """Hold the model loaded (with the request's load options) and yield its vocabulary."""
    if not req.model:
        raise InvalidRequest("model is required")
    local = service.resolve(req.model)
    load = service.load_params(merge_options(local.params, req.options))
    keep = keep_alive_value(req.keep_alive, service.defaults.keep_alive)
    async with service.lease(local, load, keep) as lease:
        model = lease.runner.model
        assert model is not None
        yield model


@router.post("/api/tokenize")
async def tokenize(request: Request, service: ServiceDep) -> dict[str, list[int]]:
    """Text to token ids."""
    body = await parse_body(request, TokenizeRequest)
    async with _vocabulary(service, body) as model:
        tokens = await asyncio.to_thread(model.tokenize, body.content, add_special=body.add_special)
        return {"tokens": tokens}


@router.post("/api/detokenize")
async def detokenize(request: Request, service: ServiceDep) -> dict[str, str]:
    """Token ids to text; an id outside the vocabulary is a 400."""
    body = await parse_body(request, DetokenizeRequest)
    async with _vocabulary(service, body) as model:
        bad = next((t for t in body.tokens if not 0 <= t < model.n_vocab), None)
        if bad is not None:
            raise InvalidRequest(
                f"invalid token id {bad}: the vocabulary has {model.n_vocab} tokens "
                f"(0 to {model.n_vocab - 1})"
            )
        return {"content": await asyncio.to_thread(model.detokenize, body.tokens)}
