"""create_app(settings) -> FastAPI: wiring only (state, routes, error handlers, middleware)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from models.defaults import ensure_default_model
from models.store import ModelStore
from server.api.deps import AppState
from server.api.routes import embed, generate, health, manage, openai, registry, tokenize
from server.api.routes import models as model_routes
from server.api.streaming import describe_validation
from server.engine.runner import Runner
from server.engine.scheduler import RunnerFactory, Scheduler
from server.engine.service import EngineDefaults, InferenceService
from server.errors import ServerError
from server.metrics import Metrics, metrics_route
from server.middleware import install_cors
from server.request_context import RequestContextMiddleware, current_transaction_id
from server.settings import Settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, runner_factory: RunnerFactory = Runner) -> FastAPI:
    """Build the application; nothing is loaded until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        store = ModelStore(settings.store.root)
        if settings.store.embed_default_model:
            ensure_default_model(store)
        eng = settings.engine
        metrics = Metrics()
        scheduler = Scheduler(
            max_loaded=eng.max_loaded_models,
            max_queue=eng.max_queue,
            load_timeout=eng.load_timeout_seconds,
            runner_factory=metrics.track_runners(runner_factory),
        )
        metrics.watch(scheduler)
        defaults = EngineDefaults(
            num_ctx=eng.context_length,
            num_batch=eng.num_batch,
            num_thread=eng.threads,
            num_parallel=eng.num_parallel,
            kv_cache_type=eng.kv_cache_type,
            flash_attention=eng.flash_attention,
            keep_alive=eng.keep_alive_seconds,
        )
        service = InferenceService(store, scheduler, defaults)
        try:
            yield {
                "settings": settings,
                "store": store,
                "scheduler": scheduler,
                "service": service,
                "metrics": metrics,
            }
        finally:
            await scheduler.shutdown()

    app = FastAPI(title="quantserve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(health.router)
    app.include_router(generate.router)
    app.include_router(model_routes.router)
    app.include_router(embed.router)
    app.include_router(tokenize.router)
    app.include_router(openai.router)
    app.include_router(manage.router)
    app.include_router(registry.router)
    app.router.routes.append(metrics_route())
    install_cors(app, settings.server.origins)
    app.add_middleware(RequestContextMiddleware)  # outermost: CORS answers carry the id too
    app.add_exception_handler(ServerError, _server_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    return app


async def _server_error(_: Request, exc: ServerError) -> JSONResponse:
    if exc.status_code >= 500:
        logger.warning("%s: %s", type(exc).__name__, exc.message)
    body = {"error": exc.message, "transaction_id": current_transaction_id()}
    return JSONResponse(body, exc.status_code, headers=exc.headers)


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # Never FastAPI's 422: Ollama answers 400 with {"error": ...}.
    from pydantic import ValidationError

    message = describe_validation(exc) if isinstance(exc, ValidationError) else "invalid request"
    return JSONResponse({"error": message, "transaction_id": current_transaction_id()}, 400)
