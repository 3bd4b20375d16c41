"""Embeddings for /api/embed, /api/embeddings and /v1/embeddings.

The inputs of one request are embedded as separate sequences of shared batches on the model's
embedding context (one decode per group of inputs, not one call per text).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from server.api.ollama_types import Options, merge_options
from server.engine.runner import EmbeddingUnsupported, EmbedJob
from server.engine.service import InferenceService
from server.errors import CapabilityMissing, InvalidRequest, ServerError

MAX_INPUTS = 2048


async def embed_texts(
    service: InferenceService,
    model: str,
    inputs: list[str],
    *,
    truncate: bool,
    dimensions: int | None,
    keep_alive: float | None,
    options: Options | None,
    normalize: bool = True,
) -> tuple[list[list[float]], int]:
    """Embed ``inputs``; returns the vectors and the number of prompt tokens evaluated."""
    if len(inputs) > MAX_INPUTS:
        raise InvalidRequest(f"too many inputs: at most {MAX_INPUTS} per request")
    local = service.resolve(model)
    opts = merge_options(local.params, options)
    async with service.lease(local, service.load_params(opts), keep_alive) as lease:
        if not inputs:
            return [], 0
        runner = lease.runner
        limit = runner.embed_limit
        batches: list[list[int]] = []
        for text in inputs:
            tokens = runner.tokenize(text, add_special=True)
            if len(tokens) > limit:
                if not truncate:
                    raise InvalidRequest("the input length exceeds the context length")
                tokens = tokens[:limit]
            if not tokens:
                raise InvalidRequest("an input is empty")
            batches.append(tokens)
        job = EmbedJob(batches)
        try:
            vectors = await asyncio.wrap_future(runner.embed(job))
        except asyncio.CancelledError:
            job.cancelled = True
            raise
        except EmbeddingUnsupported as exc:
            raise CapabilityMissing(str(exc)) from None
        except RuntimeError as exc:
            raise ServerError(f"embedding failed: {exc}") from None
    out = [_shape(v, dimensions, normalize=normalize) for v in vectors]
    return out, sum(len(t) for t in batches)


def _shape(vector: np.ndarray[Any, Any], dimensions: int | None, *, normalize: bool) -> list[float]:
    if dimensions is not None:
        if not 0 < dimensions <= vector.shape[0]:
            raise InvalidRequest(f"dimensions must be between 1 and {vector.shape[0]}")
        vector = vector[:dimensions]
    if normalize:
        norm = float(np.linalg.norm(vector))
        if norm > 0:
            vector = vector / norm
    return [float(x) for x in vector]
