"""Markdown report: the machine, absolute numbers per server, and ratios against the peers."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench.load import NOISY
from bench.workloads import EMBED_PENDING, ChatStats, LongStats, StreamStats

OURS = "quantserve"
PEERS = ("llama-server", "llama_cpp.server")


@dataclass
class ServerRun:
    """Everything measured for one server (or why it was not)."""

    name: str
    failure: str | None = None
    commands: dict[str, str] = field(default_factory=dict)
    streams: dict[int, StreamStats] = field(default_factory=dict)
    chat: ChatStats | None = None
    long: LongStats | None = None
    other_load: dict[str, float] = field(default_factory=dict)  # profile -> CPU share of others


def machine(llama_revision: str) -> list[tuple[str, str]]:
    """A description of this machine and the engine build."""
    cpu = "unknown"
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and cpu == "unknown":
            cpu = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    simd = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16") if f in flags)
    return [
        ("Date (UTC)", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")),
        ("CPU", f"{cpu} ({simd or 'no AVX2'})"),
        ("Cores", f"{len(os.sched_getaffinity(0))} usable of {os.cpu_count()}"),
        ("RAM", f"{mem_kib / 1024 / 1024:.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}, Python {platform.python_version()}"),
        ("llama-cpp-python", metadata.version("llama-cpp-python")),
        ("llama.cpp revision", llama_revision),
    ]


Row = tuple[str, Callable[[ServerRun], float | None], str]  # label, getter, better


def _stream_rows(c: int) -> list[Row]:
    def get(attr: str, scale: float = 1.0) -> Callable[[ServerRun], float | None]:
        def read(run: ServerRun) -> float | None:
            stats = run.streams.get(c)
            value = getattr(stats, attr) if stats else None
            return None if value is None else value * scale

        return read

    return [
        (f"c={c} aggregate tok/s", get("aggregate_tps"), "higher"),
        (f"c={c} per-stream tok/s (median)", get("per_stream_tps"), "higher"),
        (f"c={c} TTFT p50 (ms)", get("ttft_p50", 1000), "lower"),
        (f"c={c} TTFT p95 (ms)", get("ttft_p95", 1000), "lower"),
        (f"c={c} tokens per stream (mean)", get("mean_tokens"), ""),
    ]


def _rows(concurrency: list[int], windows: int) -> list[Row]:
    rows = [row for c in concurrency for row in _stream_rows(c)]

    def chat(attr: str, scale: float = 1.0) -> Callable[[ServerRun], float | None]:
        def read(run: ServerRun) -> float | None:
            value = getattr(run.chat, attr) if run.chat else None
            return None if value is None else value * scale

        return read

    def window(k: int) -> Callable[[ServerRun], float | None]:
        return lambda run: run.long.window_tps[k] if run.long else None

    rows += [
        ("chat prompt tokens (cold)", chat("prompt_tokens"), ""),
        ("chat cold TTFT (ms)", chat("cold_ttft", 1000), "lower"),
        ("chat warm TTFT (ms)", chat("warm_ttft", 1000), "lower"),
        ("chat cold / warm TTFT (×)", chat("speedup"), "higher"),
        ("chat warm prompt tokens evaluated", chat("warm_evaluated"), ""),
    ]
    rows += [(f"long stream window {k + 1} tok/s", window(k), "higher") for k in range(windows)]
    rows += [
        (
            "long stream last / first window",
            lambda r: r.long.last_over_first if r.long else None,
            "higher",
        ),
        ("long stream tokens generated", lambda r: r.long.tokens if r.long else None, ""),
        ("CPU used by other processes (%, max)", _max_load, ""),
    ]
    return rows


def _max_load(run: ServerRun) -> float | None:
    return 100 * max(run.other_load.values()) if run.other_load else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _ratio(ours: float | None, peer: float | None, better: str) -> str:
    if not better or ours is None or peer is None or ours == 0 or peer == 0:
        return ""
    value = ours / peer if better == "higher" else peer / ours
    return f"{value:.2f}×"


def table(runs: list[ServerRun], concurrency: list[int], windows: int) -> list[str]:
    """The results table: one row per metric, one column per server, then the ratios."""
    by_name = {r.name: r for r in runs}
    ours = by_name.get(OURS)
    pending = ours is None or ours.failure is not None
    peers = [p for p in PEERS if p in by_name]
    header = ["metric", *(r.name for r in runs), *(f"{OURS} vs {p}" for p in peers)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, get, better in _rows(concurrency, windows):
        cells = [label]
        for run in runs:
            cells.append("pending" if run.failure else _fmt(get(run)))
        for p in peers:
            if pending or ours is None:
                cells.append("pending" if better else "")
            else:
                cells.append(_ratio(get(ours), get(by_name[p]), better))
        lines.append("| " + " | ".join(cells) + " |")
    embed = ["embed 256 short texts", *("pending" for _ in runs), *("pending" for _ in peers)]
    lines.append("| " + " | ".join(embed) + " |")
    return lines


def targets(runs: list[ServerRun]) -> list[str]:
    """The issue #3 targets, checked when quantserve has numbers."""
    by_name = {r.name: r for r in runs}
    ours, ref = by_name.get(OURS), by_name.get("llama-server")
    usable = ours is not None and ours.failure is None

    def agg(run: ServerRun | None, c: int) -> float | None:
        stats = run.streams.get(c) if run else None
        return stats.aggregate_tps if stats else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    speedup = ours.chat.speedup if usable and ours and ours.chat else None
    windows = ours.long.last_over_first if usable and ours and ours.long else None
    checks = [
        ("c=1 aggregate ≥ 0.95× llama-server", ratio(agg(ours, 1), agg(ref, 1)), 0.95),
        ("c=8 aggregate ≥ 1.0× llama-server", ratio(agg(ours, 8), agg(ref, 8)), 1.0),
        ("warm TTFT ≥ 5× faster than cold", speedup, 5.0),
        ("last window ≥ 0.9× the first", windows, 0.9),
    ]
    out = ["| target | quantserve | result |", "|---|---|---|"]
    for label, value, goal in checks:
        if not usable or value is None:
            out.append(f"| {label} | pending | pending |")
        else:
            out.append(f"| {label} | {value:.2f} | {'PASS' if value >= goal else 'FAIL'} |")
    return out


def render(
    runs: list[ServerRun],
    machine_rows: list[tuple[str, str]],
    settings: list[tuple[str, str]],
    concurrency: list[int],
    windows: int,
) -> str:
    """The whole report as markdown."""
    out = ["# Benchmark results", "", "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in machine_rows]
    out += ["", "## Settings", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in settings]
    out += ["", "## Results", "", "Ratios: > 1 means quantserve is better (speed: ours / peer;"]
    out += ["latency: peer / ours).", ""]
    worst = max((v for r in runs for v in r.other_load.values()), default=0.0)
    if worst > NOISY:
        out += [f"**Warning:** other processes used up to {worst:.0%} of the CPU during this run;"]
        out += ["llama.cpp's spinning threads make that cost far more than its share. Rerun.", ""]
    out += table(runs, concurrency, windows)
    out += ["", f"Embedding: {EMBED_PENDING}.", "", "## Targets (issue #3)", ""]
    out += targets(runs)
    out += ["", "## Servers", ""]
    for run in runs:
        out.append(
            f"- **{run.name}**: " + (f"not measured: {run.failure}" if run.failure else "ok")
        )
        for profile, command in run.commands.items():
            out.append(f"  - `{profile}`: `{command}`")
        for profile, share in run.other_load.items():
            noisy = " (**noisy: rerun on a quiet machine**)" if share > NOISY else ""
            out.append(f"  - other processes used {share:.0%} of the CPU during `{profile}`{noisy}")
        for note in _notes(run):
            out.append(f"  - {note}")
    return "\n".join(out) + "\n"


def _notes(run: ServerRun) -> list[str]:
    notes = []
    for c, stats in run.streams.items():
        notes.append(f"c={c}: {stats.streams} streams, finish reasons {stats.finishes}")
        notes += [f"c={c} error: {e}" for e in sorted(set(stats.errors))[:3]]
    if run.chat:
        notes += [f"chat error: {e}" for e in sorted(set(run.chat.errors))[:3]]
    if run.long:
        done = f"{run.long.tokens} of {run.long.requested} tokens, finish {run.long.finish}"
        notes.append(f"long stream (num_ctx {run.long.num_ctx}): {done}")
        notes += [f"long stream error: {e}" for e in run.long.errors[:3]]
    return notes
