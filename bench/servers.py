"""The servers under test: how to launch each one, wait for it, and stop it.

Every server runs as a subprocess on a free loopback port with the same model file, the same
thread count and the same per-sequence context. A :class:`Profile` says which context and how
many parallel slots a workload needs; the harness starts one process per (server, profile).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.drivers import Driver, LlamaCppPythonDriver, LlamaServerDriver, OllamaDriver

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
LOGS = CACHE / "bench-logs"
STORE = CACHE / "bench-store"


@dataclass(frozen=True)
class Profile:
    """Server-side shape a workload needs."""

    name: str
    num_ctx: int  # context per sequence
    parallel: int  # concurrent sequences (slots)
    context_shift: bool = False


@dataclass(frozen=True)
class Config:
    """What every server shares."""

    model: Path
    threads: int
    llama_server: Path
    peer_python: Path


@dataclass(frozen=True)
class Started:
    """A running server."""

    url: str
    command: str  # shell-style, environment first, paths relative to the checkout
    pid: int


class ServerFailed(Exception):
    """The server did not come up; the message says why."""


@dataclass
class Server:
    """One server kind: its launch command and its wire driver."""

    name: str
    driver: Driver
    health_path: str
    notes: list[str] = field(default_factory=list)

    def command(self, cfg: Config, profile: Profile, port: int) -> tuple[list[str], dict[str, str]]:
        """(argv, extra environment) to start this server."""
        raise NotImplementedError

    @contextlib.contextmanager
    def running(self, cfg: Config, profile: Profile) -> Iterator[Started]:
        """Start the server, wait until it is healthy, yield it, then stop it."""
        port = free_port()
        argv, env = self.command(cfg, profile, port)
        LOGS.mkdir(parents=True, exist_ok=True)
        log_path = LOGS / f"{self.name}-{profile.name}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env},
                cwd=ROOT,
                start_new_session=True,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                wait_healthy(proc, url + self.health_path, log_path)
                shown = shlex.join([*(f"{k}={v}" for k, v in env.items()), *argv])
                yield Started(url, shown.replace(f"{ROOT}/", ""), proc.pid)
            finally:
                stop(proc)


class LlamaServer(Server):
    """llama.cpp's own server, built from the sources llama-cpp-python vendors."""

    def command(self, cfg: Config, profile: Profile, port: int) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(cfg.llama_server),
            "-m", str(cfg.model),
            "--host", "127.0.0.1",
            "--port", str(port),
            "-t", str(cfg.threads),
            "-tb", str(cfg.threads),
            "-c", str(profile.num_ctx * profile.parallel),
            "-np", str(profile.parallel),
            "--no-webui",
        ]  # fmt: skip
        if profile.parallel > 1:
            argv.append("-kvu")
        if profile.context_shift:
            argv.append("--context-shift")
        return argv, {}


class LlamaCppPythonServer(Server):
    """``llama-cpp-python[server]``: one sequence, requests serialized."""

    def command(self, cfg: Config, profile: Profile, port: int) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(cfg.peer_python), "-m", "llama_cpp.server",
            "--model", str(cfg.model),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_threads", str(cfg.threads),
            "--n_threads_batch", str(cfg.threads),
            "--n_ctx", str(profile.num_ctx),
            # The default (True) ends a running stream as soon as another request waits,
            # which would cut every concurrent stream short; queue them instead.
            "--interrupt_requests", "False",
        ]  # fmt: skip
        return argv, {}


class QuantServe(Server):
    """This project, launched the way a user would, with an empty model store."""

    def command(self, cfg: Config, profile: Profile, port: int) -> tuple[list[str], dict[str, str]]:
        env = {
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "OLLAMA_MODELS": str(STORE),
            "OLLAMA_NUM_PARALLEL": str(profile.parallel),
            "OLLAMA_CONTEXT_LENGTH": str(profile.num_ctx),
            "OLLAMA_KEEP_ALIVE": "-1",
            "QUANTSERVE_NUM_THREAD": str(cfg.threads),
        }
        return [sys.executable, "-m", "server", "serve"], env

    @contextlib.contextmanager
    def running(self, cfg: Config, profile: Profile) -> Iterator[Started]:
        # An empty store each time: the server imports its embedded default model into it.
        shutil.rmtree(STORE, ignore_errors=True)
        STORE.mkdir(parents=True)
        with super().running(cfg, profile) as started:
            yield started


def all_servers(eog_ids: list[int]) -> list[Server]:
    """The servers in report order: ours first, then the peers."""
    return [
        QuantServe("quantserve", OllamaDriver(eog_ids), "/api/version"),
        LlamaServer("llama-server", LlamaServerDriver(eog_ids), "/health"),
        LlamaCppPythonServer("llama_cpp.server", LlamaCppPythonDriver(eog_ids), "/v1/models"),
    ]


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float = 180.0
) -> None:
    """Poll ``url`` until it answers 200; raise ServerFailed if the process dies or times out."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerFailed(f"exited with {proc.returncode}: {tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.25)
    raise ServerFailed(f"not healthy after {timeout:.0f}s: {tail(log_path)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server we started (its own process group), politely first."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def tail(path: Path, lines: int = 6) -> str:
    """The last lines of a log, on one line."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"
