"""/, /api/version, /health (liveness) and /ready (readiness)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from server import __version__
from server.api.deps import SchedulerDep, StoreDep

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], response_class=PlainTextResponse)
async def root() -> str:
    """Ollama's de-facto health check."""
    return "Ollama is running"


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version() -> dict[str, str]:
    """The server version."""
    return {"version": __version__}


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(scheduler: SchedulerDep, store: StoreDep) -> JSONResponse:
    """Readiness: engine threads alive and the store readable."""
    if not scheduler.engines_alive():
        return JSONResponse(
            {"status": "unavailable", "reason": "an engine thread has stopped"}, 503
        )
    try:
        store.list_models()
    except OSError as exc:
        return JSONResponse(
            {"status": "unavailable", "reason": f"store unreadable: {exc.strerror}"}, 503
        )
    return JSONResponse({"status": "ready"})
