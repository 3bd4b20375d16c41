"""Text formatting for the CLI, the way Ollama's CLI prints it.

`human_bytes` and `human_time` follow Ollama's `format.HumanBytes` / `format.HumanTime` (decimal
units; "2 minutes ago", "4 minutes from now", "Forever"); `table` lays rows out as Ollama's
borderless tablewriter does (left-aligned columns, four spaces between them).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from ._types import JsonValue, RunningModel, ShowResponse

__all__ = [
    "human_bytes",
    "human_duration",
    "human_time",
    "processor",
    "short_id",
    "show_info",
    "stats_summary",
    "table",
    "write",
]

PADDING = "    "
_BYTE_UNITS = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3))


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    """Left-aligned columns separated by four spaces, one line per row (no trailing blanks)."""
    lines = [list(header)] if header is not None else []
    lines += [list(r) for r in rows]
    if not lines:
        return ""
    ncols = max(len(r) for r in lines)
    widths = [max((len(r[i]) for r in lines if i < len(r)), default=0) for i in range(ncols)]
    out = []
    for r in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(r)]
        out.append(PADDING.join(cells).rstrip())
    return "\n".join(out) + "\n"


def human_bytes(size: int) -> str:
    """``98 MB``, ``1.5 GB``, ``512 B`` (decimal units, as Ollama's ``format.HumanBytes``)."""
    unit, scale = next(((u, s) for u, s in _BYTE_UNITS if size >= s), ("B", 1))
    if scale == 1:
        return f"{size} B"
    value = size / scale
    if value >= 10 or value == math.trunc(value):
        return f"{int(value)} {unit}"
    return f"{value:.1f} {unit}"


def human_duration(delta: timedelta) -> str:
    """ "Less than a second", "About a minute", "3 hours", "2 weeks"... (no "ago")."""
    seconds = int(delta.total_seconds())
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(delta.total_seconds() / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def human_time(when: datetime | None, zero: str, *, now: datetime | None = None) -> str:
    """ "2 minutes ago", "4 minutes from now", "Forever" (> 20 years ahead), or `zero`."""
    if when is None:
        return zero
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (now or datetime.now(UTC)) - when
    # Go truncates toward zero: int(d.Hours())/24/365.
    if int(delta.total_seconds() / 3600 / 24 / 365) < -20:
        return "Forever"
    if delta < timedelta(0):
        return human_duration(-delta) + " from now"
    return human_duration(delta) + " ago"


def short_id(digest: str | None) -> str:
    """The first 12 hex digits of a digest (``sha256:`` prefix or not)."""
    return (digest or "").removeprefix("sha256:").removeprefix("sha256-")[:12]


def processor(m: RunningModel) -> str:
    """Where a loaded model lives: "100% CPU", "100% GPU" or "48%/52% CPU/GPU"."""
    size, vram = m.size or 0, m.size_vram or 0
    if vram == 0:
        return "100% CPU"
    if vram == size:
        return "100% GPU"
    if vram > size or size == 0:
        return "Unknown"
    cpu = round((size - vram) / size * 100)
    return f"{cpu}%/{100 - cpu}% CPU/GPU"


def _number(value: JsonValue | None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def _human_number(n: int) -> str:
    # Ollama's format.HumanNumber: 135M, 1.7B, 8B.
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return (f"{value:.0f}" if value == math.floor(value) else f"{value:.1f}") + unit
    return str(n)


def _head(text: str, n: int) -> list[list[str]]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    rows = [["", line] for line in lines[:n]]
    if len(lines) > n:
        rows.append(["", "..."])
    return rows


def _section(title: str, rows: list[list[str]]) -> str:
    return f"  {title}\n" + table(rows) + "\n"


def _model_rows(resp: ShowResponse) -> list[list[str]]:
    info: Mapping[str, JsonValue] = resp.model_info or {}
    details = resp.details
    rows: list[list[str]] = []
    arch = info.get("general.architecture")
    if isinstance(arch, str):
        rows.append(["", "architecture", arch])
        params = details.parameter_size if details is not None else None
        count = info.get("general.parameter_count")
        if not params and isinstance(count, int):
            params = _human_number(count)
        rows.append(["", "parameters", params or ""])
        for key, label in (
            ("context_length", "context length"),
            ("embedding_length", "embedding length"),
        ):
            value = _number(info.get(f"{arch}.{key}"))
            if value is not None:
                rows.append(["", label, value])
    elif details is not None:
        rows.append(["", "architecture", details.family or ""])
        rows.append(["", "parameters", details.parameter_size or ""])
    rows.append(["", "quantization", (details.quantization_level if details else None) or ""])
    return rows


def show_info(resp: ShowResponse, *, verbose: bool = False) -> str:
    """The summary ``ollama show MODEL`` prints: Model, Capabilities, Parameters, License..."""
    out = [_section("Model", _model_rows(resp))]
    if resp.capabilities:
        out.append(_section("Capabilities", [["", c] for c in resp.capabilities]))
    if resp.parameters:
        rows = [["", *line.split()] for line in resp.parameters.splitlines() if line.strip()]
        out.append(_section("Parameters", rows))
    if verbose and resp.model_info:
        rows = [["", k, _metadata_value(v)] for k, v in sorted(resp.model_info.items())]
        out.append(_section("Metadata", rows))
    if resp.system:
        out.append(_section("System", _head(resp.system, 2)))
    if resp.license:
        out.append(_section("License", _head(resp.license, 2)))
    return "".join(out)


def _metadata_value(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        shown = [str(v) for v in value[:3]]
        more = f" ...+{len(value) - 3} more" if len(value) > 3 else ""
        return "[" + " ".join(shown) + more + "]"
    return str(value)


def _go_duration(ns: int) -> str:
    # Close to Go's time.Duration.String for the ranges a generation takes.
    if ns >= 1_000_000_000:
        minutes, seconds = divmod(ns / 1e9, 60)
        return f"{int(minutes)}m{seconds:.6f}s" if minutes else f"{seconds:.9f}".rstrip("0") + "s"
    if ns >= 1_000_000:
        return f"{ns / 1e6:.6f}".rstrip("0").rstrip(".") + "ms"
    if ns >= 1_000:
        return f"{ns / 1e3:.3f}".rstrip("0").rstrip(".") + "µs"
    return f"{ns}ns"


def stats_summary(
    *,
    total_duration: int | None,
    load_duration: int | None,
    prompt_eval_count: int | None,
    prompt_eval_duration: int | None,
    eval_count: int | None,
    eval_duration: int | None,
) -> str:
    """The ``--verbose`` timing block of ``ollama run`` (server-reported durations)."""
    lines = []
    if total_duration:
        lines.append(f"total duration:       {_go_duration(total_duration)}")
    if load_duration:
        lines.append(f"load duration:        {_go_duration(load_duration)}")
    if prompt_eval_count:
        lines.append(f"prompt eval count:    {prompt_eval_count} token(s)")
    if prompt_eval_duration:
        lines.append(f"prompt eval duration: {_go_duration(prompt_eval_duration)}")
        rate = (prompt_eval_count or 0) / prompt_eval_duration * 1e9
        lines.append(f"prompt eval rate:     {rate:.2f} tokens/s")
    if eval_count:
        lines.append(f"eval count:           {eval_count} token(s)")
    if eval_duration:
        lines.append(f"eval duration:        {_go_duration(eval_duration)}")
        lines.append(
            f"eval rate:            {(eval_count or 0) / eval_duration * 1e9:.2f} tokens/s"
        )
    return "".join(line + "\n" for line in lines)


def write(text: str) -> None:
    """Write to stdout now (answers stream token by token)."""
    sys.stdout.write(text)
    sys.stdout.flush()
