"""The client verbs of the ``quantserve`` command: run, list, ps, show, stop, version.

``server.cli`` hands every command it does not own to `main`. As with Ollama's CLI, each verb
talks to the server at `OLLAMA_HOST` (default ``127.0.0.1:11434``), prints what Ollama prints,
and reports a failure as ``Error: ...`` on stderr with exit status 1. The management verbs (pull,
push, create, cp, rm) come from the optional `clients.cli_manage` plugin when it is present.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Protocol, TypeAlias, cast

from ._cli_format import (
    human_bytes,
    human_time,
    processor,
    short_id,
    show_info,
    stats_summary,
    table,
)
from ._client import AsyncClient
from ._exceptions import ConnectError, RequestError, ResponseError
from ._requests import FormatInput, KeepAlive
from ._types import ChatResponse, GenerateResponse, Message, ShowResponse

__all__ = ["ManagePlugin", "build_parser", "main"]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
SHOW_FIELDS = ("license", "modelfile", "parameters", "system", "template")
HELP = """Available commands:
  /set parameter NAME VALUE   Set a model option (e.g. num_predict 8)
  /set system TEXT            Set the system message
  /clear                      Clear the session context
  /bye                        Exit
  /?, /help                   Help for a command
"""


class ManagePlugin(Protocol):
    """What `clients.cli_manage` provides: extra subcommands and the coroutine that runs them."""

    def add_manage_commands(self, subparsers: Subparsers) -> None: ...

    async def run_manage(self, args: argparse.Namespace, client: AsyncClient) -> int: ...


def load_manage_plugin() -> ManagePlugin | None:
    """`clients.cli_manage` if it exists (a broken plugin still raises)."""
    name = f"{__package__}.cli_manage"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
    return cast(ManagePlugin, module)


class CliError(Exception):
    """A usage problem found after parsing (printed as ``Error: ...``)."""


def build_parser(plugin: ManagePlugin | None = None) -> argparse.ArgumentParser:
    """The client command line (plus the plugin's commands when given)."""
    parser = argparse.ArgumentParser(
        prog="quantserve", description="Talk to a quantserve (or Ollama) server at OLLAMA_HOST."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a model (one prompt, or a chat read from stdin)")
    run.add_argument("model")
    run.add_argument("prompt", nargs="*", help="the prompt; without one, chat interactively")
    run.add_argument("--format", help='response format: "json" or a JSON schema')
    run.add_argument("--keepalive", help='how long to keep the model loaded (e.g. "5m")')
    run.add_argument("--verbose", action="store_true", help="print timings after each response")
    run.add_argument("--nowordwrap", action="store_true", help="accepted; output is never wrapped")
    run.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a model option, e.g. -o num_predict=8 (repeatable)",
    )
    ls = sub.add_parser("list", aliases=["ls"], help="list models")
    ls.add_argument("prefix", nargs="?", default="")
    ps = sub.add_parser("ps", help="list running models")
    ps.add_argument("prefix", nargs="?", default="")
    show = sub.add_parser("show", help="show information for a model")
    show.add_argument("model")
    for name in SHOW_FIELDS:
        show.add_argument(f"--{name}", action="store_true", help=f"show the model's {name}")
    show.add_argument("-v", "--verbose", action="store_true", help="show metadata too")
    stop = sub.add_parser("stop", help="unload a running model")
    stop.add_argument("model")
    sub.add_parser("version", help="show the server and client versions")
    if plugin is not None:
        plugin.add_manage_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one client command; returns the exit status."""
    plugin = load_manage_plugin()
    parser = build_parser(plugin)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and args.command == "run" and not any(e.startswith("-") for e in extra):
            args.prompt += extra  # `run MODEL -o k=v more words`: the rest is prompt too
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    try:
        return asyncio.run(_dispatch(args, plugin))
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 130


Handler = Callable[[argparse.Namespace, AsyncClient], Awaitable[int]]


async def _dispatch(args: argparse.Namespace, plugin: ManagePlugin | None) -> int:
    handlers: dict[str, Handler] = {
        "run": _run,
        "list": _list,
        "ls": _list,
        "ps": _ps,
        "show": _show,
        "stop": _stop,
        "version": _version,
    }
    async with AsyncClient() as client:
        try:
            if args.command in handlers:
                return await handlers[args.command](args, client)
            assert plugin is not None  # argparse only accepts the plugin's other commands
            return await plugin.run_manage(args, client)
        except ResponseError as exc:
            return _fail(exc.error)
        except ConnectError:
            return _fail(f"could not connect to a server at {client.base_url}, is it running?")
        except (RequestError, CliError) as exc:
            return _fail(str(exc))


def _fail(message: str) -> int:
    sys.stderr.write(f"Error: {message}\n")
    return 1


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# -- run ----------------------------------------------------------------------------------------


@dataclass
class _Session:
    model: str
    format: FormatInput | None
    keep_alive: KeepAlive | None
    options: dict[str, object]
    verbose: bool
    messages: list[Message] = field(default_factory=list)
    system: str | None = None


def _option_value(text: str) -> object:
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value


def _session(args: argparse.Namespace) -> _Session:
    options: dict[str, object] = {}
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"invalid option {item!r}: expected NAME=VALUE")
        options[name] = _option_value(value)
    fmt: FormatInput | None = None
    if args.format:
        parsed = _option_value(args.format)
        if args.format != "json" and not isinstance(parsed, dict):
            raise CliError(f'invalid format {args.format!r}: use "json" or a JSON schema')
        fmt = "json" if args.format == "json" else cast(dict[str, object], parsed)
    keep_alive: KeepAlive | None = args.keepalive
    if args.keepalive is not None and isinstance(_option_value(args.keepalive), int | float):
        keep_alive = cast(int | float, _option_value(args.keepalive))
    return _Session(args.model, fmt, keep_alive, options, args.verbose)


async def _run(args: argparse.Namespace, client: AsyncClient) -> int:
    session = _session(args)
    prompt = " ".join(args.prompt)
    if prompt:
        await _generate(client, session, prompt)
        return 0
    return await _interactive(client, session)


async def _generate(client: AsyncClient, s: _Session, prompt: str) -> None:
    final: GenerateResponse | None = None
    printer = _Printer()
    stream = await client.generate(
        s.model,
        prompt,
        stream=True,
        format=s.format,
        keep_alive=s.keep_alive,
        options=s.options or None,
    )
    with printer:
        async for chunk in stream:
            printer.emit(chunk.thinking or "", chunk.response)
            if chunk.done:
                final = chunk
    _write("\n\n")
    if s.verbose and final is not None:
        sys.stderr.write(_summary(final))


async def _chat(client: AsyncClient, s: _Session) -> str:
    messages = ([Message(role="system", content=s.system)] if s.system else []) + s.messages
    printer = _Printer()
    stream = await client.chat(
        s.model,
        messages,
        stream=True,
        format=s.format,
        keep_alive=s.keep_alive,
        options=s.options or None,
    )
    final: ChatResponse | None = None
    with printer:
        async for chunk in stream:
            printer.emit(chunk.message.thinking or "", chunk.message.content or "")
            if chunk.done:
                final = chunk
    _write("\n\n")
    if s.verbose and final is not None:
        sys.stderr.write(_summary(final))
    return printer.content


async def _interactive(client: AsyncClient, s: _Session) -> int:
    """A chat that keeps its history: each stdin line is a user turn, ``/bye`` ends it."""
    tty = sys.stdin.isatty()
    # Load the model first (as Ollama does), so that a wrong name fails before any input.
    await client.generate(s.model, keep_alive=s.keep_alive)
    while True:
        if tty:
            _write(">>> ")
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


def _command(s: _Session, text: str) -> bool:
    """Run a slash command; True when the session should end."""
    words = text.split()
    match words:
        case ["/bye" | "/exit"]:
            return True
        case ["/clear"]:
            s.messages.clear()
            _write("Cleared session context\n")
        case ["/set", "parameter", name, *value] if value:
            s.options[name] = _option_value(" ".join(value))
            _write(f"Set parameter '{name}' to '{' '.join(value)}'\n")
        case ["/set", "system", *_]:
            s.system = text.split("system", 1)[1].strip()
            _write("Set system message.\n")
        case ["/?" | "/help", *_]:
            _write(HELP)
        case _:
            _write(f"Unknown command '{words[0]}'. Type /? for help\n")
    return False


class _Printer:
    """Streams thinking and content to stdout as Ollama's CLI shows them."""

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
                _write("Thinking...\n")
                self.thinking = True
            _write(thinking)
            self.printed = True
        if content:
            if self.thinking:
                _write("\n...done thinking.\n\n")
                self.thinking = False
            _write(content)
            self.parts.append(content)
            self.printed = True

    def __enter__(self) -> _Printer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        # An error after some output: end the line so that "Error: ..." starts on its own.
        if exc_type is not None and self.printed:
            _write("\n")


def _summary(final: GenerateResponse | ChatResponse) -> str:
    return stats_summary(
        total_duration=final.total_duration,
        load_duration=final.load_duration,
        prompt_eval_count=final.prompt_eval_count,
        prompt_eval_duration=final.prompt_eval_duration,
        eval_count=final.eval_count,
        eval_duration=final.eval_duration,
    )


# -- list, ps, show, stop, version --------------------------------------------------------------


async def _list(args: argparse.Namespace, client: AsyncClient) -> int:
    prefix = args.prefix.lower()
    rows = [
        [
            m.name or m.model or "",
            short_id(m.digest),
            human_bytes(m.size or 0),
            human_time(m.modified_at, "Never"),
        ]
        for m in (await client.list()).models
        if (m.name or m.model or "").lower().startswith(prefix)
    ]
    _write(table(rows, header=["NAME", "ID", "SIZE", "MODIFIED"]))
    return 0


async def _ps(args: argparse.Namespace, client: AsyncClient) -> int:
    now = datetime.now(UTC)
    rows = []
    for m in (await client.ps()).models:
        name = m.name or m.model or ""
        if not name.startswith(args.prefix):
            continue
        expired = m.expires_at is not None and m.expires_at < now
        until = "Stopping..." if expired else human_time(m.expires_at, "Never", now=now)
        size = human_bytes(m.size or 0)
        context = str(m.context_length or "")
        rows.append([name, short_id(m.digest), size, processor(m), context, until])
    header = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    _write(table(rows, header=header))
    return 0


async def _show(args: argparse.Namespace, client: AsyncClient) -> int:
    chosen = [name for name in SHOW_FIELDS if getattr(args, name)]
    if len(chosen) > 1:
        raise CliError(
            "only one of '--license', '--modelfile', '--parameters', '--system', or "
            "'--template' can be specified"
        )
    resp: ShowResponse = await client.show(args.model, verbose=args.verbose or None)
    if not chosen:
        _write(show_info(resp, verbose=args.verbose))
        return 0
    value = getattr(resp, chosen[0]) or ""
    # Ollama prints license, modelfile and parameters with a newline, system and template raw.
    _write(value + ("\n" if chosen[0] in ("license", "modelfile", "parameters") else ""))
    return 0


async def _stop(args: argparse.Namespace, client: AsyncClient) -> int:
    try:
        await client.stop(args.model)
    except ResponseError as exc:
        if exc.status_code == 404:
            raise CliError(f'couldn\'t find model "{args.model}" to stop') from exc
        raise
    return 0


def _client_version() -> str | None:
    try:
        return metadata.version("quantserve")
    except metadata.PackageNotFoundError:
        return None


async def _version(args: argparse.Namespace, client: AsyncClient) -> int:
    mine = _client_version()
    try:
        server = (await client.version()).version
    except ConnectError:
        _write("Warning: could not connect to a running server\n")
        _write(f"Warning: client version is {mine or 'unknown'}\n")
        return 0
    _write(f"quantserve version is {server}\n")
    if mine is not None and mine != server:
        _write(f"Warning: client version is {mine}\n")
    return 0
