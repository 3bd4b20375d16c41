"""POST /api/create, HEAD/POST /api/blobs/{digest}, POST /api/copy, DELETE /api/delete."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi import APIRouter, Request, Response

from models.blobs import BlobWriter
from models.digest import parse_digest
from models.errors import BlobTooLarge, DigestMismatch, InvalidDigest, ModelsError
from models.errors import ModelNotFound as StoreModelNotFound
from models.manifest import MAX_LAYER_SIZE
from models.names import ModelName
from models.store import ModelStore
from server.api.create import parse_name, plan_create, run_create
from server.api.deps import SchedulerDep, StoreDep
from server.api.jobs import Emit, NotFound, PayloadTooLarge, job_events, translate
from server.api.manage_types import CopyRequest, CreateRequest, DeleteRequest
from server.api.streaming import parse_body, respond
from server.engine.scheduler import model_key
from server.errors import InvalidRequest, ModelNotFound, ServerError
from server.settings import Settings

router = APIRouter()

MAX_BLOB_BYTES = MAX_LAYER_SIZE
_WRITE_CHUNK = 1 << 20


def _digest(text: str) -> str:
    try:
        return parse_digest(text)
    except InvalidDigest:
        raise InvalidRequest("invalid digest format") from None


def _last(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1]


@router.post("/api/create")
async def create(request: Request, store: StoreDep) -> Response:
    """Create a model from a stored model or uploaded GGUF blobs (progress NDJSON)."""
    body = await parse_body(request, CreateRequest)
    try:
        plan = await asyncio.to_thread(plan_create, store, body)
    except ServerError:
        raise
    except Exception as exc:  # store, GGUF, template and quantize errors: 400/404
        raise translate(exc) from None
    settings: Settings = request.state.settings
    threads = settings.engine.threads

    def job(emit: Emit, cancel: threading.Event) -> None:
        run_create(store, plan, threads=threads, emit=emit)

    return await respond(request, job_events(job, name="create"), stream=body.stream, merge=_last)


@router.head("/api/blobs/{digest:path}")
async def blob_exists(digest: str, store: StoreDep) -> Response:
    """200 when the blob is in the store, else 404."""
    canonical = _digest(digest)
    if not await asyncio.to_thread(store.has_blob, canonical):
        raise NotFound(f'blob "{canonical}" not found')
    return Response(status_code=200)


@router.post("/api/blobs/{digest:path}")
async def create_blob(digest: str, request: Request, store: StoreDep) -> Response:
    """Store the request body as a blob if it hashes to ``digest`` (201; 400 on mismatch)."""
    canonical = _digest(digest)
    if await asyncio.to_thread(store.has_blob, canonical):
        return Response(status_code=200)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BLOB_BYTES:
        raise PayloadTooLarge(f"blob exceeds the limit of {MAX_BLOB_BYTES} bytes")
    writer = await asyncio.to_thread(store.open_blob_writer, canonical, MAX_BLOB_BYTES)
    committed = False
    try:
        await _receive(request, writer)
        await asyncio.to_thread(writer.commit)
        committed = True
    except DigestMismatch as exc:
        raise InvalidRequest(str(exc)) from None
    except BlobTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    finally:
        if not committed:  # a mismatch, a disconnect: the temp file goes
            await asyncio.to_thread(writer.abort)
    return Response(status_code=201)


async def _receive(request: Request, writer: BlobWriter) -> None:
    # Disk writes happen in a thread, a megabyte at a time.
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) >= _WRITE_CHUNK:
            await asyncio.to_thread(writer.write, bytes(buf))
            buf.clear()
    if buf:
        await asyncio.to_thread(writer.write, bytes(buf))


@router.post("/api/copy")
async def copy(request: Request, store: StoreDep) -> Response:
    """Give a model a second name; the blobs are shared."""
    body = await parse_body(request, CopyRequest)
    source = parse_name(body.source, "source")
    destination = parse_name(body.destination, "destination")
    try:
        await asyncio.to_thread(store.copy, source, destination)
    except StoreModelNotFound:
        raise ModelNotFound(f'model "{body.source}" not found') from None
    except ModelsError as exc:
        raise translate(exc) from None
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request, store: StoreDep, scheduler: SchedulerDep) -> Response:
    """Unload the model if it is loaded, remove its manifest and its now unused blobs."""
    body = await parse_body(request, DeleteRequest)
    text = body.model_name()
    name = parse_name(text)
    found = await asyncio.to_thread(store.find, name)
    if found is None:
        raise ModelNotFound(f"model '{text}' not found")
    await scheduler.unload(await asyncio.to_thread(_key, store, found))
    try:
        await asyncio.to_thread(store.delete, found)
    except StoreModelNotFound:
        raise ModelNotFound(f"model '{text}' not found") from None
    except ModelsError as exc:
        raise translate(exc) from None
    return Response(status_code=200)


def _key(store: ModelStore, name: ModelName) -> str:
    try:
        return model_key(store.resolve(name))
    except ModelsError:  # a broken manifest still gets deleted
        return "/".join(name.key)
