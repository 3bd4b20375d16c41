"""``python -m server``: the same entry point as the ``quantserve`` command."""

from __future__ import annotations

from server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
