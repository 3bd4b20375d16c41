"""keep_alive values: Go duration strings, seconds as numbers, negative = forever, 0 = unload."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.durations import FOREVER, parse_go_duration, parse_keep_alive

UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("-0", 0.0),
        ("+0", 0.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("1h2m3s4ms", 3723.004),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("-1m", -60.0),
        ("+5s", 5.0),
        ("2us", 2e-6),
        ("2µs", 2e-6),
        ("7ns", 7e-9),
        ('"10m"', 600.0),  # Ollama's Var() trims quotes and spaces
        (" 10m ", 600.0),
    ],
)
def test_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "-", "+", "5", "5x", "m", "1hm", "1h 30m", "--1m", "+-1m", "1.5.5s", "s5", "1d"]
)
def test_go_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNIT_SECONDS))),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
)
def test_go_duration_sums_its_parts(parts: list[tuple[int, str]], negative: bool) -> None:
    text = ("-" if negative else "") + "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * UNIT_SECONDS[unit] for n, unit in parts) * (-1 if negative else 1)
    assert parse_go_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),  # a JSON number is seconds
        (1.5, 1.5),
        (0, 0.0),  # 0 = unload right after the request
        ("0", 0.0),
        ("10m", 600.0),
        ("30", 30.0),  # an integer string is seconds (OLLAMA_KEEP_ALIVE=30)
        ("24h", 86400.0),
        (-1, None),  # negative = forever
        (-0.5, None),
        ("-1m", None),
        ("-1", None),
        (FOREVER + 1, None),  # beyond any useful horizon = forever
    ],
)
def test_keep_alive(value: str | float, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", [None, True, False, math.nan, "nan", "5x", "", "m"])
def test_keep_alive_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_keep_alive(value)  # type: ignore[arg-type]


@given(st.floats(min_value=0, max_value=FOREVER, allow_nan=False))
def test_keep_alive_non_negative_numbers_are_seconds(value: float) -> None:
    assert parse_keep_alive(value) == value


@given(st.floats(max_value=-1e-9, allow_nan=False))
def test_keep_alive_negative_numbers_are_forever(value: float) -> None:
    assert parse_keep_alive(value) is None
