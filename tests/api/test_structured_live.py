"""Structured output through the real model: every output parses and validates, streamed or not."""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
import jsonschema
import ollama
import openai
import pytest
from pydantic import BaseModel, Field

from tests.conftest import DEFAULT_MODEL, LiveServer

PERSON = {
    "type": "object",
    "properties": {
        "person": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 10},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
            },
            "required": ["name", "age"],
        }
    },
    "required": ["person"],
}
COLORS = {
    "type": "object",
    "properties": {
        "colors": {
            "type": "array",
            "items": {"enum": ["red", "green", "blue"]},
            "minItems": 1,
            "maxItems": 3,
        }
    },
    "required": ["colors"],
}
# The prompt asks for a number the bounds forbid: only the grammar keeps it in range.
SMALL = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 5}},
    "required": ["n"],
}
FLAGS = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "note": {"type": "string", "maxLength": 6}},
    "required": ["ok"],
    "additionalProperties": False,
}
CASES = [
    (PERSON, "Describe a person with a name and an age."),
    (COLORS, "List some colors of the rainbow."),
    (SMALL, "Pick a number between 100 and 999."),
    (FLAGS, "Is the sky blue? Answer with ok and a note."),
]
IDS = ["nested", "array-enum", "integer-bounds", "required-optional"]


@pytest.fixture(scope="module")
def oai(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def _schema_format(schema: dict[str, Any]) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema}}


def _valid(text: str, schema: dict[str, Any]) -> Any:
    value = json.loads(text)
    jsonschema.validate(value, schema)
    return value


@pytest.mark.parametrize(("schema", "prompt"), CASES, ids=IDS)
def test_ollama_chat_format_schema(live: LiveServer, schema: dict[str, Any], prompt: str) -> None:
    client = ollama.Client(host=live.url)
    r = client.chat(
        DEFAULT_MODEL,
        messages=[{"role": "user", "content": prompt}],
        format=schema,
        options={"num_predict": 96, "seed": 11},
    )
    assert r.done_reason == "stop"
    _valid(r.message.content or "", schema)


@pytest.mark.parametrize(("schema", "prompt"), CASES, ids=IDS)
def test_openai_json_schema_streamed(
    oai: openai.OpenAI, schema: dict[str, Any], prompt: str
) -> None:
    stream = oai.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": prompt}],
        response_format=_schema_format(schema),
        max_tokens=96,
        seed=5,
        stream=True,
    )
    chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    _valid("".join(c.choices[0].delta.content or "" for c in chunks), schema)


def test_ollama_generate_streamed_and_openai_not(live: LiveServer, oai: openai.OpenAI) -> None:
    parts = list(
        ollama.Client(host=live.url).generate(
            DEFAULT_MODEL,
            "Describe a person.",
            format=PERSON,
            stream=True,
            options={"num_predict": 96, "seed": 3},
        )
    )
    assert parts[-1].done_reason == "stop"
    _valid("".join(p.response or "" for p in parts), PERSON)
    ask: list[Any] = [{"role": "user", "content": "Pick a number between 100 and 999."}]
    r = oai.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=ask,
        response_format=_schema_format(SMALL),
        max_tokens=32,
        seed=9,
    )
    assert r.choices[0].finish_reason == "stop"
    assert _valid(r.choices[0].message.content or "", SMALL)["n"] in (3, 4, 5)


class Pet(BaseModel):
    name: str = Field(max_length=10)
    age: int = Field(ge=0, le=30)
    kind: Literal["cat", "dog"]


def test_openai_parse_with_a_pydantic_model(oai: openai.OpenAI) -> None:
    """The client's own schema (strict, titles, additionalProperties false) is enforced."""
    r = oai.chat.completions.parse(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "Describe a pet that is 500 years old."}],
        response_format=Pet,
        max_tokens=64,
        seed=4,
    )
    pet = r.choices[0].message.parsed
    assert isinstance(pet, Pet) and 0 <= pet.age <= 30


def test_format_json(live: LiveServer, oai: openai.OpenAI) -> None:
    prompt = 'Give the capital of France as JSON: {"capital": ...}'
    r = ollama.Client(host=live.url).generate(
        DEFAULT_MODEL,
        prompt,
        format="json",
        options={"num_predict": 48, "temperature": 0},
    )
    assert r.done_reason == "stop" and isinstance(json.loads(r.response or ""), dict)
    c = oai.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": prompt}],
        response_format={"type": "json_object"},
        max_tokens=48,
        temperature=0,
    )
    assert isinstance(json.loads(c.choices[0].message.content or ""), dict)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"a": {"type": "strng"}}}, "$.properties.a.type"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "number", "maximum": 3}, "minimum/maximum"),
    ],
)
def test_invalid_schema_is_400_before_generation(
    live: LiveServer, oai: openai.OpenAI, schema: dict[str, Any], message: str
) -> None:
    runner_busy = _generated(live)
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=live.url).chat(
            DEFAULT_MODEL, messages=[{"role": "user", "content": "hi"}], format=schema
        )
    assert info.value.status_code == 400 and message in info.value.error
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(
            model=DEFAULT_MODEL,
            messages=[{"role": "user", "content": "hi"}],
            response_format=_schema_format(schema),
        )
    assert message in str(bad.value)
    assert _generated(live) == runner_busy  # nothing reached the engine
    # ... and the server still serves.
    with live.client() as http:
        ok = http.post(
            "/api/generate",
            json={
                "model": DEFAULT_MODEL,
                "prompt": "hi",
                "stream": False,
                "options": {"num_predict": 2},
            },
        )
    assert ok.status_code == 200


def _generated(live: LiveServer) -> int:
    return sum(
        m.runner.counters.tokens_generated
        for m in live.scheduler().loaded()
        if m.name == DEFAULT_MODEL
    )


def test_invalid_format_string(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as http:
        r = http.post(
            "/api/generate", json={"model": DEFAULT_MODEL, "prompt": "x", "format": "yaml"}
        )
    assert r.status_code == 400 and "invalid format" in r.json()["error"]
