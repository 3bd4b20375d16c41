"""/, /api/version, /health (liveness) and /ready (readiness)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from server import __version__
from server.api.deps import SchedulerDep, StoreDep
from server.engine.scheduler import Scheduler

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
    """Readiness: every engine thread alive and the store readable; 503 with the reason if not."""
    models = _engines(scheduler)
    stopped = [m["name"] for m in models if m["engine"] != "running"]
    reasons = [f"engine thread stopped for {', '.join(stopped)}"] if stopped else []
    problem = await asyncio.to_thread(store_problem, store.root)
    if problem is not None:
        reasons.append(problem)
    if reasons:
        return JSONResponse(
            {"status": "unavailable", "reason": "; ".join(reasons), "models": models}, 503
        )
    return JSONResponse({"status": "ready", "models": models})


def _engines(scheduler: Scheduler) -> list[dict[str, str]]:
    return [
        {"name": m.name, "engine": "running" if m.runner.alive else "stopped"}
        for m in scheduler.loaded()
    ]


def store_problem(root: Path) -> str | None:
    """Why the store cannot be read, or None. A missing root is fine (made on first write)."""
    try:
        if not root.exists():
            return None
        if not root.is_dir():
            return f"store root {root} is not a directory"
        with os.scandir(root):
            pass
        manifests = root / "manifests"
        if manifests.exists():
            with os.scandir(manifests):
                pass
        if not os.access(root, os.R_OK | os.X_OK):
            return f"store root {root} is not readable"
    except OSError as exc:
        return f"store unreadable: {exc.strerror or exc}"
    return None
