"""Test models made through the store from the default model's weights, with other templates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.defaults import DEFAULT_PARAMS
from models.manifest import MEDIA_MODEL
from tests.api.templates import BARE_TOOLS_TEMPLATE, THINKING_TEMPLATE, TOOLS_TEMPLATE
from tests.conftest import DEFAULT_MODEL, LiveServer

TOOLS_MODEL = "smollm2-tools:latest"
BARE_TOOLS_MODEL = "smollm2-bare-tools:latest"
THINKING_MODEL = "smollm2-thinking:latest"


def _create(live: LiveServer, name: str, template: str) -> str:
    base = live.store.resolve(DEFAULT_MODEL)
    digest = base.manifest.layers_of(MEDIA_MODEL)[0].digest
    live.store.create_model(
        name, model_blob=digest, template=template, params=DEFAULT_PARAMS, config=base.config
    )
    return name


def _unload(live: LiveServer, name: str) -> None:
    """Leave the shared server as it was: unload the test model if it is loaded."""
    loaded = {m.name for m in live.scheduler().loaded()}
    if name in loaded or name.removesuffix(":latest") in loaded:
        with live.client() as http:
            http.post("/api/generate", json={"model": name, "keep_alive": 0})


@pytest.fixture(scope="module")
def tools_model(live: LiveServer) -> Iterator[str]:
    """ChatML with qwen2.5-style tools: <tool_call>{"name": ..., "arguments": ...}</tool_call>."""
    yield _create(live, TOOLS_MODEL, TOOLS_TEMPLATE)
    _unload(live, TOOLS_MODEL)


@pytest.fixture(scope="module")
def bare_tools_model(live: LiveServer) -> Iterator[str]:
    """Tool calls written as a bare JSON object (no tag in the template)."""
    yield _create(live, BARE_TOOLS_MODEL, BARE_TOOLS_TEMPLATE)
    _unload(live, BARE_TOOLS_MODEL)


@pytest.fixture(scope="module")
def thinking_model(live: LiveServer) -> Iterator[str]:
    """A template that opens a <think> block when thinking is on."""
    yield _create(live, THINKING_MODEL, THINKING_TEMPLATE)
    _unload(live, THINKING_MODEL)
