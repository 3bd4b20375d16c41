"""Thinking output: ``<think>…</think>`` at the start of a response goes to ``thinking``."""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


class ThinkingParser:
    """Splits streamed output into (thinking, content), holding back partial tags.

    ``started`` is for templates whose generation prompt already opened the thinking block
    (the prompt ends with ``<think>``): the output starts inside it.
    """

    def __init__(self, *, started: bool = False, open_tag: str = OPEN, close_tag: str = CLOSE):
        self._open, self._close = open_tag, close_tag
        self._mode = "thinking" if started else "start"
        self._buf = ""

    def feed(self, text: str) -> tuple[str, str]:
        """Add output text; returns (thinking, content) that is safe to emit."""
        self._buf += text
        thinking, content = "", ""
        if self._mode == "start":
            stripped = self._buf.lstrip()
            if self._open.startswith(stripped):
                return "", ""  # still undecided (empty, whitespace or a partial tag)
            if stripped.startswith(self._open):
                self._buf, self._mode = stripped[len(self._open) :].lstrip(), "thinking"
            else:
                self._mode = "content"
        if self._mode == "thinking":
            i = self._buf.find(self._close)
            if i < 0:
                hold = _overlap(self._buf, self._close)
                cut = len(self._buf) - hold
                thinking, self._buf = self._buf[:cut], self._buf[cut:]
                return thinking, ""
            thinking = self._buf[:i]
            self._buf, self._mode = self._buf[i + len(self._close) :].lstrip(), "content"
        content, self._buf = self._buf, ""
        return thinking, content

    def flush(self) -> tuple[str, str]:
        """The output has ended: release what was held."""
        thinking, content = self.feed("")
        rest, self._buf = self._buf, ""
        if self._mode == "thinking":
            return thinking + rest, content
        return thinking, content + rest


def _overlap(text: str, tag: str) -> int:
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
