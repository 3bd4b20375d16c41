"""The CLI's text formatting (pure functions; the live CLI tests check it end to end)."""

from __future__ import annotations

import sys
import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clients import RunningModel
from clients._cli_format import human_bytes, human_time, processor, short_id, stats_summary, table

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (98_765_432, "98 MB"),
        (10**8 * 5 + 1, "500 MB"),
        (1_500_000_000, "1.5 GB"),
        (2 * 10**9, "2 GB"),
        (3 * 10**12, "3 TB"),
    ],
)
def test_human_bytes_uses_decimal_units_like_ollama(size: int, text: str) -> None:
    assert human_bytes(size) == text


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(milliseconds=300), "Less than a second ago"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=42), "42 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=2, seconds=5), "2 minutes ago"),
        (timedelta(minutes=59), "59 minutes ago"),
        (timedelta(minutes=70), "About an hour ago"),
        (timedelta(hours=30), "30 hours ago"),
        (timedelta(days=5), "5 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=100), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(minutes=4, seconds=30), "4 minutes from now"),
        (-timedelta(days=365 * 300), "Forever"),
    ],
)
def test_human_time_reads_like_ollama(delta: timedelta, text: str) -> None:
    assert human_time(NOW - delta, "Never", now=NOW) == text


def test_human_time_of_nothing_is_the_zero_text() -> None:
    assert human_time(None, "Never") == "Never"


def test_table_aligns_left_with_four_spaces_and_no_trailing_blanks() -> None:
    out = table([["a", "bbbbbb", ""], ["cccc", "d", "e"]], header=["X", "Y", "Z"])
    assert out == "X       Y         Z\na       bbbbbb\ncccc    d         e\n"


def test_processor_and_short_id() -> None:
    assert processor(RunningModel(size=100, size_vram=0)) == "100% CPU"
    assert processor(RunningModel(size=100, size_vram=100)) == "100% GPU"
    assert processor(RunningModel(size=100, size_vram=25)) == "75%/25% CPU/GPU"
    assert short_id("sha256:" + "ab" * 32) == "ab" * 6
    assert short_id("cd" * 32) == "cd" * 6


def test_stats_summary_rates_come_from_server_durations() -> None:
    out = stats_summary(
        total_duration=2_500_000_000,
        load_duration=0,
        prompt_eval_count=10,
        prompt_eval_duration=500_000_000,
        eval_count=8,
        eval_duration=400_000_000,
    )
    assert "total duration:       2.5s\n" in out
    assert "prompt eval rate:     20.00 tokens/s\n" in out
    assert "eval count:           8 token(s)\n" in out
    assert "eval duration:        400ms\n" in out
    assert "eval rate:            20.00 tokens/s\n" in out
    assert "load duration" not in out


def test_management_verbs_come_from_the_optional_plugin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from clients import AsyncClient, cli

    seen: list[tuple[str, str, AsyncClient]] = []
    plugin = types.ModuleType("clients.cli_manage")

    def add_manage_commands(subparsers: Any) -> None:
        subparsers.add_parser("pull").add_argument("model")

    async def run_manage(args: Any, client: AsyncClient) -> int:
        seen.append((args.command, args.model, client))
        return 7

    plugin.add_manage_commands = add_manage_commands  # type: ignore[attr-defined]
    plugin.run_manage = run_manage  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clients.cli_manage", plugin)
    assert cli.main(["pull", "some/model"]) == 7
    [(command, model, client)] = seen
    assert (command, model) == ("pull", "some/model") and isinstance(client, AsyncClient)

    monkeypatch.setitem(sys.modules, "clients.cli_manage", None)  # "not installed"
    assert cli.load_manage_plugin() is None
    assert cli.main(["pull", "some/model"]) == 2
    assert "invalid choice: 'pull'" in capsys.readouterr().err
