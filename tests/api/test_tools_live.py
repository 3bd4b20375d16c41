"""Tools through the real model: rendered by the template, parsed from the output, forced by
tool_choice (every forced call parses and validates), suppressed by "none"."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import ollama
import openai
import pytest

from tests.conftest import DEFAULT_MODEL, LiveServer

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "days"],
}
TIME = {
    "type": "object",
    "properties": {"zone": {"enum": ["UTC", "CET", "PST"]}},
    "required": ["zone"],
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather forecast",
            "parameters": WEATHER,
        },
    },
    {
        "type": "function",
        "function": {"name": "get_time", "description": "Current time", "parameters": TIME},
    },
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}
ASK: list[Any] = [
    {"role": "user", "content": "What will the weather be in Paris for the next 3 days?"}
]
CALL_ID = re.compile(r"call_[a-z0-9]{8}")


@pytest.fixture(scope="module")
def oai(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def _check_openai_call(call: Any, name: str | None = None) -> dict[str, Any]:
    assert CALL_ID.fullmatch(call.id) and call.type == "function"
    assert isinstance(call.function.arguments, str)  # OpenAI: a JSON string
    args = json.loads(call.function.arguments)
    assert name is None or call.function.name == name
    jsonschema.validate(args, SCHEMAS[call.function.name])
    return args  # type: ignore[no-any-return]


def test_required_openai(oai: openai.OpenAI, tools_model: str) -> None:
    r = oai.chat.completions.create(
        model=tools_model, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=64, seed=1
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and len(choice.message.tool_calls) == 1
    _check_openai_call(choice.message.tool_calls[0])
    assert not choice.message.content


def test_named_openai_streamed(oai: openai.OpenAI, tools_model: str) -> None:
    chunks = list(
        oai.chat.completions.create(
            model=tools_model,
            messages=ASK,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            max_tokens=64,
            seed=2,
            stream=True,
        )
    )
    calls = [c for ch in chunks for c in (ch.choices[0].delta.tool_calls or []) if ch.choices]
    assert len(calls) == 1 and calls[0].index == 0
    _check_openai_call(calls[0], "get_time")
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The tag and the JSON never leak into content, even while streaming.
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == ""


@pytest.mark.parametrize("stream", [False, True])
def test_forced_calls_ollama(live: LiveServer, tools_model: str, stream: bool) -> None:
    client = ollama.Client(host=live.url)
    for seed, choice in enumerate(
        ["required", {"type": "function", "function": {"name": "get_weather"}}]
    ):
        body = {
            "model": tools_model,
            "messages": ASK,
            "tools": TOOLS,
            "tool_choice": choice,
            "stream": stream,
            "options": {"num_predict": 64, "seed": seed, "temperature": 1.0},
        }
        # The ollama client has no tool_choice (it is beyond Ollama's API): post it directly.
        with httpx.Client(base_url=live.url, timeout=120) as http:
            r = http.post("/api/chat", json=body)
        assert r.status_code == 200, r.text
        events = [json.loads(line) for line in r.text.splitlines() if line]
        calls = [c for e in events for c in e["message"].get("tool_calls", [])]
        assert len(calls) == 1
        assert CALL_ID.fullmatch(calls[0]["id"]) and calls[0]["function"]["index"] == 0
        args = calls[0]["function"]["arguments"]
        assert isinstance(args, dict)  # Ollama: a JSON object
        jsonschema.validate(args, SCHEMAS[calls[0]["function"]["name"]])
        if not isinstance(choice, str):
            assert calls[0]["function"]["name"] == "get_weather"
        assert "".join(e["message"]["content"] for e in events) == ""
        assert events[-1]["done"] and events[-1]["done_reason"] == "stop"
    assert client.list()  # still serving


# The bare-JSON template has no tag: a JSON call at the start of the output is a call. The
# response_format forces the model to write exactly such an object, so "auto" must parse it
# and "none" must leave it as content.
FORCED_OUTPUT = {
    "type": "object",
    "properties": {
        "name": {"const": "get_weather"},
        "arguments": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris"]}, "days": {"const": 3}},
            "required": ["city", "days"],
        },
    },
    "required": ["name", "arguments"],
}


def _forced_json(model: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": ASK,
        "tools": TOOLS,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "c", "schema": FORCED_OUTPUT},
        },
        "max_tokens": 48,
        **kwargs,
    }


def test_auto_parses_a_bare_json_call(oai: openai.OpenAI, bare_tools_model: str) -> None:
    r = oai.chat.completions.create(**_forced_json(bare_tools_model))
    calls = r.choices[0].message.tool_calls
    assert calls and len(calls) == 1
    assert _check_openai_call(calls[0], "get_weather") == {"city": "Paris", "days": 3}
    assert r.choices[0].finish_reason == "tool_calls"
    chunks = list(oai.chat.completions.create(**_forced_json(bare_tools_model), stream=True))
    streamed = [c for ch in chunks if ch.choices for c in ch.choices[0].delta.tool_calls or []]
    assert len(streamed) == 1 and streamed[0].function.name == "get_weather"


def test_none_suppresses_calls(oai: openai.OpenAI, bare_tools_model: str) -> None:
    r = oai.chat.completions.create(**_forced_json(bare_tools_model, tool_choice="none"))
    assert not r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "stop"
    assert json.loads(r.choices[0].message.content or "") == {
        "name": "get_weather",
        "arguments": {"city": "Paris", "days": 3},
    }


def test_auto_ollama_client_tools(live: LiveServer, tools_model: str) -> None:
    """The official client with tools (auto): a normal reply or a call, never a broken one."""
    r = ollama.Client(host=live.url).chat(
        tools_model, messages=ASK, tools=TOOLS, options={"num_predict": 24, "temperature": 0}
    )
    for call in r.message.tool_calls or []:
        jsonschema.validate(call.function.arguments, SCHEMAS[call.function.name])
    assert "<tool_call>" not in (r.message.content or "") or not r.message.tool_calls


HISTORY: list[Any] = [
    *ASK,
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}}
        ],
    },
    {"role": "tool", "content": '{"forecast": "sunny", "high": 24}', "tool_name": "get_weather"},
]


def test_tool_results_render_through_the_template(live: LiveServer, tools_model: str) -> None:
    body = {"model": tools_model, "messages": HISTORY, "tools": TOOLS, "stream": False}
    with live.client() as http:
        r = http.post("/api/chat", json={**body, "_debug_render_only": True})
    assert r.status_code == 200, r.text
    rendered = r.json()["_debug_info"]["rendered_template"]
    assert '{"type": "function", "function": {"name":"get_weather"' in rendered
    assert (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris","days":3}}' in rendered
    )
    assert '<tool_response>\n{"forecast": "sunny", "high": 24}\n</tool_response>' in rendered
    assert rendered.endswith("<|im_start|>assistant\n")


def test_openai_tool_messages_render_the_same(
    live: LiveServer, oai: openai.OpenAI, tools_model: str
) -> None:
    """OpenAI's shape (arguments as a string, tool_call_id) renders like the native one."""
    messages: list[Any] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc12345",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "days": 3}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_abc12345",
            "content": '{"forecast": "sunny", "high": 24}',
        },
    ]
    r = oai.chat.completions.create(model=tools_model, messages=messages, tools=TOOLS, max_tokens=1)
    with live.client() as http:
        native = http.post(
            "/api/chat",
            json={
                "model": tools_model,
                "messages": HISTORY,
                "tools": TOOLS,
                "_debug_render_only": True,
                "stream": False,
            },
        ).json()["_debug_info"]["rendered_template"]
        tokens = http.post(
            "/api/tokenize", json={"model": tools_model, "content": native, "add_special": True}
        ).json()["tokens"]
    assert r.usage is not None and r.usage.prompt_tokens == len(tokens)


def test_tools_need_a_tool_template(live: LiveServer, oai: openai.OpenAI) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama.Client(host=live.url).chat(DEFAULT_MODEL, messages=ASK, tools=TOOLS)
    assert info.value.status_code == 400
    assert info.value.error == f"{DEFAULT_MODEL} does not support tools"
    with pytest.raises(openai.BadRequestError, match="does not support tools"):
        oai.chat.completions.create(model=DEFAULT_MODEL, messages=ASK, tools=TOOLS)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not in tools"),
        ({"tool_choice": "required", "response_format": {"type": "json_object"}}, "format"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        (
            {
                "tool_choice": "required",
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": "x"}}}
                ],
            },
            "tool 'f'",
        ),
    ],
)
def test_bad_tool_choice_is_400(
    live: LiveServer, tools_model: str, fields: dict[str, Any], message: str
) -> None:
    body = {"model": tools_model, "messages": ASK, "tools": TOOLS, **fields}
    with live.client() as http:
        r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]
