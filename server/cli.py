"""The ``quantserve`` command: serve, import (client verbs live in clients.cli)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from server.settings import SettingsError, describe_settings, load_settings

logger = logging.getLogger(__name__)

SERVER_COMMANDS = ("serve", "import")


def _settings_epilog() -> str:
    lines = ["environment variables:"]
    for names, default, meaning in describe_settings():
        lines.append(f"  {names}\n      {meaning} (default: {default or 'unset'})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="quantserve", description="Local GGUF inference server.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser(
        "serve",
        help="start the server",
        description="Serve the Ollama-compatible API. Settings come from the environment.",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp = sub.add_parser("import", help="register a local GGUF file in the model store")
    imp.add_argument("file", type=Path)
    imp.add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``quantserve`` and ``python -m server``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-") and argv[0] not in SERVER_COMMANDS:
        # Client verbs (run, list, ps, ...) are not subparsers here: argparse would reject them
        # as invalid choices before parse_known_args could pass them on.
        from clients.cli import main as client_main

        return client_main(argv)
    args, rest = build_parser().parse_known_args(argv)
    if args.command in (None, "serve", "import"):
        try:
            settings = load_settings()
        except SettingsError as exc:
            sys.stderr.write(f"quantserve: {exc}\n")
            return 2
    if args.command in (None, "serve"):
        return _serve(settings)
    if args.command == "import":
        return _import(settings, args.file, args.name)
    from clients.cli import main as client_main

    return client_main([args.command, *rest])


def _serve(settings: object) -> int:
    import uvicorn

    from server.app import create_app
    from server.logs import configure_logging
    from server.settings import Settings

    assert isinstance(settings, Settings)
    configure_logging(settings.server.log_level, settings.server.log_format)
    host, port = settings.server.bind
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_config=None, timeout_graceful_shutdown=10)
    return 0


def _import(settings: object, path: Path, name: str) -> int:
    from models import ModelStore
    from models.defaults import import_gguf
    from server.settings import Settings

    assert isinstance(settings, Settings)
    try:
        import_gguf(ModelStore(settings.store.root), path, name)
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"quantserve: cannot import {path}: {exc}\n")
        return 1
    sys.stdout.write(f"imported {path} as {name}\n")
    return 0
