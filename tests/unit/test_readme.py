"""README.md stays true: its settings table is generated from the settings, and its endpoint
table matches the routes the app really has.

When a setting changes, this test fails and prints the table to paste between the
``settings-table`` markers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Match

from server.app import create_app
from server.settings import describe_settings, load_settings

README = Path(__file__).resolve().parents[2] / "README.md"
SETTINGS_START = "<!-- settings-table:start -->"
SETTINGS_END = "<!-- settings-table:end -->"
ENDPOINTS_START = "<!-- endpoint-table:start -->"
ENDPOINTS_END = "<!-- endpoint-table:end -->"
STATUSES = {"✔", "partial", "✘"}


def settings_table() -> str:
    """The markdown table of every setting, from ``describe_settings()``."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for names, default, meaning in describe_settings():
        variables = " / ".join(f"`{n}`" for n in names.split(" / "))
        shown = f"`{default}`" if default else "unset"
        cell = meaning.replace("|", "\\|")
        lines.append(f"| {variables} | {shown} | {cell} |")
    return "\n".join(lines)


def _section(start: str, end: str) -> str:
    text = README.read_text(encoding="utf-8")
    assert start in text and end in text, f"README.md lacks the {start} ... {end} markers"
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def test_settings_table_is_generated() -> None:
    expected = settings_table()
    assert _section(SETTINGS_START, SETTINGS_END) == expected, (
        f"paste this between the settings-table markers in README.md:\n\n{expected}\n"
    )


def _endpoint_rows() -> list[tuple[list[str], str, str]]:
    rows = []
    for line in _section(ENDPOINTS_START, ENDPOINTS_END).splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        methods, path, status = cells[0], cells[1].strip("`"), cells[2]
        assert status in STATUSES, line
        rows.append((methods.split(", "), path, status))
    return rows


def _app_has(method: str, path: str) -> bool:
    app = create_app(load_settings(embed_default_model=False))
    concrete = re.sub(r":\w+", "x", path)  # /api/blobs/:digest -> /api/blobs/x
    scope = {
        "type": "http",
        "method": method,
        "path": concrete,
        "root_path": "",
        "path_params": {},
        "headers": [],
        "query_string": b"",
    }
    return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)


def test_endpoint_table_lists_ollamas_routes() -> None:
    listed = {(m, p) for methods, p, _ in _endpoint_rows() for m in methods}
    for route in [
        ("POST", "/api/generate"),
        ("POST", "/api/chat"),
        ("POST", "/api/embed"),
        ("GET", "/api/tags"),
        ("POST", "/api/show"),
        ("GET", "/api/ps"),
        ("POST", "/api/pull"),
        ("POST", "/api/create"),
        ("POST", "/v1/chat/completions"),
    ]:
        assert route in listed


@pytest.mark.parametrize(("methods", "path", "status"), _endpoint_rows() if README.exists() else [])
def test_endpoint_table_is_true(methods: list[str], path: str, status: str) -> None:
    for method in methods:
        # ✔ and partial endpoints exist; ✘ ones do not (yet).
        assert _app_has(method, path) is (status != "✘"), (method, path, status)
