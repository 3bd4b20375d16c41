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
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Protocol, TypeAlias, cast

from ._cli_format import human_bytes, human_time, processor, short_id, show_info, table, write
from ._cli_run import CliError, run
from ._client import AsyncClient
from ._exceptions import ConnectError, RequestError, ResponseError
from ._types import ShowResponse

__all__ = ["ManagePlugin", "build_parser", "main"]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
SHOW_FIELDS = ("license", "modelfile", "parameters", "system", "template")


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


def build_parser(plugin: ManagePlugin | None = None) -> argparse.ArgumentParser:
    """The client command line (plus the plugin's commands when given)."""
    parser = argparse.ArgumentParser(
        prog="quantserve", description="Talk to a quantserve (or Ollama) server at OLLAMA_HOST."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_p = sub.add_parser("run", help="run a model (one prompt, or a chat read from stdin)")
    run_p.add_argument("model")
    run_p.add_argument("prompt", nargs="*", help="the prompt; without one, chat interactively")
    run_p.add_argument("--format", help='response format: "json" or a JSON schema')
    run_p.add_argument("--keepalive", help='how long to keep the model loaded (e.g. "5m")')
    run_p.add_argument("--verbose", action="store_true", help="print timings after each response")
    run_p.add_argument(
        "--nowordwrap", action="store_true", help="accepted; output is never wrapped"
    )
    run_p.add_argument(
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
        "run": run,
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
    write(table(rows, header=["NAME", "ID", "SIZE", "MODIFIED"]))
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
    write(table(rows, header=header))
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
        write(show_info(resp, verbose=args.verbose))
        return 0
    value = getattr(resp, chosen[0]) or ""
    # Ollama prints license, modelfile and parameters with a newline, system and template raw.
    write(value + ("\n" if chosen[0] in ("license", "modelfile", "parameters") else ""))
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
        write("Warning: could not connect to a running server\n")
        write(f"Warning: client version is {mine or 'unknown'}\n")
        return 0
    write(f"quantserve version is {server}\n")
    if mine is not None and mine != server:
        write(f"Warning: client version is {mine}\n")
    return 0
