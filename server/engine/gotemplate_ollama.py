"""Ollama's way of executing a template layer (``template/template.go`` ``Execute``).

Three modes, chosen like Ollama does:

- insert (fill-in-the-middle): ``prompt`` and ``suffix`` both given; dot is
  ``{Prompt, Suffix, Response: ""}``.
- messages: the template mentions ``.Messages``; it runs once with ``{System, Messages, Tools,
  Response: ""}`` and must itself end with the assistant header.
- legacy: otherwise it runs once per (system, user, assistant) turn with ``{System, Prompt,
  Response}``; for the last turn everything after ``{{ .Response }}`` is cut off, so the
  prompt ends where the model's answer begins.

Messages are collated first: consecutive messages of one role (tool results excepted) are
merged with a blank line, and all system messages are joined into ``.System``. Every mode also
sees ``Think``, ``ThinkLevel`` and ``IsThinkSet``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from server.engine.gotemplate_ast import (
    Action,
    Arg,
    Command,
    Field,
    If,
    Node,
    Pipe,
    Range,
    With,
)
from server.engine.gotemplate_exec import execute
from server.engine.gotemplate_values import GoMap, GoSlice, GoStruct, PropertyType

if TYPE_CHECKING:
    from server.engine.gotemplate import GoTemplate

__all__ = ["cut_after_response", "message_value", "render_chat", "tool_value", "with_response"]

_RESPONSE = Action(Pipe(0, (), False, (Command((Field(("Response",)),)),)))


def _as_mapping(value: object) -> Mapping[str, object]:
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        dumped = dump()
        if isinstance(dumped, Mapping):
            return dumped
    raise TypeError(f"expected a mapping, got {type(value).__name__}")


def _pick(m: Mapping[str, object], *names: str) -> object:
    for name in names:
        value = m.get(name)
        if value is not None:
            return value
    return None


def _sequence(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _arguments(value: object) -> object:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, Mapping):
        return GoMap(value, stringer=True)
    return GoMap(stringer=True) if value is None else value


def _tool_call(call: object) -> GoStruct:
    c = _as_mapping(call)
    f = _as_mapping(_pick(c, "function", "Function") or {})
    index = _pick(f, "index", "Index")
    function = GoStruct(
        {
            "Index": index if isinstance(index, int) else 0,
            "Name": _str(_pick(f, "name", "Name")),
            "Arguments": _arguments(_pick(f, "arguments", "Arguments")),
        }
    )
    return GoStruct({"ID": _str(_pick(c, "id", "ID")), "Function": function})


def message_value(message: object) -> GoStruct:
    """One chat message as Ollama's ``templateMessage`` (``.Role``, ``.Content``, ``.ToolCalls``…).

    Accepts wire names (``role``, ``tool_calls``…), Go names (``Role``, ``ToolCalls``…), a
    pydantic model, or an already built GoStruct.
    """
    if isinstance(message, GoStruct):
        return message
    m = _as_mapping(message)
    calls = _sequence(_pick(m, "tool_calls", "ToolCalls"))
    images = _sequence(_pick(m, "images", "Images"))
    return GoStruct(
        {
            "Role": _str(_pick(m, "role", "Role")),
            "Content": _str(_pick(m, "content", "Content")),
            "Thinking": _str(_pick(m, "thinking", "Thinking")),
            "Images": GoSlice(images, nil=not images),
            "ToolCalls": GoSlice((_tool_call(c) for c in calls), nil=not calls),
            "ToolName": _str(_pick(m, "tool_name", "ToolName")),
            "ToolCallID": _str(_pick(m, "tool_call_id", "ToolCallID")),
        }
    )


def _omit_empty(pairs: Sequence[tuple[str, object, bool]]) -> GoStruct:
    """A JSON object in field order; entries flagged omitempty are dropped when empty."""
    kept = {k: v for k, v, omit in pairs if not (omit and (v is None or v == [] or v == ""))}
    return GoStruct(kept)


def _property(schema: object, depth: int = 0) -> GoStruct:
    """A JSON-schema property as Ollama's ``api.ToolProperty`` (unknown keys are dropped)."""
    p = _as_mapping(schema) if depth < 32 else {}
    raw_type = p.get("type")
    names = [raw_type] if isinstance(raw_type, str) else _sequence(raw_type)
    types = PropertyType(str(t) for t in names)
    any_of = [_property(s, depth + 1) for s in _sequence(p.get("anyOf"))]
    enum = _sequence(p.get("enum"))
    nested = p.get("properties")
    props = (
        GoMap({k: _property(v, depth + 1) for k, v in nested.items()}, stringer=True)
        if isinstance(nested, Mapping)
        else None
    )
    fields = {
        "AnyOf": any_of,
        "Type": types,
        "Items": p.get("items"),
        "Description": _str(p.get("description")),
        "Enum": enum,
        "Properties": props,
    }
    json_form = _omit_empty(
        [
            ("anyOf", any_of, True),
            ("type", types, True),
            ("items", p.get("items"), True),
            ("description", fields["Description"], True),
            ("enum", enum, True),
            ("properties", props, True),
        ]
    )
    return GoStruct(fields, json_value=json_form)


def tool_value(tool: object) -> GoStruct:
    """One tool as Ollama's ``templateTool``: ``.Function.Name``, ``.Function.Parameters``…

    ``json`` of it gives Ollama's wire form (``{"type":"function","function":{...}}``, property
    keys sorted, schema keywords Ollama doesn't model dropped); ``{{ .Function }}`` prints that
    function's JSON.
    """
    if isinstance(tool, GoStruct):
        return tool
    t = _as_mapping(tool)
    f = _as_mapping(t.get("function") or {})
    params = _as_mapping(f.get("parameters") or {})
    required = _sequence(params.get("required"))
    props_raw = params.get("properties")
    props = (
        GoMap({k: _property(v) for k, v in props_raw.items()}, stringer=True)
        if isinstance(props_raw, Mapping)
        else None
    )
    p_fields = {
        "Type": _str(params.get("type")),
        "Defs": params.get("$defs"),
        "Items": params.get("items"),
        "Required": required,
        "Properties": props,
    }
    p_json = _omit_empty(
        [
            ("type", p_fields["Type"], False),
            ("$defs", params.get("$defs"), True),
            ("items", params.get("items"), True),
            ("required", required, True),
            ("properties", props, False),
        ]
    )
    parameters = GoStruct(p_fields, json_value=p_json, stringer=True)
    f_fields = {
        "Name": _str(f.get("name")),
        "Description": _str(f.get("description")),
        "Parameters": parameters,
    }
    f_json = GoStruct(
        {"name": f_fields["Name"], "description": f_fields["Description"], "parameters": p_json}
    )
    function = GoStruct(f_fields, json_value=f_json, stringer=True)
    t_json = _omit_empty(
        [
            ("type", _str(t.get("type")), False),
            ("items", t.get("items"), True),
            ("function", f_json, False),
        ]
    )
    return GoStruct(
        {"Type": _str(t.get("type")), "Items": t.get("items"), "Function": function},
        json_value=t_json,
    )


def _collate(messages: Sequence[GoStruct]) -> tuple[str, list[GoStruct]]:
    system: list[str] = []
    collated: list[GoStruct] = []
    for msg in messages:
        role = msg.get("Role")
        if role == "system":
            system.append(_str(msg.get("Content")))
        if collated and collated[-1].get("Role") == role and role != "tool":
            prev = collated[-1]
            merged = dict(prev.fields)
            merged["Content"] = f"{_str(prev.get('Content'))}\n\n{_str(msg.get('Content'))}"
            collated[-1] = GoStruct(merged)
        else:
            collated.append(msg)
    return "\n\n".join(system), collated


def with_response(template: GoTemplate) -> tuple[Node, ...]:
    """The template as Ollama runs it: ``{{ .Response }}`` appended when it mentions neither
    ``.Messages`` nor ``.Response``."""
    names = template.vars()
    if "messages" in names or "response" in names:
        return template.nodes
    return (*template.nodes, _RESPONSE)


def cut_after_response(nodes: Sequence[Node]) -> tuple[Node, ...]:
    """Drop everything after the first ``.Response`` field in an action (Ollama's deleteNode).

    Conditions of ``if``/``range``/``with`` are not searched, as in Ollama.
    """
    cut = False

    def walk_list(items: Sequence[Node]) -> tuple[Node, ...]:
        out: list[Node] = []
        for node in items:
            if cut:
                break
            kept = walk(node)
            if kept is not None:
                out.append(kept)
        return tuple(out)

    def walk_pipe(pipe: Pipe) -> Pipe | None:
        nonlocal cut
        cmds: list[Command] = []
        for cmd in pipe.cmds:
            args: list[Arg] = []
            for arg in cmd.args:
                if cut:
                    continue
                if isinstance(arg, Field) and "Response" in arg.idents:
                    cut = True
                    args.append(arg)
                elif isinstance(arg, Pipe):
                    inner = walk_pipe(arg)
                    if inner is not None:
                        args.append(inner)
                else:
                    args.append(arg)
            if not args:
                return None
            cmds.append(Command(tuple(args)))
        return Pipe(pipe.line, pipe.decls, pipe.is_assign, tuple(cmds))

    def walk(node: Node) -> Node | None:
        if isinstance(node, Action):
            pipe = walk_pipe(node.pipe)
            return None if pipe is None else Action(pipe)
        if isinstance(node, If | With | Range):
            body = walk_list(node.body)
            else_body = None if cut or node.else_body is None else walk_list(node.else_body)
            return type(node)(node.pipe, body, else_body)
        return node

    return walk_list(nodes)


def render_chat(
    template: GoTemplate,
    *,
    system: str | None = None,
    messages: Sequence[object] = (),
    tools: Sequence[object] | None = None,
    prompt: str = "",
    suffix: str = "",
    think: bool | None = None,
    think_level: str = "",
    max_output: int = 4 * 1024 * 1024,
    deadline_s: float = 2.0,
) -> str:
    """The prompt Ollama would build from this template, like ``template.Execute``.

    ``system`` is the model's default system prompt: it becomes a leading system message unless
    the conversation starts with one (Ollama's chat handler). ``think=None`` means the request
    did not set thinking (``.IsThinkSet`` false). Bounds as in ``GoTemplate.render``.
    """
    msgs = [message_value(m) for m in messages]
    if system and (not msgs or msgs[0].get("Role") != "system"):
        msgs.insert(0, message_value({"role": "system", "content": system}))
    deadline = time.monotonic() + deadline_s
    think_vars: dict[str, object] = {
        "Think": bool(think),
        "ThinkLevel": think_level,
        "IsThinkSet": think is not None,
    }
    nodes = with_response(template)
    system_text, collated = _collate(msgs)
    if prompt and suffix:
        data: dict[str, object] = {"Prompt": prompt, "Suffix": suffix, "Response": ""}
        return execute(nodes, data | think_vars, max_output=max_output, deadline=deadline)
    if "messages" in template.vars():
        data = {
            "System": system_text,
            "Messages": GoSlice(collated),
            "Tools": GoSlice(
                (tool_value(t) for t in tools or ()), stringer=True, nil=tools is None
            ),
            "Response": "",
        }
        return execute(nodes, data | think_vars, max_output=max_output, deadline=deadline)
    return _render_legacy(nodes, collated, think_vars, max_output, deadline)


def _render_legacy(
    nodes: tuple[Node, ...],
    messages: Sequence[GoStruct],
    think_vars: Mapping[str, object],
    max_output: int,
    deadline: float,
) -> str:
    out: list[str] = []
    turn = {"System": "", "Prompt": "", "Response": ""}

    def flush() -> None:
        budget = max_output - sum(map(len, out))
        data = {**turn, **think_vars}
        out.append(execute(nodes, data, max_output=budget, deadline=deadline))
        turn.update(System="", Prompt="", Response="")

    for msg in messages:
        role, content = msg.get("Role"), _str(msg.get("Content"))
        if role == "system":
            if turn["Prompt"] or turn["Response"]:
                flush()
            turn["System"] = content
        elif role == "user":
            if turn["Response"]:
                flush()
            turn["Prompt"] = content
        elif role == "assistant":
            turn["Response"] = content
    budget = max_output - sum(map(len, out))
    final = cut_after_response(nodes)
    data = {**turn, **think_vars}
    out.append(execute(final, data, max_output=budget, deadline=deadline))
    return "".join(out)
