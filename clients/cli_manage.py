"""Model-management verbs of the ``quantserve`` CLI: pull, push, create, cp, rm (as Ollama's CLI).

``create`` works like ``ollama create``: the Modelfile is parsed here, local files named by
``FROM``/``ADAPTER`` (relative to the Modelfile) are uploaded through ``/api/blobs``, and the
JSON form of ``/api/create`` is posted; the server never sees a local path. Progress goes to
stderr: one redrawn bar per blob on a terminal, one line per step otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from ._cli_format import human_bytes
from ._cli_run import CliError
from ._client import AsyncClient
from ._types import ProgressResponse

if TYPE_CHECKING:
    Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

__all__ = ["Modelfile", "add_manage_commands", "parse_modelfile", "run_manage"]

_INSTRUCTIONS = frozenset(
    {"from", "parameter", "template", "system", "adapter", "license", "message", "requires"}
)
_ROLES = frozenset({"system", "user", "assistant"})
_INTS = frozenset(
    [
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "mirostat",
        "draft_num_predict",
    ]
)
_FLOATS = frozenset(
    [
        "temperature",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "mirostat_tau",
        "mirostat_eta",
        "tfs_z",
    ]
)
_BOOLS = frozenset(["numa", "use_mmap", "use_mlock", "low_vram", "f16_kv", "penalize_newline"])
_WORD = re.compile(r"[^\s]+")


@dataclass
class Modelfile:
    """What a Modelfile says, as ``/api/create`` takes it (paths still local)."""

    from_: str = ""
    adapters: list[str] = field(default_factory=list)
    template: str | None = None
    system: str | None = None
    license: list[str] = field(default_factory=list)
    parameters: dict[str, object] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)


def _value(text: str, pos: int) -> tuple[str, int]:
    """A quoted (``\"\"\"`` or ``\"``) or rest-of-line value starting at ``pos``."""
    for quote in ('"""', '"'):
        if text.startswith(quote, pos):
            end = text.find(quote, pos + len(quote))
            if end < 0:
                raise CliError("unterminated quote in Modelfile")
            return text[pos + len(quote) : end], end + len(quote)
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    return text[pos:end].strip(), end


def _typed(key: str, raw: str) -> object:
    try:
        if key in _INTS:
            return int(raw)
        if key in _FLOATS:
            return float(raw)
    except ValueError:
        raise CliError(f"invalid value for parameter {key}: {raw}") from None
    if key in _BOOLS:
        if raw.lower() not in ("true", "false", "1", "0"):
            raise CliError(f"invalid value for parameter {key}: {raw}")
        return raw.lower() in ("true", "1")
    if key == "stop":
        return raw
    raise CliError(f"unknown parameter '{key}'")


def parse_modelfile(text: str) -> Modelfile:
    """Parse Modelfile text (instructions are case-insensitive; ``#`` comments)."""
    mf, pos = Modelfile(), 0
    while True:
        match = _WORD.search(text, pos)
        if match is None:
            break
        word = match.group()
        if word.startswith("#"):
            end = text.find("\n", match.start())
            pos = len(text) if end < 0 else end
            continue
        name = word.lower()
        if name not in _INSTRUCTIONS:
            raise CliError(f'unknown instruction "{word}" in Modelfile')
        pos = match.end()
        arg = ""
        if name in ("parameter", "message"):
            sub = re.compile(r"[ \t]*([^\s]+)[ \t]*").match(text, pos)
            if sub is None:
                raise CliError(f"missing value after {word.upper()}")
            arg, pos = sub.group(1), sub.end()
        value, pos = _value(text, pos + len(text[pos:]) - len(text[pos:].lstrip(" \t")))
        _apply(mf, name, arg, value)
    if not mf.from_:
        raise CliError("no FROM line in the Modelfile")
    return mf


def _apply(mf: Modelfile, name: str, arg: str, value: str) -> None:
    if name == "from":
        mf.from_ = value
    elif name == "adapter":
        mf.adapters.append(value)
    elif name in ("template", "system"):
        setattr(mf, name, value)
    elif name == "license":
        mf.license.append(value)
    elif name == "message":
        if arg.lower() not in _ROLES:
            raise CliError("MESSAGE role must be one of system, user, assistant")
        mf.messages.append({"role": arg.lower(), "content": value})
    elif name == "parameter":
        key = arg.lower()
        typed = _typed(key, value)
        if key == "stop":
            stops = mf.parameters.setdefault("stop", [])
            assert isinstance(stops, list)
            stops.append(typed)
        else:
            mf.parameters[key] = typed


# -- commands ---------------------------------------------------------------------------------


def add_manage_commands(subparsers: Subparsers) -> None:
    """Add pull, push, create, cp and rm to the CLI."""
    for verb, text in (("pull", "pull a model from a registry"), ("push", "push a model")):
        p = subparsers.add_parser(verb, help=text)
        p.add_argument("model")
        p.add_argument("--insecure", action="store_true", help="use plain http to the registry")
    create = subparsers.add_parser("create", help="create a model from a Modelfile")
    create.add_argument("model")
    create.add_argument("-f", "--file", default="Modelfile", help="the Modelfile to use")
    create.add_argument("-q", "--quantize", help="quantize an F16/F32 model, e.g. q4_K_M")
    cp = subparsers.add_parser("cp", help="copy a model")
    cp.add_argument("source")
    cp.add_argument("destination")
    rm = subparsers.add_parser("rm", help="remove models")
    rm.add_argument("models", nargs="+")


async def run_manage(args: argparse.Namespace, client: AsyncClient) -> int:
    """Run one management verb; errors propagate to the CLI's handler."""
    if args.command in ("pull", "push"):
        call = client.pull if args.command == "pull" else client.push
        await _progress(await call(args.model, insecure=args.insecure or None, stream=True))
    elif args.command == "create":
        await _create(args, client)
    elif args.command == "cp":
        await client.copy(args.source, args.destination)
        _say(f"copied '{args.source}' to '{args.destination}'\n", out=True)
    elif args.command == "rm":
        for model in args.models:
            await client.delete(model)
            _say(f"deleted '{model}'\n", out=True)
    else:  # pragma: no cover - argparse only lets our verbs through
        raise CliError(f"unknown command {args.command}")
    return 0


def _local_path(value: str, base: Path) -> Path | None:
    path = Path(os.path.expanduser(value))
    path = path if path.is_absolute() else base / path
    if path.exists():
        return path
    if value.startswith((".", "/", "~")) or value.lower().endswith(".gguf"):
        raise CliError(f"no such file: {value}")
    return None


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf")
        if not found:
            raise CliError(f"no GGUF files in {path}")
        return found
    return [path]


async def _upload(client: AsyncClient, paths: list[Path]) -> dict[str, str]:
    out = {}
    for path in paths:
        digest = await client.create_blob(path)
        _say(f"copying file {digest} 100%\n")
        out[path.name] = digest
    return out


def _read_modelfile(path: Path) -> tuple[Modelfile, Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    return parse_modelfile(text), path.resolve().parent


async def _create(args: argparse.Namespace, client: AsyncClient) -> None:
    mf, base = await asyncio.to_thread(_read_modelfile, Path(args.file))
    _say("gathering model components\n")
    local = _local_path(mf.from_, base)
    files = await _upload(client, _files(local)) if local is not None else None
    adapters = {}
    for value in mf.adapters:
        path = _local_path(value, base)
        if path is None:
            raise CliError(f"no such file: {value}")
        adapters.update(await _upload(client, _files(path)))
    stream = await client.create(
        args.model,
        stream=True,
        from_=None if files else mf.from_,
        files=files,
        adapters=adapters or None,
        template=mf.template,
        system=mf.system,
        license=mf.license or None,
        parameters=mf.parameters or None,
        messages=mf.messages or None,
        quantize=args.quantize,
    )
    await _progress(stream)


async def _progress(events: AsyncIterator[ProgressResponse]) -> None:
    tty = sys.stderr.isatty()
    last, drawing = "", False
    async for p in events:
        status = p.status or ""
        if p.digest and p.total:
            done = p.completed or 0
            finished = done >= p.total
            if tty:
                _say("\r" + _bar(status, done, p.total))
                drawing = True
                if finished:
                    _say("\n")
                    drawing = False
            elif status != last or finished:
                _say(_bar(status, done, p.total) + "\n")
        elif status != last:
            _say(("\n" if drawing else "") + status + "\n")
            drawing = False
        last = status


def _bar(status: str, done: int, total: int, width: int = 25) -> str:
    frac = min(done / total, 1.0)
    filled = int(frac * width)
    bar = "█" * filled + " " * (width - filled)
    return f"{status} {int(frac * 100):3d}% ▕{bar}▏ {human_bytes(done)}/{human_bytes(total)}"


def _say(text: str, *, out: bool = False) -> None:
    stream = sys.stdout if out else sys.stderr
    stream.write(text)
    stream.flush()
