"""POST /api/pull and POST /api/push: models from and to an OCI registry, with progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from models.registry import Progress, RegistryOptions, pull_model, push_model
from server.api.create import parse_name
from server.api.deps import StoreDep
from server.api.jobs import Emit, job_events
from server.api.manage_types import ProgressResponse, PullRequest, PushRequest
from server.api.streaming import parse_body, respond

router = APIRouter()


def _reporter(emit: Emit) -> Callable[[Progress], None]:
    def report(p: Progress) -> None:
        line = ProgressResponse(
            status=p.status, digest=p.digest, total=p.total, completed=p.completed
        )
        emit(line.event())

    return report


def _last(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1]  # stream: false answers with the outcome only


@router.post("/api/pull")
async def pull(request: Request, store: StoreDep) -> Response:
    """Download a model from its registry (``https`` unless ``insecure``)."""
    body = await parse_body(request, PullRequest)
    name = parse_name(body.model_name())
    options = RegistryOptions(insecure=body.insecure)

    def job(emit: Emit, cancel: threading.Event) -> None:
        pull_model(store, name, options=options, progress=_reporter(emit), cancel=cancel)

    return await respond(request, job_events(job, name="pull"), stream=body.stream, merge=_last)


@router.post("/api/push")
async def push(request: Request, store: StoreDep) -> Response:
    """Upload a model to the registry its name points at."""
    body = await parse_body(request, PushRequest)
    name = parse_name(body.model_name())
    options = RegistryOptions(insecure=body.insecure)

    def job(emit: Emit, cancel: threading.Event) -> None:
        push_model(store, name, options=options, progress=_reporter(emit), cancel=cancel)

    return await respond(request, job_events(job, name="push"), stream=body.stream, merge=_last)
