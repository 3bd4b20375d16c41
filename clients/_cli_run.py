"""``quantserve run``: one streamed answer, or a chat that reads its turns from stdin.

With a prompt, the answer of /api/generate is streamed to stdout. Without one, every stdin line is
a user turn of one /api/chat conversation whose history (and answers) is sent with each turn;
``/bye`` (or the end of input) ends it, ``/clear`` forgets the history, ``/set parameter NAME
VALUE`` and ``/set system TEXT`` change the options and the system message, as in Ollama.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self, cast

from ._cli_format import stats_summary, write
from ._client import AsyncClient
from ._requests import FormatInput, KeepAlive
from ._types import ChatResponse, GenerateResponse, Message

__all__ = ["CliError", "run"]

HELP = """Available commands:
  /set parameter NAME VALUE   Set a model option (e.g. num_predict 8)
  /set system TEXT            Set the system message
  /clear                      Clear the session context
  /bye                        Exit
  /?, /help                   Help for a command
"""


class CliError(Exception):
    """A usage problem found after parsing (printed as ``Error: ...``)."""


@dataclass
class Session:
    """What `run` sends with every request, and the chat history."""

    model: str
    format: FormatInput | None = None
    keep_alive: KeepAlive | None = None
    options: dict[str, object] = field(default_factory=dict)
    verbose: bool = False
    messages: list[Message] = field(default_factory=list)
    system: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Session:
        """Validate ``-o NAME=VALUE``, ``--format`` and ``--keepalive``."""
        s = cls(args.model, verbose=args.verbose)
        for item in args.option:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise CliError(f"invalid option {item!r}: expected NAME=VALUE")
            s.options[name] = json_or_text(value)
        if args.format:
            schema = json_or_text(args.format)
            if args.format != "json" and not isinstance(schema, dict):
                raise CliError(f'invalid format {args.format!r}: use "json" or a JSON schema')
            s.format = "json" if args.format == "json" else cast(dict[str, object], schema)
        if args.keepalive is not None:
            # "300" means seconds, as Ollama reads a bare number; "5m" goes as a duration.
            seconds = json_or_text(args.keepalive)
            s.keep_alive = seconds if isinstance(seconds, int | float) else args.keepalive
        return s


def json_or_text(text: str) -> object:
    """``8`` -> 8, ``0.5`` -> 0.5, ``true`` -> True, ``["a"]`` -> list; anything else: the text."""
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value


async def run(args: argparse.Namespace, client: AsyncClient) -> int:
    """The ``run`` verb."""
    session = Session.from_args(args)
    prompt = " ".join(args.prompt)
    if prompt:
        await _generate(client, session, prompt)
        return 0
    return await _interactive(client, session)


async def _generate(client: AsyncClient, s: Session, prompt: str) -> None:
    stream = await client.generate(
        s.model,
        prompt,
        stream=True,
        format=s.format,
        keep_alive=s.keep_alive,
        options=s.options or None,
    )
    await _show_answer(_pieces(stream), verbose=s.verbose)


async def _chat(client: AsyncClient, s: Session) -> str:
    system = [Message(role="system", content=s.system)] if s.system else []
    stream = await client.chat(
        s.model,
        system + s.messages,
        stream=True,
        format=s.format,
        keep_alive=s.keep_alive,
        options=s.options or None,
    )
    return await _show_answer(_pieces(stream), verbose=s.verbose)


Piece = tuple[str, str, GenerateResponse | ChatResponse]


async def _pieces(
    stream: AsyncIterator[GenerateResponse] | AsyncIterator[ChatResponse],
) -> AsyncIterator[Piece]:
    # (thinking, content, chunk) for either endpoint's chunks.
    async for chunk in stream:
        if isinstance(chunk, ChatResponse):
            yield chunk.message.thinking or "", chunk.message.content or "", chunk
        else:
            yield chunk.thinking or "", chunk.response, chunk


async def _show_answer(pieces: AsyncIterator[Piece], *, verbose: bool) -> str:
    """Print an answer as it streams; returns its content (thinking excluded)."""
    final: GenerateResponse | ChatResponse | None = None
    with _Printer() as printer:
        async for thinking, content, chunk in pieces:
            printer.emit(thinking, content)
            if chunk.done:
                final = chunk
    write("\n\n")  # as Ollama's CLI ends every answer
    if verbose and final is not None:
        sys.stderr.write(
            stats_summary(
                total_duration=final.total_duration,
                load_duration=final.load_duration,
                prompt_eval_count=final.prompt_eval_count,
                prompt_eval_duration=final.prompt_eval_duration,
                eval_count=final.eval_count,
                eval_duration=final.eval_duration,
            )
        )
    return printer.content


async def _interactive(client: AsyncClient, s: Session) -> int:
    tty = sys.stdin.isatty()
    # Load the model first (as Ollama does), so that a wrong name fails before any input.
    await client.generate(s.model, keep_alive=s.keep_alive)
    while True:
        if tty:
            write(">>> ")
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return 0  # end of input
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if _command(s, text):
                return 0
            continue
        s.messages.append(Message(role="user", content=text))
        try:
            reply = await _chat(client, s)
        except BaseException:
            s.messages.pop()  # the turn failed: it is not part of the history
            raise
        s.messages.append(Message(role="assistant", content=reply))


def _command(s: Session, text: str) -> bool:
    """Run a slash command; True when the session should end."""
    words = text.split()
    match words:
        case ["/bye" | "/exit"]:
            return True
        case ["/clear"]:
            s.messages.clear()
            write("Cleared session context\n")
        case ["/set", "parameter", name, *value] if value:
            s.options[name] = json_or_text(" ".join(value))
            write(f"Set parameter '{name}' to '{' '.join(value)}'\n")
        case ["/set", "system", *_]:
            s.system = text.split("system", 1)[1].strip()
            write("Set system message.\n")
        case ["/?" | "/help", *_]:
            write(HELP)
        case _:
            write(f"Unknown command '{words[0]}'. Type /? for help\n")
    return False


class _Printer:
    """Streams thinking and content to stdout the way Ollama's CLI shows them."""

    def __init__(self) -> None:
        self.thinking = False
        self.printed = False
        self.parts: list[str] = []

    @property
    def content(self) -> str:
        return "".join(self.parts)

    def emit(self, thinking: str, content: str) -> None:
        if thinking:
            if not self.thinking:
                write("Thinking...\n")
                self.thinking = True
            write(thinking)
            self.printed = True
        if content:
            if self.thinking:
                write("\n...done thinking.\n\n")
                self.thinking = False
            write(content)
            self.parts.append(content)
            self.printed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An error after some output: end the line so that "Error: ..." starts on its own.
        if exc_type is not None and self.printed:
            write("\n")
