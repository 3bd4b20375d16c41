"""Incremental detokenisation and stop-string matching.

Never emit half a character or half a stop string.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence


class IncrementalDecoder:
    """Token bytes to text; an incomplete UTF-8 sequence is held until its last byte arrives."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> str:
        """Decode the next bytes; returns only complete characters."""
        return self._decoder.decode(data)

    def flush(self) -> str:
        """Whatever is left (an unfinished sequence becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings in streamed text, holding back a possible partial match."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, stopped). After a stop, the stop and the rest are dropped."""
        if not self._stops:
            return text, False
        buf = self._held + text
        cut = min((i for i in (buf.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self._held = ""
            self.stopped = True
            return buf[:cut], True
        hold = self._partial_suffix(buf)
        self._held = buf[len(buf) - hold :] if hold else ""
        return buf[: len(buf) - hold], False

    def flush(self) -> str:
        """Release the held text (generation ended without completing a stop)."""
        out, self._held = self._held, ""
        return out

    def _partial_suffix(self, buf: str) -> int:
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:n]):
                    best = n
                    break
        return best


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def truncate_tokens(tokens: list[int], n_ctx: int, num_keep: int) -> list[int]:
    """Ollama's raw-prompt truncation: keep ``num_keep`` tokens and the tail that fits.

    The result leaves half the window (after ``num_keep``) free for generation, as Ollama's
    runner does: it keeps ``n_ctx - max((n_ctx - num_keep) // 2, 1)`` tokens.
    """
    num_keep = max(0, min(num_keep, n_ctx - 4))
    target = n_ctx - max((n_ctx - num_keep) // 2, 1)
    if len(tokens) <= target:
        return tokens
    tail = target - num_keep
    return tokens[:num_keep] + tokens[len(tokens) - tail :]
