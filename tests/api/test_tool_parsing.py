"""Tool calls found in streamed output; the tag inferred from templates; thinking split."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.defaults import DEFAULT_TEMPLATE
from server.engine.templates import GoChatTemplate, JinjaChatTemplate
from server.engine.thinking import ThinkingParser
from server.engine.tools import ParsedToolCall, ToolCallParser, tool_call_tag
from tests.api.templates import BARE_TOOLS_TEMPLATE, TOOLS_TEMPLATE

Calls = list[tuple[str, dict[str, object]]]


def _run(tag: str, names: set[str], text: str, cuts: list[int]) -> tuple[str, Calls, list[str]]:
    """Feed ``text`` split at ``cuts``; returns content, calls and each step's content."""
    parser = ToolCallParser(tag, names)
    bounds = [0, *sorted(set(cuts)), len(text)]
    steps, calls = [], []
    for a, b in itertools.pairwise(bounds):
        content, found = parser.feed(text[a:b])
        steps.append(content)
        calls += found
    content, found = parser.flush()
    steps.append(content)
    calls += found
    for i, call in enumerate(calls):
        assert isinstance(call, ParsedToolCall) and call.index == i
        assert re.fullmatch(r"call_[a-z0-9]{8}", call.id)
    return "".join(steps), [(c.name, c.arguments) for c in calls], steps


TEXT = (
    "Let me check. <tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Pa}r\\"is", "days": 2}}\n'
    "</tool_call>\n<tool_call>\n"
    '{"name": "get_time", "arguments": "{\\"tz\\": \\"CET\\"}"}\n</tool_call>'
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(TEXT)), max_size=12))
def test_calls_are_found_however_the_stream_is_split(cuts: list[int]) -> None:
    content, calls, steps = _run("<tool_call>", {"get_weather", "get_time"}, TEXT, cuts)
    assert content == "Let me check. "
    assert calls == [
        ("get_weather", {"city": 'Pa}r"is', "days": 2}),
        ("get_time", {"tz": "CET"}),
    ]
    # Once the tag starts, nothing of it is shown as content.
    assert all("<" not in s for s in steps)


def test_text_that_only_looks_like_a_tag_is_released() -> None:
    content, calls, _ = _run("<tool_call>", {"f"}, "a <tool_ b <to", [3, 8, 13])
    assert (content, calls) == ("a <tool_ b <to", [])


def test_unknown_function_or_broken_json_stays_content() -> None:
    text = '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call> ok'
    content, calls, _ = _run("<tool_call>", {"f"}, text, [5])
    assert (content, calls) == (text, [])
    content, calls, _ = _run("<tool_call>", {"f"}, '<tool_call>{"name": "f", "argu', [])
    assert (content, calls) == ('<tool_call>{"name": "f", "argu', [])
    content, calls, _ = _run("<tool_call>", {"f"}, "<tool_call>not json", [])
    assert (content, calls) == ("<tool_call>not json", [])


def test_text_after_the_calls_is_content() -> None:
    text = '<tool_call>{"name": "f", "arguments": {}}</tool_call>\nDone.'
    content, calls, _ = _run("<tool_call>", {"f"}, text, [20])
    assert (content, calls) == ("Done.", [("f", {})])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('  {"name": "f", "arguments": {"a": 1}}', ("", [("f", {"a": 1})])),
        ('{"function": {"name": "f", "parameters": {}}}', ("", [("f", {})])),
        ('{"answer": 42}', ('{"answer": 42}', [])),
        ('Hello {"name": "f", "arguments": {}}', ('Hello {"name": "f", "arguments": {}}', [])),
    ],
)
def test_bare_json_calls_only_at_the_start(text: str, expected: tuple[str, Calls]) -> None:
    content, calls, _ = _run("{", {"f"}, text, list(range(0, len(text), 3)))
    assert (content, calls) == expected


def test_tag_is_inferred_from_the_template() -> None:
    assert tool_call_tag(GoChatTemplate(TOOLS_TEMPLATE)) == "<tool_call>"
    assert tool_call_tag(GoChatTemplate(BARE_TOOLS_TEMPLATE)) == "{"
    assert tool_call_tag(GoChatTemplate(DEFAULT_TEMPLATE)) == "{"
    mistral = (
        '{{ if .ToolCalls }}[TOOL_CALLS] [{{ range .ToolCalls }}{"name": 1}{{ end }}]{{ end }}'
    )
    assert tool_call_tag(GoChatTemplate(mistral)) == "[TOOL_CALLS] ["
    jinja = "{% for m in messages %}{{ m.content }}<tool_call>{% endfor %}"
    assert tool_call_tag(JinjaChatTemplate(jinja, bos="", eos="")) == "<tool_call>"


def test_thinking_is_split_from_content() -> None:
    parser = ThinkingParser()
    steps = [parser.feed(t) for t in ("\n<thi", "nk>Let me", " see</th", "ink>\n\nParis", ".")]
    steps.append(parser.flush())
    assert "".join(t for t, _ in steps) == "Let me see"
    assert "".join(c for _, c in steps) == "Paris."
    assert steps[0] == ("", "")  # a partial tag is held back


def test_thinking_already_opened_by_the_prompt() -> None:
    parser = ThinkingParser(started=True)
    assert parser.feed("hmm</think>ok") == ("hmm", "ok")


def test_output_without_thinking_is_content() -> None:
    parser = ThinkingParser()
    assert parser.feed("Hello <think>") == ("", "Hello <think>")
    unfinished = ThinkingParser()
    assert unfinished.feed("<think>still thinking") == ("still thinking", "")
    assert unfinished.flush() == ("", "")
