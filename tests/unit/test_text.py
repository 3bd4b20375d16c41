"""Incremental detokenisation and the stop-string matcher (engine/text.py)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.engine.text import IncrementalDecoder, StopMatcher, common_prefix, truncate_tokens


def _run(stops: list[str], chunks: list[str]) -> tuple[str, bool]:
    """Feed chunks like the engine does: stop at the first stop, else flush at the end."""
    matcher = StopMatcher(stops)
    out = []
    for chunk in chunks:
        text, stopped = matcher.feed(chunk)
        out.append(text)
        if stopped:
            return "".join(out), True
    out.append(matcher.flush())
    return "".join(out), False


def _expected(stops: list[str], text: str) -> tuple[str, bool]:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_stop_inside_one_chunk() -> None:
    assert _run(["<end>"], ["Hello<end>world"]) == ("Hello", True)


def test_stop_split_across_chunks_is_never_emitted() -> None:
    matcher = StopMatcher(["<|im_end|>"])
    assert matcher.feed("Hi <|im") == ("Hi ", False)  # the possible stop is held back
    assert matcher.feed("_en") == ("", False)
    assert matcher.feed("d|> tail") == ("", True)
    assert matcher.stopped


def test_held_text_is_released_when_it_is_not_a_stop() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("a ST") == ("a ", False)
    assert matcher.feed("AR") == ("STAR", False)
    assert matcher.feed("ST") == ("", False)
    assert matcher.flush() == "ST"


def test_earliest_stop_wins() -> None:
    assert _run(["world", "o"], ["Hello world"]) == ("Hell", True)
    assert _run(["ab", "bc"], ["a", "bc"]) == ("", True)
    assert _run(["abcd", "bc"], ["abc", "x"]) == ("a", True)


def test_repeated_prefix_characters() -> None:
    assert _run(["aab"], ["aa", "ab"]) == ("a", True)


def test_no_stops_passes_everything_through() -> None:
    matcher = StopMatcher([])
    assert matcher.feed("anything <|im_end|>") == ("anything <|im_end|>", False)
    assert StopMatcher([""]).feed("x") == ("x", False)  # an empty stop string never matches


def test_unicode_stop() -> None:
    assert _run(["。"], ["你好", "。再见"]) == ("你好", True)


@given(
    st.text(alphabet="abc<>|", min_size=1, max_size=4),
    st.text(alphabet="abc<>|", max_size=40),
    st.lists(st.integers(0, 1000), max_size=8),
)
def test_one_stop_string_equals_find_on_the_whole_text(
    stop: str, text: str, cuts: list[int]
) -> None:
    # However the text is chunked, the output is the text up to the stop string.
    assert _run([stop], _split(text, cuts)) == _expected([stop], text)


@given(
    st.lists(st.text(alphabet="abc<>|", min_size=1, max_size=4), min_size=1, max_size=3),
    st.text(alphabet="abc<>|", max_size=40),
    st.lists(st.integers(0, 1000), max_size=8),
)
def test_several_stop_strings_cut_at_a_stop(stops: list[str], text: str, cuts: list[int]) -> None:
    # With overlapping stops the cut may depend on the chunking (a stop completed in this chunk
    # wins over a longer one that began earlier, as in Ollama's runner), but the output is
    # always a prefix of the text that contains no stop and ends where a stop begins.
    out, stopped = _run(stops, _split(text, cuts))
    if not any(s in text for s in stops):
        assert (out, stopped) == (text, False)
        return
    assert stopped
    assert text.startswith(out)
    assert not any(s in out for s in stops)
    assert any(text[len(out) :].startswith(s) for s in stops)


@given(st.text(max_size=40), st.lists(st.integers(0, 1000), max_size=8))
def test_decoder_never_splits_a_character(text: str, cuts: list[int]) -> None:
    data = text.encode()
    decoder = IncrementalDecoder()
    pieces = [decoder.feed(data[a:b]) for a, b in _byte_ranges(len(data), cuts)]
    assert "".join(pieces) + decoder.flush() == text
    for piece in pieces:
        assert "\ufffd" not in piece or "\ufffd" in text


def _byte_ranges(n: int, cuts: list[int]) -> list[tuple[int, int]]:
    points = sorted({c % (n + 1) for c in cuts})
    bounds = [0, *points, n]
    return list(itertools.pairwise(bounds))


def test_decoder_holds_an_incomplete_sequence() -> None:
    decoder = IncrementalDecoder()
    euro = "€".encode()
    assert decoder.feed(euro[:1]) == ""
    assert decoder.feed(euro[1:2]) == ""
    assert decoder.feed(euro[2:]) == "€"


def test_decoder_flush_replaces_an_unfinished_sequence() -> None:
    decoder = IncrementalDecoder()
    assert decoder.feed("€".encode()[:2]) == ""
    assert decoder.flush() == "\ufffd"


def test_decoder_replaces_invalid_bytes() -> None:
    assert IncrementalDecoder().feed(b"a\xffb") == "a\ufffdb"


@pytest.mark.parametrize(
    ("a", "b", "n"),
    [([], [], 0), ([1, 2, 3], [1, 2, 4], 2), ([1, 2], [1, 2, 3], 2), ([5], [6], 0)],
)
def test_common_prefix(a: list[int], b: list[int], n: int) -> None:
    assert common_prefix(a, b) == n


def test_truncate_keeps_num_keep_and_the_tail() -> None:
    tokens = list(range(100))
    kept = truncate_tokens(tokens, n_ctx=40, num_keep=4)
    # Ollama keeps n_ctx - max((n_ctx - num_keep) // 2, 1) tokens: half the window stays free.
    assert len(kept) == 40 - (40 - 4) // 2
    assert kept[:4] == [0, 1, 2, 3]
    assert kept[4:] == tokens[100 - (len(kept) - 4) :]


def test_truncate_leaves_short_prompts_alone() -> None:
    assert truncate_tokens([1, 2, 3], n_ctx=40, num_keep=4) == [1, 2, 3]


@given(st.integers(0, 500), st.integers(8, 256), st.integers(-1, 300))
def test_truncate_always_fits(n: int, n_ctx: int, num_keep: int) -> None:
    tokens = list(range(n))
    kept = truncate_tokens(tokens, n_ctx, num_keep)
    assert len(kept) < n_ctx
    assert kept == tokens or len(kept) == n_ctx - max(
        (n_ctx - max(0, min(num_keep, n_ctx - 4))) // 2, 1
    )
    assert kept[-1:] == tokens[-1:]  # the end of the prompt is never dropped
