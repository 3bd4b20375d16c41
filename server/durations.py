"""Ollama's keep_alive values: numbers are seconds, strings are Go durations, negative = forever."""

from __future__ import annotations

import math
import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
# Anything beyond this is "forever" in practice (Ollama clamps to the max duration too).
FOREVER = 100 * 365 * 24 * 3600.0


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string (``"1h30m"``, ``"-1m"``, ``"0"``) into seconds."""
    s = text.strip().strip("\"'")
    sign = -1.0 if s.startswith("-") else 1.0
    s = s[1:] if s[:1] in ("+", "-") else s  # one sign at most, as in Go
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos, total = 0, 0.0
    for match in _PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match[1]) * _UNITS[match[2]]
        pos = match.end()
    if pos != len(s):
        raise ValueError(f"invalid duration {text!r}: a unit is required (e.g. 5m, 30s, 1h)")
    return sign * total


def parse_keep_alive(value: str | float | int | None) -> float | None:
    """Seconds to keep a model loaded; ``None`` means forever (negative durations)."""
    if value is None:
        raise ValueError("keep_alive is required")
    if isinstance(value, bool):
        raise ValueError("keep_alive must be a number or a duration string")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        try:
            seconds = float(value.strip().strip("\"'"))
        except ValueError:
            seconds = parse_go_duration(value)
    if math.isnan(seconds):
        raise ValueError("keep_alive must not be NaN")
    if seconds < 0 or seconds > FOREVER:
        return None
    return seconds
