"""Go text/template rendering of Ollama template layers.

Expected outputs are written by hand from Go's rules (trim markers eat all adjacent spaces,
tabs and newlines; ``else if`` nests; map keys sort; ``json`` escapes ``<>&``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from server.engine.gotemplate import (
    MISSING,
    GoMap,
    GoSlice,
    GoStruct,
    GoTemplate,
    GoTemplateError,
    PropertyType,
    is_go_template,
    looks_like_jinja,
    render_chat,
    tool_value,
)


def render(src: str, data: object = None, **kw: Any) -> str:
    return GoTemplate.parse(src).render({} if data is None else data, **kw)


# --- text, trimming, comments -----------------------------------------------------------------


def test_plain_text_and_fields() -> None:
    assert render("Hello, {{ .Name }}!", {"Name": "Ada"}) == "Hello, Ada!"
    assert render("no actions at all") == "no actions at all"


def test_trim_markers_remove_all_adjacent_whitespace_including_newlines() -> None:
    src = "a \n\t {{- .X -}} \r\n\n b\n{{- .Y }}  \n{{ .Z -}}\n\n c"
    assert render(src, {"X": 1, "Y": 2, "Z": 3}) == "a1b2  \n3c"


def test_minus_without_space_is_a_number_not_a_trim_marker() -> None:
    assert render("x {{-3}} y") == "x -3 y"
    assert render("x {{ 3 -}} y") == "x 3y"


def test_comments_vanish_and_can_trim() -> None:
    assert render("a{{/* one */}}b") == "ab"
    assert render("a \n{{- /* multi\nline */ -}}\n b") == "ab"


# --- control structures -----------------------------------------------------------------------


def test_nested_if_else_if_else() -> None:
    src = (
        "{{ if eq .N 1 }}one{{ else if eq .N 2 }}two"
        "{{ else if gt .N 10 }}{{ if .Big }}huge{{ else }}big{{ end }}{{ else }}other{{ end }}"
    )
    assert [render(src, {"N": n, "Big": n > 100}) for n in (1, 2, 50, 500, 5)] == [
        "one",
        "two",
        "big",
        "huge",
        "other",
    ]


def test_truthiness_follows_go() -> None:
    src = "{{ if .V }}T{{ else }}F{{ end }}"
    falsy = [False, 0, 0.0, "", [], {}, None, GoSlice(nil=True)]
    truthy = [True, 1, -1, 0.5, "x", [0], {"k": 0}, GoStruct({})]
    assert [render(src, {"V": v}) for v in falsy] == ["F"] * len(falsy)
    assert [render(src, {"V": v}) for v in truthy] == ["T"] * len(truthy)
    assert render(src, {}) == "F"  # a missing map key is nil


def test_range_with_index_value_and_else() -> None:
    src = "{{ range $i, $x := .L }}{{ $i }}={{ $x }};{{ else }}empty{{ end }}"
    assert render(src, {"L": ["a", "b"]}) == "0=a;1=b;"
    assert render(src, {"L": []}) == "empty"
    assert render(src, {}) == "empty"


def test_range_single_variable_dot_and_root() -> None:
    src = "{{ range $x := .L }}[{{ $x }}|{{ . }}|{{ $.Sep }}]{{ end }}"
    assert render(src, {"L": [1, 2], "Sep": "/"}) == "[1|1|/][2|2|/]"


def test_range_over_map_visits_keys_in_sorted_order() -> None:
    src = "{{ range $k, $v := .M }}{{ $k }}:{{ $v }} {{ end }}"
    assert render(src, {"M": {"b": 2, "c": 3, "a": 1}}) == "a:1 b:2 c:3 "


def test_range_over_an_int() -> None:
    assert render("{{ range 3 }}{{ . }}{{ end }}") == "012"


def test_break_and_continue() -> None:
    src = (
        "{{ range .L }}{{ if eq . 2 }}{{ continue }}{{ end }}"
        "{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}"
    )
    assert render(src, {"L": [1, 2, 3, 4, 5]}) == "13"


def test_with_else_and_else_with() -> None:
    src = "{{ with .A }}<{{ . }}>{{ else with .B }}({{ . }}){{ else }}none{{ end }}"
    assert render(src, {"A": "a", "B": "b"}) == "<a>"
    assert render(src, {"A": "", "B": "b"}) == "(b)"
    assert render(src, {}) == "none"


def test_dot_changes_inside_with_and_range() -> None:
    src = "{{ with .User }}{{ .Name }}{{ range .Tags }}/{{ . }}{{ end }}{{ end }}"
    assert render(src, {"User": {"Name": "ada", "Tags": ["x", "y"]}}) == "ada/x/y"


# --- variables --------------------------------------------------------------------------------


def test_declare_assign_and_scope() -> None:
    src = (
        "{{ $x := 1 }}{{ $last := 0 }}"
        "{{ range $i, $_ := .L }}{{ $y := $i }}{{ $last = $y }}{{ end }}"
        "{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}:{{ $last }}"
    )
    assert render(src, {"L": ["a", "b", "c"]}) == "21:2"


def test_dollar_is_the_root_and_variable_field_chains() -> None:
    data = {"Messages": [{"Role": "user", "Meta": {"Lang": "en"}}], "Title": "T"}
    src = "{{ range $m := .Messages }}{{ $m.Role }}/{{ $m.Meta.Lang }}/{{ $.Title }}{{ end }}"
    assert render(src, data) == "user/en/T"


def test_field_chains_on_structs_and_maps() -> None:
    call = GoStruct({"Function": GoStruct({"Name": "f", "Arguments": {"a": 1}})})
    assert render("{{ .Function.Name }} {{ .Function.Arguments.a }}", call) == "f 1"


def test_missing_struct_field_renders_empty_and_falsy() -> None:
    msg = GoStruct({"Role": "user"})
    src = "[{{ .Nope }}]{{ if .Nope }}yes{{ else }}no{{ end }}{{ len .Nope }}{{ .Nope.Deeper }}"
    assert render(src, msg) == "[]no0"
    assert msg.get("Nope") is MISSING


def test_missing_map_key_prints_no_value_like_go() -> None:
    assert render("{{ .Nope }}|{{ .Nope.Deeper }}", {}) == "<no value>|<no value>"


# --- pipelines and functions ------------------------------------------------------------------


def test_pipes_pass_the_value_as_last_argument() -> None:
    assert render('{{ .N | printf "%03d" }}', {"N": 7}) == "007"
    assert render('{{ "a" | printf "%s-%s" "b" }}') == "b-a"
    assert render('{{ .L | len | printf "%d items" }}', {"L": [1, 2]}) == "2 items"


def test_parenthesised_calls() -> None:
    src = "{{ if eq (len (slice .L 1)) 2 }}{{ (index .L 0).Role }}{{ end }}"
    assert render(src, {"L": [{"Role": "sys"}, {}, {}]}) == "sys"


def test_eq_is_variadic() -> None:
    src = '{{ eq .R "user" "tool" }}'
    assert [render(src, {"R": r}) for r in ("user", "tool", "assistant")] == [
        "true",
        "true",
        "false",
    ]


def test_comparisons() -> None:
    src = '{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2 }} {{ ne .A "x" }}'
    assert render(src, {"A": "y"}) == "true true true false true"


def test_comparing_different_types_is_an_error() -> None:
    with pytest.raises(GoTemplateError, match="incompatible types"):
        render('{{ eq 1 "1" }}')
    assert render("{{ eq .Missing 1 }}", {}) == "false"  # nil compares unequal, no error


def test_and_or_short_circuit_and_return_the_deciding_value() -> None:
    assert render('{{ and 1 0 "x" }}|{{ and 1 "x" }}|{{ or 0 "" "y" }}|{{ or 0 "" }}') == ("0|x|y|")
    # The failing call after the deciding argument is never evaluated.
    assert render("{{ or .A (index .L 99) }}", {"A": "ok", "L": []}) == "ok"
    assert render("{{ and .Empty (index .L 99) }}", {"Empty": "", "L": []}) == ""
    assert render("{{ not 0 }} {{ not .L }}", {"L": [1]}) == "true false"


def test_len_index_slice() -> None:
    data = {"L": ["a", "b", "c"], "M": {"k": "v"}, "S": "héllo", "N": [[1, 2], [3]]}
    assert render("{{ len .L }} {{ len .M }} {{ len .S }}", data) == "3 1 6"  # bytes
    assert render('{{ index .L 1 }} {{ index .M "k" }} {{ index .N 1 0 }}', data) == "b v 3"
    assert render('{{ index .M "zz" }}', data) == "<no value>"
    assert render("{{ slice .L 1 }} {{ slice .L 0 2 }} {{ slice .S 0 1 }}", data) == "[b c] [a b] h"
    with pytest.raises(GoTemplateError, match="index out of range"):
        render("{{ index .L 3 }}", data)


def test_printf_verbs() -> None:
    src = '{{ printf "%s|%d|%v|%q|%5.2f|%-4s|%x|%t|%%" .S .I .L .S .F .S .I true }}'
    data = {"S": 'a"b', "I": 255, "L": [1, "x"], "F": 3.14159}
    assert render(src, data) == 'a"b|255|[1 x]|"a\\"b"| 3.14|a"b |ff|true|%'
    assert render('{{ printf "%d %s" "x" }}') == "%!d(string=x) %!s(MISSING)"


def test_print_and_println() -> None:
    assert render('{{ print "a" 1 2 "b" }}') == "a1 2b"
    assert render('{{ println "a" 1 }}') == "a 1\n"


def test_go_printing_of_values() -> None:
    data = {"F": 1e6, "G": 2.5, "H": 3.0, "L": [1, "a", None], "M": {"b": 1, "a": [2]}, "B": True}
    src = "{{ .F }} {{ .G }} {{ .H }} {{ .L }} {{ .M }} {{ .B }} {{ print nil }}"
    assert render(src, data) == "1e+06 2.5 3 [1 a <nil>] map[a:[2] b:1] true <nil>"


def test_literals() -> None:
    src = (
        r'{{ "tab\there\u00e9\x41" }}|{{ `raw\n` }}|'
        + "{{ 0x1F }}|{{ 1_000 }}|{{ 1.5e3 }}|{{ 'a' }}"
    )
    assert render(src) == "tab\thereéA|raw\\n|31|1000|1500|97"


def test_json_marshals_like_go() -> None:
    data = {
        "M": {"z": 1, "a": "<b>&</b>", "f": 2.0, "n": None, "u": "\u2028é\n"},
        "S": GoStruct({"Zed": 1, "Alpha": [True, 1.5]}),
    }
    assert render("{{ json .M }}", data) == (
        '{"a":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e","f":2,"n":null,"u":"\\u2028é\\n","z":1}'
    )
    # Structs keep their field order; a struct with a JSON form marshals that.
    assert render("{{ json .S }}", data) == '{"Zed":1,"Alpha":[true,1.5]}'
    shown = GoStruct({"A": 1}, json_value=GoStruct({"a": 1}), stringer=True)
    assert render("{{ json . }} {{ . }}", shown) == '{"a":1} {"a":1}'


def test_json_of_nan_is_empty_like_ollama() -> None:
    assert render("[{{ json .F }}]", {"F": float("nan")}) == "[]"


def test_stringer_collections_print_as_json() -> None:
    data = {"Args": GoMap({"b": 1, "a": "x"}, stringer=True), "T": GoSlice([1], stringer=True)}
    assert render("{{ .Args }} {{ .T }}", data) == '{"a":"x","b":1} [1]'
    assert render("{{ .P }}|{{ json .P }}", {"P": PropertyType(["string"])}) == 'string|"string"'


def test_dates_and_typescript_types() -> None:
    today = dt.date.today()
    out = render("{{ currentDate }} {{ yesterdayDate }}")
    assert out in {
        f"{today.isoformat()} {(today - dt.timedelta(days=1)).isoformat()}",
        # the day may roll over between the two calls
        f"{(today + dt.timedelta(days=1)).isoformat()} {today.isoformat()}",
    }
    tool = tool_value(
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "a": {"type": "integer"},
                        "b": {"type": ["string", "null"]},
                        "c": {"anyOf": [{"type": "boolean"}, {"type": "array"}]},
                        "d": {"description": "untyped"},
                    },
                },
            },
        }
    )
    src = (
        "{{ range $k, $p := .Function.Parameters.Properties }}"
        "{{ $k }}: {{ toTypeScriptType $p }}; {{ end }}"
    )
    assert render(src, tool) == "a: number; b: string | null; c: boolean | any[]; d: any; "


def test_html_js_urlquery() -> None:
    assert render("{{ html \"<a href='x'>&</a>\" }}") == "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    assert render('{{ urlquery "a b&c" }}') == "a+b%26c"
    assert render('{{ js "a\'b<" }}') == "a\\'b\\u003C"


# --- errors and bounds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "line", "message"),
    [
        ("ok\n{{ if .X }}\n{{ end", 3, "unclosed action"),
        ("{{ end }}", 1, "unexpected {{end}}"),
        ("a\nb\n{{ range .L }}x", 3, "unexpected EOF"),
        ("{{ foo .X }}", 1, "function 'foo' not defined"),
        ("{{ $x }}", 1, "undefined variable '$x'"),
        ("{{ break }}", 1, "{{break}} outside {{range}}"),
        ("{{ if }}{{ end }}", 1, "missing value for if"),
        ('{{ "abc }}', 1, "unterminated quoted string"),
        ("{{ .X | 1 }}", 1, "non executable command in pipeline stage 2"),
        ("{{ .X }\n}", 2, "unclosed action"),
        ("{{ (.X }}", 1, "unclosed left paren"),
        ("{{ /* c */ }}", 1, "unexpected '/'"),  # a comment must touch the delimiter
        ('{{ define "x" }}{{ end }}', 1, "not supported"),
        ("{{ if .A }}{{ else }}{{ else }}{{ end }}", 1, "expected end"),
    ],
)
def test_syntax_errors_carry_a_line(src: str, line: int, message: str) -> None:
    with pytest.raises(GoTemplateError) as info:
        GoTemplate.parse(src)
    assert isinstance(info.value, ValueError)
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"line {line}:")


def test_runtime_errors_carry_a_line() -> None:
    t = GoTemplate.parse("a\n\n{{ index .L 5 }}")
    with pytest.raises(GoTemplateError, match="index out of range") as info:
        t.render({"L": []})
    assert info.value.line == 3
    with pytest.raises(GoTemplateError, match="can't evaluate field X in type string"):
        render("{{ .S.X }}", {"S": "str"})
    with pytest.raises(GoTemplateError, match="wrong number of args for len"):
        render("{{ len 1 2 }}")
    with pytest.raises(GoTemplateError, match="range can't iterate over"):
        render("{{ range .S }}{{ end }}", {"S": "abc"})


def test_deeply_nested_templates_are_refused() -> None:
    with pytest.raises(GoTemplateError, match="too deep"):
        GoTemplate.parse("{{ if 1 }}" * 200 + "{{ end }}" * 200)
    with pytest.raises(GoTemplateError, match="too deep"):
        GoTemplate.parse("{{ " + "(" * 500 + "1" + ")" * 500 + " }}")


def test_a_huge_range_stops_at_the_deadline() -> None:
    t = GoTemplate.parse("{{ range .L }}{{ range $.L }}{{ end }}{{ end }}")
    with pytest.raises(GoTemplateError, match="deadline"):
        t.render({"L": list(range(100_000))}, deadline_s=0.2)
    with pytest.raises(GoTemplateError, match="deadline"):
        render("{{ range 1000000000000 }}{{ end }}", deadline_s=0.2)


def test_output_is_capped() -> None:
    t = GoTemplate.parse("{{ range .L }}{{ $.S }}{{ end }}")
    data = {"L": list(range(1000)), "S": "x" * 100}
    assert len(t.render(data, max_output=100_000)) == 100_000
    with pytest.raises(GoTemplateError, match="exceeds 99999 characters"):
        t.render(data, max_output=99_999)


def test_strings_built_in_variables_are_capped_too() -> None:
    src = '{{ $s := "ab" }}{{ range .L }}{{ $s = printf "%s%s" $s $s }}{{ end }}done'
    with pytest.raises(GoTemplateError, match="exceeds"):
        render(src, {"L": list(range(64))}, max_output=1 << 20)
    with pytest.raises(GoTemplateError, match="too large"):
        render('{{ printf "%999999999d" 1 }}', max_output=1 << 20)


def test_hostile_data_nesting_is_an_error_not_a_crash() -> None:
    deep: object = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(GoTemplateError, match="nested too deeply"):
        render("{{ json .D }}", {"D": deep})


# --- uses() and Go/Jinja detection ------------------------------------------------------------


def test_uses_reports_fields_anywhere() -> None:
    t = GoTemplate.parse(
        "{{ if .System }}{{ .System }}{{ end }}{{ range $.Messages }}{{ .Role }}{{ end }}"
        "{{ with (len .Tools) }}{{ end }}"
    )
    assert t.uses("Messages") and t.uses(".Messages") and t.uses("messages")
    assert t.uses("Tools") and t.uses("System") and t.uses("Role")
    assert not t.uses("Suffix") and not t.uses("Response") and not t.uses("Prompt")
    assert GoTemplate.parse("{{ .Prompt }}<FIM>{{ .Suffix }}").uses("Suffix")


JINJA_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@pytest.mark.parametrize(
    "src",
    [
        JINJA_CHATML,
        "{{ messages[0].content }}",
        "{{ bos_token }}{{ content | trim }}",
        "{{- message.content -}}",
        "{{ tools | tojson }}",
        "{{ x if y else z }}",
    ],
)
def test_jinja_is_recognised(src: str) -> None:
    assert looks_like_jinja(src)
    assert not is_go_template(src)


@pytest.mark.parametrize(
    "src",
    [
        "{{ .Prompt }}",
        "{{- if .System }}{{ .System }}{{ end }}{{ range $i, $m := .Messages }}{{ end }}",
        '{{ if eq .Role "user" }}{{ .Content | printf "%s" }}{{ end }}',
        "{{ len (slice $.Messages 0) }}",
        "{{ json $.Tools }}{{/* c */}}",
        "plain text",
    ],
)
def test_go_is_recognised(src: str) -> None:
    assert not looks_like_jinja(src)
    assert is_go_template(src)


def test_invalid_go_is_not_a_go_template() -> None:
    assert not is_go_template("{{ if .X }}")


# --- Ollama's chat rendering ------------------------------------------------------------------

DEFAULT_CHATML = """\
{{- if .Messages }}{{- range $i, $_ := .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ else }}{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""


def test_default_model_template_renders_chatml() -> None:
    t = GoTemplate.parse(DEFAULT_CHATML)
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    assert render_chat(t, messages=messages) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\nParis.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_default_template_else_branch_and_model_system_prompt() -> None:
    t = GoTemplate.parse(DEFAULT_CHATML)
    assert t.render({"System": "S", "Prompt": "P", "Response": "R"}) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nP<|im_end|>\n"
        "<|im_start|>assistant\nR<|im_end|>"
    )
    # The model's SYSTEM becomes the first message unless the chat brings its own.
    assert render_chat(t, system="Be kind.", messages=[{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    own = [{"role": "system", "content": "Mine."}, {"role": "user", "content": "Hi"}]
    assert render_chat(t, system="Be kind.", messages=own).startswith(
        "<|im_start|>system\nMine.<|im_end|>\n<|im_start|>user"
    )


def test_consecutive_messages_of_one_role_are_collated() -> None:
    t = GoTemplate.parse(DEFAULT_CHATML)
    messages = [
        {"role": "system", "content": "A"},
        {"role": "system", "content": "B"},
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
    ]
    assert render_chat(t, messages=messages) == (
        "<|im_start|>system\nA\n\nB<|im_end|>\n<|im_start|>user\none\n\ntwo<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather & temperature for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "x"},
                "city": {"type": "string", "description": "City name"},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "description": "IANA name"}},
            "required": ["timezone"],
        },
    },
}
# Ollama's wire form: struct field order, property keys sorted, unknown keywords dropped.
WEATHER_FUNCTION_JSON = (
    '{"name":"get_weather","description":"Get the weather \\u0026 temperature for a city",'
    '"parameters":{"type":"object","required":["city"],"properties":{'
    '"city":{"type":"string","description":"City name"},'
    '"unit":{"type":"string","enum":["celsius","fahrenheit"]}}}}'
)
WEATHER_JSON = '{"type":"function","function":' + WEATHER_FUNCTION_JSON + "}"
TIME_JSON = (
    '{"type":"function","function":{"name":"get_time","description":"Current time in a '
    'timezone","parameters":{"type":"object","required":["timezone"],"properties":{'
    '"timezone":{"type":"string","description":"IANA name"}}}}}'
)


def test_tool_values_offer_go_fields_and_ollama_json() -> None:
    t = GoTemplate.parse(
        "{{ if .Messages }}{{ end }}{{ range .Tools }}{{ .Type }} {{ .Function.Name }} "
        "{{ .Function.Parameters.Required }} {{ json . }}|{{ .Function }}{{ end }}"
    )
    out = render_chat(t, messages=[{"role": "user", "content": "x"}], tools=[WEATHER])
    assert out == f"function get_weather [city] {WEATHER_JSON}|{WEATHER_FUNCTION_JSON}"
    messages_only = GoTemplate.parse("{{ .Tools }}{{ range .Messages }}{{ end }}")
    assert render_chat(messages_only, tools=[WEATHER, TIME]) == f"[{WEATHER_JSON},{TIME_JSON}]"
    assert render_chat(messages_only) == "null"


CHATML_TOOLS = """\
{{- if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}
You can call these tools:
<tools>
{{- range .Tools }}
{{ json . }}
{{- end }}
</tools>
Reply with <tool_call>{"name": <name>, "arguments": <args>}</tool_call>.
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}
{{- range .ToolCalls }}<tool_call>{"name": "{{ .Function.Name }}", "arguments": \
{{ json .Function.Arguments }}}</tool_call>
{{- end }}
{{- end }}
{{- if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""

TOOL_CHAT = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "What's the weather in Paris?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"unit": "celsius", "city": "Paris"}}}
        ],
    },
    {"role": "tool", "content": '{"temperature": 18, "condition": "sunny"}', "tool_name": "w"},
    {"role": "assistant", "content": "It is 18°C and sunny in Paris."},
    {"role": "user", "content": "Thanks! And in Rome?"},
]


def test_chatml_with_tools_and_tool_results() -> None:
    t = GoTemplate.parse(CHATML_TOOLS)
    assert render_chat(t, messages=TOOL_CHAT, tools=[WEATHER]) == (
        "<|im_start|>system\n"
        "You are a weather bot.\n"
        "You can call these tools:\n"
        "<tools>\n"
        f"{WEATHER_JSON}\n"
        "</tools>\n"
        'Reply with <tool_call>{"name": <name>, "arguments": <args>}</tool_call>.<|im_end|>\n'
        "<|im_start|>user\n"
        "What's the weather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city":"Paris","unit":"celsius"}}'
        "</tool_call><|im_end|>\n"
        "<|im_start|>user\n"
        "<tool_response>\n"
        '{"temperature": 18, "condition": "sunny"}\n'
        "</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
        "It is 18°C and sunny in Paris.<|im_end|>\n"
        "<|im_start|>user\n"
        "Thanks! And in Rome?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chatml_without_tools() -> None:
    t = GoTemplate.parse(CHATML_TOOLS)
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there!"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert render_chat(t, messages=messages) == (
        "<|im_start|>system\nYou are helpful.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there!<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # A tool call on the last message leaves the assistant turn open.
    last_call = [TOOL_CHAT[1], TOOL_CHAT[2]]
    assert render_chat(t, messages=last_call) == (
        "<|im_start|>user\nWhat's the weather in Paris?<|im_end|>\n"
        '<|im_start|>assistant\n<tool_call>{"name": "get_weather", "arguments": '
        '{"city":"Paris","unit":"celsius"}}</tool_call>'
    )


LLAMA3_TOOLS = """\
{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>

{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

You have access to the following functions. To call a function, respond with JSON of the \
form {"name": function name, "parameters": dictionary of argument name and its value}.
{{- range .Tools }}

{{ json .Function }}
{{- end }}
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>

{{- if .ToolCalls }}
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": \
{{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- if and $last (ne .Role "assistant") }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}"""


def test_llama3_without_tools() -> None:
    t = GoTemplate.parse(LLAMA3_TOOLS)
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ]
    assert render_chat(t, messages=messages) == (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nTell me a joke.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama3_with_tools_and_ipython_results() -> None:
    t = GoTemplate.parse(LLAMA3_TOOLS)
    messages = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": '{"temperature": 18}'},
    ]
    assert render_chat(t, messages=messages, tools=[WEATHER]) == (
        "<|start_header_id|>system<|end_header_id|>\n\n"
        "You have access to the following functions. To call a function, respond with JSON of "
        'the form {"name": function name, "parameters": dictionary of argument name and its '
        "value}.\n\n"
        f"{WEATHER_FUNCTION_JSON}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat's the weather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n"
        '{"name": "get_weather", "parameters": {"city":"Paris"}}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n{"temperature": 18}<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


MISTRAL_TOOLS = """\
{{- $lastUser := -1 }}
{{- range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}
{{- range $index, $_ := .Messages }}
{{- if eq .Role "user" }}
{{- if and $.Tools (eq $index $lastUser) }}[AVAILABLE_TOOLS] {{ json $.Tools }}[/AVAILABLE_TOOLS]
{{- end }}[INST] {{ if and $.System (eq $index $lastUser) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }}
{{- if .Content }} {{ .Content }}
{{- else if .ToolCalls }}[TOOL_CALLS] [
{{- range $j, $call := .ToolCalls }}{{ if $j }}, {{ end }}{"name": "{{ $call.Function.Name }}", \
"arguments": {{ json $call.Function.Arguments }}}
{{- end }}]
{{- end }}</s>
{{- else if eq .Role "tool" }}[TOOL_RESULTS] {"content": {{ .Content }}} [/TOOL_RESULTS]
{{- end }}
{{- end }}"""


def test_mistral_without_tools() -> None:
    t = GoTemplate.parse(MISTRAL_TOOLS)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a color."},
    ]
    assert render_chat(t, messages=messages) == (
        "[INST] Hi[/INST] Hello!</s>[INST] Be brief.\n\nName a color.[/INST]"
    )


def test_mistral_with_tools_and_tool_results() -> None:
    t = GoTemplate.parse(MISTRAL_TOOLS)
    messages = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": '{"timezone": "Europe/Paris"}'}},
            ],
        },
        {"role": "tool", "content": '{"temperature": 18}'},
        {"role": "tool", "content": '"14:05"'},
        {"role": "user", "content": "Thanks, summarize."},
    ]
    assert render_chat(t, messages=messages, tools=[WEATHER, TIME]) == (
        "[INST] Weather and time in Paris?[/INST]"
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city":"Paris"}}, '
        '{"name": "get_time", "arguments": {"timezone":"Europe/Paris"}}]</s>'
        '[TOOL_RESULTS] {"content": {"temperature": 18}} [/TOOL_RESULTS]'
        '[TOOL_RESULTS] {"content": "14:05"} [/TOOL_RESULTS]'
        f"[AVAILABLE_TOOLS] [{WEATHER_JSON},{TIME_JSON}][/AVAILABLE_TOOLS]"
        "[INST] Thanks, summarize.[/INST]"
    )


LLAMA2_LEGACY = (
    "[INST] {{ if .System }}<<SYS>>{{ .System }}<</SYS>>\n\n{{ end }}"
    "{{ .Prompt }} [/INST] {{ .Response }}</s>"
)


def test_legacy_mode_renders_turn_by_turn_and_cuts_after_the_response() -> None:
    t = GoTemplate.parse(LLAMA2_LEGACY)
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    assert render_chat(t, messages=messages) == (
        "[INST] <<SYS>>S<</SYS>>\n\nu1 [/INST] a1</s>[INST] u2 [/INST] "
    )


def test_legacy_mode_continues_a_partial_assistant_message() -> None:
    t = GoTemplate.parse(LLAMA2_LEGACY)
    messages = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "Once"}]
    assert render_chat(t, messages=messages) == "[INST] u [/INST] Once"


def test_legacy_mode_appends_the_response_when_the_template_lacks_it() -> None:
    t = GoTemplate.parse("{{ if .System }}{{ .System }}\n{{ end }}USER: {{ .Prompt }}\nBOT: ")
    messages = [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    assert render_chat(t, system="S", messages=messages) == ("S\nUSER: u1\nBOT: a1USER: u2\nBOT: ")


def test_legacy_cut_drops_trailing_conditionals() -> None:
    t = GoTemplate.parse(DEFAULT_CHATML.replace(".Messages", ".Msgs"))
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    assert render_chat(t, messages=messages) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo"
    )


def test_insert_mode_uses_prompt_and_suffix() -> None:
    t = GoTemplate.parse(
        "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>"
        "{{- else if .Messages }}{{ range .Messages }}{{ .Content }}{{ end }}{{ end }}"
    )
    assert render_chat(t, prompt="def f(", suffix="return x") == "<PRE> def f( <SUF>return x <MID>"
    assert render_chat(t, messages=[{"role": "user", "content": "hi"}]) == "hi"


def test_thinking_flags_reach_the_template() -> None:
    t = GoTemplate.parse(
        "{{ range .Messages }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
        "{{ .Content }}{{ end }}|{{ .Think }} {{ .IsThinkSet }} {{ .ThinkLevel }}"
    )
    messages = [{"role": "assistant", "content": "A", "thinking": "hmm"}]
    assert render_chat(t, messages=messages) == "<think>hmm</think>A|false false "
    assert render_chat(t, messages=messages, think=True, think_level="high") == (
        "<think>hmm</think>A|true true high"
    )


def test_messages_accept_go_field_names_and_tool_metadata() -> None:
    t = GoTemplate.parse(
        "{{ range .Messages }}{{ .Role }}:{{ .ToolName }}:{{ .ToolCallID }}"
        "{{ range .ToolCalls }}[{{ .ID }} {{ .Function.Index }} {{ .Function.Name }}]{{ end }};"
        "{{ end }}"
    )
    messages = [
        {"Role": "assistant", "ToolCalls": [{"ID": "c1", "Function": {"Index": 2, "Name": "f"}}]},
        {"role": "tool", "content": "r", "tool_name": "f", "tool_call_id": "c1"},
        {"role": "tool", "content": "r2", "tool_name": "f"},
    ]
    assert render_chat(t, messages=messages) == "assistant::[c1 2 f];tool:f:c1;tool:f:;"


def test_render_chat_is_bounded() -> None:
    t = GoTemplate.parse(
        "{{ range .Messages }}{{ range $.Messages }}{{ .Content }}{{ end }}{{ end }}"
    )
    messages = [{"role": r, "content": "x" * 100} for r in ("user", "assistant") * 25]
    with pytest.raises(GoTemplateError, match="exceeds"):
        render_chat(t, messages=messages, max_output=10_000)
