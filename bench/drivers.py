"""Wire drivers: one streaming request per call, timed on the client side.

Each server speaks a different streaming dialect (llama-server's native SSE, OpenAI SSE,
Ollama NDJSON). A driver turns a completion or chat request into that dialect and parses the
stream into a :class:`StreamResult` with one timestamp per streamed event.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.text import Message

Json = dict[str, Any]


@dataclass
class Chunk:
    """What one streamed event says."""

    text: str = ""
    tokens: int | None = None  # cumulative generated tokens, when the server says so
    done: bool = False
    finish: str | None = None
    prompt_tokens: int | None = None
    prompt_evaluated: int | None = None  # prompt tokens actually computed (not from cache)
    total_tokens: int | None = None  # final generated-token count, when the server says so


@dataclass
class StreamResult:
    """Client-side timing of one streamed request."""

    started: float
    first_token: float | None = None
    ended: float | None = None
    events: list[tuple[float, int]] = field(default_factory=list)  # (time, tokens so far)
    text: str = ""
    finish: str | None = None
    prompt_tokens: int | None = None
    prompt_evaluated: int | None = None
    error: str | None = None

    @property
    def tokens(self) -> int:
        """Generated tokens."""
        return self.events[-1][1] if self.events else 0

    @property
    def ttft(self) -> float | None:
        """Seconds from sending the request to the first generated token."""
        return None if self.first_token is None else self.first_token - self.started

    @property
    def decode_rate(self) -> float | None:
        """Tokens per second after the first token (the stream's own speed)."""
        if self.first_token is None or len(self.events) < 2:
            return None
        span = self.events[-1][0] - self.first_token
        return (self.tokens - self.events[0][1]) / span if span > 0 else None


class Driver:
    """Base: turns requests into HTTP calls and parses one stream format."""

    name = "base"
    sse = True

    def __init__(self, eog_ids: list[int]) -> None:
        self.eog_ids = eog_ids

    def completion(self, prompt: str, max_tokens: int) -> tuple[str, Json]:
        """(path, body) of a raw streamed completion that ignores end-of-generation."""
        raise NotImplementedError

    def chat(self, messages: list[Message], max_tokens: int) -> tuple[str, Json]:
        """(path, body) of a streamed chat request (greedy, may stop early)."""
        raise NotImplementedError

    def parse(self, event: Json) -> Chunk:
        """Interpret one decoded event."""
        raise NotImplementedError

    async def stream(self, client: httpx.AsyncClient, path: str, body: Json) -> StreamResult:
        """Send one request and time every event of its stream."""
        result = StreamResult(started=time.perf_counter())
        count = 0
        try:
            async with client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode(errors="replace")[:300]
                    result.error = f"HTTP {response.status_code}: {detail}"
                    return result
                async for line in response.aiter_lines():
                    event = self._decode(line)
                    if event is None:
                        continue
                    if "error" in event:
                        result.error = str(event["error"])[:300]
                        break
                    now = time.perf_counter()
                    chunk = self.parse(event)
                    count = self._record(result, chunk, now, count)
                    if chunk.done:
                        break
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.ended = time.perf_counter()
        return result

    def _decode(self, line: str) -> Json | None:
        if self.sse:
            if not line.startswith("data:"):
                return None
            line = line[5:].strip()
            if line == "[DONE]":
                return {"_done": True}
        if not line.strip():
            return None
        decoded: Json = json.loads(line)
        return decoded

    @staticmethod
    def _record(result: StreamResult, chunk: Chunk, now: float, count: int) -> int:
        if chunk.text or (chunk.tokens is not None and chunk.tokens > count):
            count = chunk.tokens if chunk.tokens is not None else count + 1
            if result.first_token is None:
                result.first_token = now
            result.events.append((now, count))
            result.text += chunk.text
        if chunk.total_tokens is not None and result.events and chunk.total_tokens != count:
            # Trust the server's own count; held-back text can merge tokens into one event.
            count = chunk.total_tokens
            result.events[-1] = (result.events[-1][0], count)
        result.finish = chunk.finish or result.finish
        result.prompt_tokens = chunk.prompt_tokens or result.prompt_tokens
        if chunk.prompt_evaluated is not None:
            result.prompt_evaluated = chunk.prompt_evaluated
        return count


class LlamaServerDriver(Driver):
    """llama.cpp ``llama-server``: native ``/completion`` and OpenAI chat."""

    name = "llama-server"

    def completion(self, prompt: str, max_tokens: int) -> tuple[str, Json]:
        return "/completion", {
            "prompt": prompt,
            "n_predict": max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "cache_prompt": True,
            "stream": True,
        }

    def chat(self, messages: list[Message], max_tokens: int) -> tuple[str, Json]:
        return "/v1/chat/completions", {
            "messages": [m.wire() for m in messages],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }

    def parse(self, event: Json) -> Chunk:
        if event.get("_done"):
            return Chunk(done=True)
        timings = event.get("timings") or {}
        if "choices" in event:  # OpenAI chat chunk
            choice = (event["choices"] or [{}])[0]
            return Chunk(
                text=(choice.get("delta") or {}).get("content") or "",
                finish=choice.get("finish_reason"),
                prompt_evaluated=timings.get("prompt_n"),
                prompt_tokens=_cached_plus(timings),
            )
        stopped = bool(event.get("stop"))
        return Chunk(
            text=event.get("content") or "",
            tokens=None if stopped else event.get("tokens_predicted"),
            done=stopped,
            finish=event.get("stop_type") if stopped else None,
            prompt_tokens=event.get("tokens_evaluated"),
            prompt_evaluated=timings.get("prompt_n") if stopped else None,
            total_tokens=event.get("tokens_predicted") if stopped else None,
        )


class LlamaCppPythonDriver(Driver):
    """``python -m llama_cpp.server``: OpenAI completions and chat."""

    name = "llama_cpp.server"

    def completion(self, prompt: str, max_tokens: int) -> tuple[str, Json]:
        # No ignore_eos: a -1000 logit bias on every end-of-generation token does the same.
        return "/v1/completions", {
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "logit_bias": {str(t): -1000.0 for t in self.eog_ids},
            "stream": True,
        }

    def chat(self, messages: list[Message], max_tokens: int) -> tuple[str, Json]:
        return "/v1/chat/completions", {
            "messages": [m.wire() for m in messages],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }

    def parse(self, event: Json) -> Chunk:
        if event.get("_done"):
            return Chunk(done=True)
        choice = (event.get("choices") or [{}])[0]
        text = choice.get("text")
        if text is None:
            text = (choice.get("delta") or {}).get("content")
        return Chunk(text=text or "", finish=choice.get("finish_reason"))


class OllamaDriver(Driver):
    """quantserve through Ollama's ``/api/generate`` (raw) and ``/api/chat`` NDJSON streams."""

    name = "quantserve"
    sse = False
    model = "smollm2:135m"

    def completion(self, prompt: str, max_tokens: int) -> tuple[str, Json]:
        # Ollama has no ignore_eos; a raw continuation of licence prose rarely ends early,
        # and the report shows the tokens each stream really produced.
        return "/api/generate", {
            "model": self.model,
            "prompt": prompt,
            "raw": True,
            "stream": True,
            "options": {"num_predict": max_tokens, "temperature": 0},
        }

    def chat(self, messages: list[Message], max_tokens: int) -> tuple[str, Json]:
        return "/api/chat", {
            "model": self.model,
            "messages": [m.wire() for m in messages],
            "stream": True,
            "options": {"num_predict": max_tokens, "temperature": 0},
        }

    def parse(self, event: Json) -> Chunk:
        text = event.get("response")
        if text is None:
            text = (event.get("message") or {}).get("content")
        done = bool(event.get("done"))
        return Chunk(
            text=text or "",
            done=done,
            finish=event.get("done_reason"),
            prompt_tokens=event.get("prompt_eval_count") if done else None,
            prompt_evaluated=event.get("prompt_eval_count") if done else None,
            total_tokens=event.get("eval_count") if done else None,
        )


def _cached_plus(timings: Json) -> int | None:
    if "prompt_n" not in timings:
        return None
    return int(timings["prompt_n"]) + int(timings.get("cache_n", 0))
