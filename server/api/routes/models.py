"""GET /api/tags, POST /api/show, GET /api/ps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from models.gguf import GGUFFile, InvalidGGUF, read_gguf
from models.local import LocalModel
from models.manifest import ModelConfig
from models.modelfile import render_modelfile
from server.api.deps import SchedulerDep, ServiceDep, StoreDep
from server.api.ollama_types import (
    ListModelResponse,
    ModelDetails,
    ProcessModelResponse,
    ShowRequest,
)
from server.api.streaming import parse_body
from server.engine.templates import TemplateRenderError, load_template
from server.errors import InvalidRequest, ServerError

router = APIRouter()


def details(config: ModelConfig) -> ModelDetails:
    """``details`` from a model's config blob."""
    return ModelDetails(
        format=config.model_format or "gguf",
        family=config.model_family or "",
        families=config.model_families or None,
        parameter_size=config.model_type or "",
        quantization_level=config.file_type or "",
    )


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=64)
def gguf_header(path: Path, mtime_ns: int, *, verbose: bool) -> GGUFFile:
    """The model blob's header (cached per file version)."""
    return read_gguf(path, keep_array_len=-1 if verbose else 0)


def read_header(path: Path, *, verbose: bool = False) -> GGUFFile:
    """The GGUF header of a model blob, cached; a broken file is a 500 with the reason."""
    try:
        return gguf_header(path, path.stat().st_mtime_ns, verbose=verbose)
    except (InvalidGGUF, OSError) as exc:
        raise ServerError(f"invalid model file: {exc}") from None


def capabilities(local: LocalModel, header: GGUFFile) -> list[str]:
    """What the model can do, inferred from the GGUF and its template (as Ollama does)."""
    caps: list[str] = []
    if header.pooling_type is not None and header.pooling_type > 0:
        caps.append("embedding")
    else:
        caps.append("completion")
    try:
        template = load_template(local.template, header.chat_template, bos="", eos="")
    except TemplateRenderError:
        template = None
    if template is not None:
        caps += [c for c in ("tools", "insert", "thinking") if template.uses(_feature(c))]
    if local.projector_path is not None:
        caps.append("vision")
    return caps


def _feature(capability: str) -> str:
    return {"insert": "suffix"}.get(capability, capability)


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def list_models(store: StoreDep) -> dict[str, list[ListModelResponse]]:
    """Models in the store."""
    entries = await asyncio.to_thread(store.list_models)
    models = [
        ListModelResponse(
            name=e.name.display,
            model=e.name.display,
            modified_at=_iso(e.modified_at),
            size=e.size,
            digest=e.digest,
            details=details(e.config),
        )
        for e in sorted(entries, key=lambda e: e.modified_at, reverse=True)
    ]
    return {"models": models}


@router.post("/api/show")
async def show(request: Request, service: ServiceDep) -> dict[str, Any]:
    """Everything about one model."""
    body = await parse_body(request, ShowRequest)
    name = body.model or body.name
    if not name:
        raise InvalidRequest("model is required")
    local = await asyncio.to_thread(service.resolve, name)
    header = await asyncio.to_thread(read_header, local.model_path, verbose=body.verbose)
    info = details(local.config).model_dump()
    if header.context_length:
        info["context_length"] = header.context_length
    if header.embedding_length:
        info["embedding_length"] = header.embedding_length
    out: dict[str, Any] = {
        "license": "\n".join(local.license),
        "modelfile": render_modelfile(local),
        "parameters": _parameters_text(local.params),
        "template": local.template or header.chat_template or "",
        "system": local.system or "",
        "details": info,
        "model_info": header.model_info(verbose=body.verbose),
        "capabilities": capabilities(local, header),
        "modified_at": _iso(local.modified_at),
    }
    if local.messages:
        out["messages"] = local.messages
    return out


def _parameters_text(params: dict[str, object]) -> str:
    lines = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"{key:<30} {v!s}" if not isinstance(v, str) else f'{key:<30} "{v}"')
    return "\n".join(lines)


@router.get("/api/ps")
async def ps(scheduler: SchedulerDep) -> dict[str, list[ProcessModelResponse]]:
    """Loaded models."""
    out = []
    for m in scheduler.loaded():
        expires = m.expires_at
        if expires is None or m.leases:
            # In use or kept forever: Ollama shows a far-future time for "never".
            expires = datetime(2318, 1, 1, tzinfo=UTC).timestamp() if expires is None else expires
        out.append(
            ProcessModelResponse(
                name=m.name,
                model=m.name,
                size=m.size_bytes,
                digest=m.digest,
                details=details(m.config),
                expires_at=_iso(datetime.fromtimestamp(expires, UTC)),
                size_vram=0,
                context_length=m.load.num_ctx,
            )
        )
    return {"models": out}
