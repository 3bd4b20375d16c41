"""Shared fixtures: a real uvicorn server serving the real default model through llama.cpp.

One model load is shared by the whole session (``live``); tests that need other engine settings
start their own server with :func:`start_server` in a module-scoped fixture.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from models.defaults import ensure_default_model
from models.store import ModelStore
from server.app import create_app
from server.settings import Settings, load_settings

THREADS = min(2, os.cpu_count() or 1)  # llama.cpp threads never exceed the cores
DEFAULT_MODEL = "smollm2:135m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """A quantserve instance running in a thread of the test process."""

    url: str
    settings: Settings
    store: ModelStore
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120.0), **kwargs)

    app_state: dict[str, Any]

    def scheduler(self) -> Any:
        """The app's scheduler (to watch slots and loaded models)."""
        return self.app_state["scheduler"]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_server(store_root: Path, **overrides: Any) -> LiveServer:
    """Start a real server on a free loopback port; returns once it accepts requests."""
    port = free_port()
    options: dict[str, Any] = {
        "host": f"127.0.0.1:{port}",
        "models": store_root,
        "num_thread": THREADS,
        "context_length": 2048,
        "num_parallel": 4,
        "keep_alive": "10m",
        "embed_default_model": True,
    }
    options.update(overrides)
    settings = load_settings(**options)
    store = ModelStore(store_root)
    if options["embed_default_model"]:
        ensure_default_model(store)
    app = create_app(settings)
    captured: dict[str, Any] = {}
    inner = app.router.lifespan_context

    def capturing_lifespan(app_: Any) -> Any:
        ctx = inner(app_)

        class _Wrap:
            async def __aenter__(self) -> Any:
                state = await ctx.__aenter__()
                captured.update(state)
                return state

            async def __aexit__(self, *exc: Any) -> Any:
                return await ctx.__aexit__(*exc)

        return _Wrap()

    app.router.lifespan_context = capturing_lifespan
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", settings, store, server, thread, captured)


@pytest.fixture(scope="session")
def live_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def live(live_store: Path) -> Iterator[LiveServer]:
    """The session's shared server (4 slots, num_ctx 2048, the default model)."""
    server = start_server(live_store)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


EMBED_MODEL = "smollm2-embed:latest"


@pytest.fixture(scope="session")
def embed_model(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default model's weights with mean pooling: an embedding model in the live store."""
    from bench.gguf_variants import copy_with_metadata
    from models.defaults import import_gguf

    path = copy_with_metadata(tmp_path_factory.mktemp("embed") / "embed.gguf", {"pooling_type": 1})
    import_gguf(live.store, path, EMBED_MODEL)
    return EMBED_MODEL
