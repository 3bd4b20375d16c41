"""How busy the machine was with *other* work while a server was measured.

llama.cpp's OpenMP threads spin while they wait for each other, so a benchmark that shares a
2-core machine with anything else slows down far more than the stolen CPU time suggests. The
report therefore states how much CPU other processes used during each server's run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

NOISY = 0.05  # other processes' CPU share above which a measurement is not trustworthy


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _process_jiffies(pid: int) -> int:
    """CPU jiffies used by a process and its reaped children (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])  # utime stime cutime cstime


@dataclass
class LoadMeter:
    """Measures CPU used by everything except the given processes."""

    pids: tuple[int, ...]
    _busy: int = 0
    _total: int = 0
    _ours: int = 0

    def __post_init__(self) -> None:
        self.pids = (os.getpid(), *self.pids)
        self._busy, self._total = _machine_jiffies()
        self._ours = sum(_process_jiffies(p) for p in self.pids)

    def other_share(self) -> float:
        """Fraction of the machine's CPU (0..1) used by other processes since the start."""
        busy, total = _machine_jiffies()
        ours = sum(_process_jiffies(p) for p in self.pids)
        span = total - self._total
        if span <= 0:
            return 0.0
        return max(0.0, (busy - self._busy) - (ours - self._ours)) / span
