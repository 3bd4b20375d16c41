"""FastAPI dependencies: typed access to the lifespan state (no globals)."""

from __future__ import annotations

from typing import Annotated, TypedDict

from fastapi import Depends, Request

from models.store import ModelStore
from server.engine.scheduler import Scheduler
from server.engine.service import InferenceService
from server.metrics import Metrics
from server.settings import Settings


class AppState(TypedDict):
    """What the lifespan yields; handlers read it from ``request.state``."""

    settings: Settings
    store: ModelStore
    scheduler: Scheduler
    service: InferenceService
    metrics: Metrics


def get_service(request: Request) -> InferenceService:
    """The inference service."""
    service: InferenceService = request.state.service
    return service


def get_store(request: Request) -> ModelStore:
    """The model store."""
    store: ModelStore = request.state.store
    return store


def get_scheduler(request: Request) -> Scheduler:
    """The scheduler."""
    scheduler: Scheduler = request.state.scheduler
    return scheduler


def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.state.metrics
    return metrics


ServiceDep = Annotated[InferenceService, Depends(get_service)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
