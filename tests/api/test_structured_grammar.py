"""JSON schema -> GBNF: checked first (400 with a reason), integer bounds kept, grammars compile."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.defaults import default_gguf_path
from server.engine.llama_backend import LlamaModel, SamplerChain, SamplerConfig
from server.engine.structured import (
    InvalidFormat,
    grammar_for_format,
    grammar_for_schema,
    int_range_rule,
)
from server.engine.tools import forced_call_grammar

LIMIT = 10**16 - 1


def _as_regex(rule: str) -> re.Pattern[str]:
    """The GBNF subset int_range_rule emits (literals, classes, {n}, groups, |) as a regex."""
    pattern = re.sub(r'"([^"]*)"', lambda m: re.escape(m.group(1)), rule)
    return re.compile(pattern.replace(" ", ""))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-(10**7), 10**7),
    st.integers(0, 10**6),
    st.lists(st.integers(-(10**8), 10**8), max_size=40),
)
def test_integer_range_rule_matches_exactly_the_range(
    lo: int, width: int, probes: list[int]
) -> None:
    hi = lo + width
    regex = _as_regex(int_range_rule(lo, hi))
    for n in [*probes, lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, -1, 1, 9, 10, 99, 100]:
        assert bool(regex.fullmatch(str(n))) == (lo <= n <= hi), (lo, hi, n)
    assert not regex.fullmatch("-0")
    assert not regex.fullmatch("00")


def test_integer_range_rule_at_the_digit_limit() -> None:
    regex = _as_regex(int_range_rule(-LIMIT, LIMIT))
    assert regex.fullmatch(str(LIMIT)) and regex.fullmatch(str(-LIMIT))
    assert not regex.fullmatch(str(LIMIT + 1))
    assert _as_regex(int_range_rule(5, LIMIT)).fullmatch("123456789012")


def test_bounded_integers_become_their_own_rule() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 3, "exclusiveMaximum": 6}},
        "required": ["n"],
    }
    gbnf = grammar_for_schema(schema)
    assert "__quantserve_int" not in gbnf
    rule = re.search(r"^qs-bounded-int-0 ::= \( (.*) \) qs-bounded-int-space$", gbnf, re.M)
    assert rule is not None
    assert _as_regex(rule[1]).fullmatch("5") and not _as_regex(rule[1]).fullmatch("6")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "strin"}, "invalid JSON schema at $.type"),
        ({"type": "object", "properties": {"a": {"minimum": "x"}}}, "$.properties.a.minimum"),
        ({"type": "string", "pattern": "(("}, "'((' is not a 'regex'"),
        ({"type": "array", "uniqueItems": True}, "keyword 'uniqueItems'"),
        ({"type": "integer", "multipleOf": 3}, "keyword 'multipleOf'"),
        ({"not": {"type": "string"}}, "keyword 'not'"),
        ({"type": "number", "minimum": 0}, 'only supported on "type": "integer"'),
        ({"type": "object", "required": ["a"]}, "required property 'a'"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer satisfies"),
        ({"type": "string", "format": "date", "maxLength": 3}, "cannot be combined"),
        ({"allOf": [{"type": "string"}, {"maxLength": 2}]}, "allOf"),
        ({"properties": {"a": False}}, "false schema"),
    ],
)
def test_invalid_or_unsupported_schemas_say_what_is_wrong(
    schema: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidFormat) as info:
        grammar_for_schema(schema)
    assert message in str(info.value)


def test_format_values() -> None:
    assert grammar_for_format(None) is None
    assert grammar_for_format("") is None
    assert "root" in (grammar_for_format("json") or "")
    assert "root" in (grammar_for_format({}) or "")
    with pytest.raises(InvalidFormat, match='expected "json"'):
        grammar_for_format("yaml")


SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "person": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 12},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                },
                "required": ["name", "age"],
            }
        },
        "required": ["person"],
    },
    {
        "type": "object",
        "properties": {
            "colors": {
                "type": "array",
                "items": {"enum": ["red", "green", "blue"]},
                "minItems": 1,
                "maxItems": 3,
            },
            "n": {"type": ["integer", "null"], "minimum": -5},
        },
        "required": ["colors"],
    },
    {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        "type": "object",
        "properties": {
            "p": {"$ref": "#/$defs/point"},
            "when": {"type": "string", "format": "date"},
        },
        "required": ["p"],
    },
    {"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 1000},
]


@pytest.fixture(scope="module")
def vocab() -> Iterator[LlamaModel]:
    model = LlamaModel(default_gguf_path())
    yield model
    model.close()


@pytest.mark.parametrize("schema", SCHEMAS)
def test_grammars_compile_in_llama_cpp(vocab: LlamaModel, schema: dict[str, Any]) -> None:
    SamplerChain(vocab, SamplerConfig(grammar=grammar_for_schema(schema))).close()


def test_forced_call_grammars_compile(vocab: LlamaModel) -> None:
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": SCHEMAS[0]}},
        {"type": "function", "function": {"name": "b"}},
    ]
    for tag in ("<tool_call>", "{", "[TOOL_CALLS]"):
        for name in ("a", None):
            gbnf = forced_call_grammar(tools, name, tag)
            SamplerChain(vocab, SamplerConfig(grammar=gbnf)).close()


def test_forced_call_grammar_names_the_tool_with_a_bad_schema() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "nope"}}}]
    with pytest.raises(InvalidFormat, match="tool 'f'"):
        forced_call_grammar(tools, None, "<tool_call>")
    with pytest.raises(InvalidFormat, match="not in tools"):
        forced_call_grammar(tools, "g", "<tool_call>")
