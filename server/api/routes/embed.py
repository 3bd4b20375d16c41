"""POST /api/embed and the legacy POST /api/embeddings."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.api.deps import ServiceDep
from server.api.embeddings import embed_texts
from server.api.ollama_types import Options, keep_alive_value
from server.api.streaming import parse_body

router = APIRouter()


class EmbedRequest(BaseModel):
    """POST /api/embed."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field("", max_length=512)
    input: str | list[str] = Field(default_factory=list)
    truncate: bool = True
    dimensions: int | None = Field(None, ge=1, le=1 << 20)
    keep_alive: str | float | None = None
    options: Options | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _input_type(cls, value: Any) -> Any:
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            return value
        raise ValueError("invalid input type")


class EmbeddingsRequest(BaseModel):
    """POST /api/embeddings (legacy)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field("", max_length=512)
    prompt: str = ""
    keep_alive: str | float | None = None
    options: Options | None = None


@router.post("/api/embed")
async def embed(request: Request, service: ServiceDep) -> dict[str, Any]:
    """L2-normalised embeddings for one or more inputs."""
    started = time.perf_counter_ns()
    body = await parse_body(request, EmbedRequest)
    inputs = [body.input] if isinstance(body.input, str) else body.input
    keep = keep_alive_value(body.keep_alive, service.defaults.keep_alive)
    vectors, tokens = await embed_texts(
        service,
        body.model,
        inputs,
        truncate=body.truncate,
        dimensions=body.dimensions,
        keep_alive=keep,
        options=body.options,
    )
    return {
        "model": body.model,
        "embeddings": vectors,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
        "prompt_eval_count": tokens,
    }


@router.post("/api/embeddings")
async def embeddings(request: Request, service: ServiceDep) -> dict[str, list[float]]:
    """The legacy single-prompt endpoint (vectors not normalised)."""
    body = await parse_body(request, EmbeddingsRequest)
    keep = keep_alive_value(body.keep_alive, service.defaults.keep_alive)
    if not body.prompt:
        await embed_texts(
            service,
            body.model,
            [],
            truncate=True,
            dimensions=None,
            keep_alive=keep,
            options=body.options,
        )
        return {"embedding": []}
    vectors, _ = await embed_texts(
        service,
        body.model,
        [body.prompt],
        truncate=True,
        dimensions=None,
        keep_alive=keep,
        options=body.options,
        normalize=False,
    )
    return {"embedding": vectors[0]}
