from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import httpx
import numpy as np
import pytest

from models.manifest import MEDIA_MODEL, MEDIA_PARAMS, MEDIA_TEMPLATE
from models.store import ModelStore
from tests.conftest import LiveServer, start_server
from tests.manage.registry_server import Registry


def build_tiny_gguf(path: Path, *, seed: int = 0, n: int = 64) -> bytes:
    """A small valid GGUF (llama arch, a couple of F32 tensors): enough for pull/push/create."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_file_type(0)
    rng = np.random.default_rng(seed)
    writer.add_tensor("token_embd.weight", rng.standard_normal((4, n), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(n, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """About 1.5 KiB of valid GGUF."""
    return build_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def big_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A few MiB of valid GGUF (for progress, resume and concurrency tests)."""
    return build_tiny_gguf(tmp_path_factory.mktemp("gguf") / "big.gguf", seed=1, n=200_000)


@pytest.fixture
def registry() -> Iterator[Registry]:
    reg = Registry()
    yield reg
    reg.close()


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


TEMPLATE = "{{ .Prompt }}"
PARAMS = b'{"temperature":0.5}'


def tiny_layers(model: bytes) -> list[tuple[str, bytes]]:
    return [(MEDIA_MODEL, model), (MEDIA_TEMPLATE, TEMPLATE.encode()), (MEDIA_PARAMS, PARAMS)]


def snapshot(root: Path) -> set[str]:
    """Every file under a store root (the lock file aside)."""
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


def gzip_bomb(size: int) -> bytes:
    return gzip.compress(b"\0" * size, compresslevel=9)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real quantserve (uvicorn in a thread) with its own store and the default model."""
    srv = start_server(tmp_path_factory.mktemp("store"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def module_registry() -> Iterator[Registry]:
    reg = Registry()
    yield reg
    reg.close()


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.iter_lines() if line.strip()]


def post_lines(
    srv: LiveServer, path: str, body: dict[str, Any]
) -> tuple[int, list[dict[str, Any]]]:
    """POST and read the NDJSON progress lines."""
    with srv.client() as client, client.stream("POST", path, json=body) as response:
        return response.status_code, ndjson(response)
