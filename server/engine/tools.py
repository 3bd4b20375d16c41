"""Tool calls: found in a model's output as it streams, or forced by a grammar (``tool_choice``).

The tool-call prefix ("tag") comes from the chat template, as Ollama infers it: the first text
inside the template's ``{{ if .ToolCalls }}`` block, e.g. ``<tool_call>``. Templates without one
get ``{``: a bare JSON object ``{"name": ..., "arguments": ...}`` at the start of the output.
While streaming, text that might be the start of the tag is held back until it is decided.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from server.engine import gotemplate
from server.engine.gotemplate_ast import Chain, Field, If, Node, Pipe, Range, Text, Variable, With
from server.engine.structured import InvalidFormat, grammar_for_schema
from server.engine.templates import ChatTemplate

__all__ = ["ParsedToolCall", "ToolCallParser", "forced_call_grammar", "tool_call_tag"]

BARE = "{"
MAX_CALL_CHARS = 256 * 1024
_ID_CHARS = string.ascii_lowercase + string.digits
_JINJA_TAGS = ("<tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "<function_call>")


@dataclass(frozen=True)
class ParsedToolCall:
    """A call found in the output: arguments as a JSON object, an id like ``call_ab12cd34``."""

    name: str
    arguments: dict[str, Any]
    id: str
    index: int


def new_call_id() -> str:
    """``call_`` and 8 random lowercase letters or digits (Ollama's form)."""
    return "call_" + "".join(secrets.choice(_ID_CHARS) for _ in range(8))


# -- the tag --------------------------------------------------------------------------------------
def tool_call_tag(template: ChatTemplate) -> str:
    """The text a tool call starts with for this template (``{`` when none can be inferred)."""
    if template.kind == "go":
        try:
            nodes = gotemplate.GoTemplate.parse(template.source).nodes
        except gotemplate.GoTemplateError:
            return BARE
        block = _tool_calls_if(nodes)
        text = _first_text(block.body) if block is not None else None
        tag = text.strip().split("{")[0].strip() if text is not None else ""
        return tag or BARE
    return next((t for t in _JINJA_TAGS if t in template.source), BARE)


def _mentions(pipe: Pipe, name: str) -> bool:
    for cmd in pipe.cmds:
        for arg in cmd.args:
            if isinstance(arg, Field | Variable) and name in arg.idents:
                return True
            if isinstance(arg, Chain) and name in arg.fields:
                return True
            if isinstance(arg, Pipe) and _mentions(arg, name):
                return True
    return False


def _tool_calls_if(nodes: Iterable[Node]) -> If | None:
    for node in nodes:
        if isinstance(node, If) and _mentions(node.pipe, "ToolCalls"):
            return node
        if isinstance(node, If | Range | With):
            found = _tool_calls_if(node.body) or _tool_calls_if(node.else_body or ())
            if found is not None:
                return found
    return None


def _first_text(nodes: Iterable[Node]) -> str | None:
    for node in nodes:
        if isinstance(node, Text):
            return node.text
        if isinstance(node, If | Range | With):
            return _first_text(node.body) or _first_text(node.else_body or ())
        return None  # an action prints something else first: no literal tag
    return None


def closing_tag(tag: str) -> str:
    """``</tool_call>`` for ``<tool_call>``; empty for tags that are not XML-like."""
    if len(tag) > 2 and tag[0] == "<" and tag[-1] == ">" and tag[1] not in "/|":
        return "</" + tag[1:]
    return ""


# -- parsing --------------------------------------------------------------------------------------
class ToolCallParser:
    """Splits streamed output into content and tool calls.

    ``feed`` returns the content that is safe to show and the calls completed so far; text
    that may still turn out to be a call is held back. ``flush`` ends the output: whatever
    was held and did not become a call is returned as content.
    """

    def __init__(self, tag: str, names: Collection[str]) -> None:
        self.tag = tag
        self.close = closing_tag(tag)
        self.names = frozenset(names)
        self._buf = ""
        self._mode = "start" if tag == BARE else "content"
        self._found_here = 0  # calls parsed since the current tag
        self._index = 0

    @property
    def calls_found(self) -> int:
        """How many calls were parsed so far."""
        return self._index

    def feed(self, text: str) -> tuple[str, list[ParsedToolCall]]:
        """Add output text; returns (content to emit, completed calls)."""
        self._buf += text
        content: list[str] = []
        calls: list[ParsedToolCall] = []
        while True:
            before = (self._mode, len(self._buf))
            if self._mode == "start":
                self._start()
            elif self._mode == "content":
                content.append(self._content())
            elif self._mode == "plain":
                content.append(self._buf)
                self._buf = ""
            else:
                out, new = self._calls()
                content.append(out)
                calls.extend(new)
            if (self._mode, len(self._buf)) == before:
                break
        return "".join(content), calls

    def flush(self) -> tuple[str, list[ParsedToolCall]]:
        """The output has ended."""
        content, calls = self.feed("")
        rest, self._buf = self._buf, ""
        tags = (self.tag, self.close) if self.tag != BARE else ()
        if self._mode == "calls" and not _strip_tags(rest, tags):
            rest = ""  # only a closing tag or whitespace after the calls
        return content + rest, calls

    def _start(self) -> None:
        stripped = self._buf.lstrip()
        if not stripped:
            return
        self._mode = "calls" if stripped[0] == BARE else "plain"

    def _content(self) -> str:
        i = self._buf.find(self.tag)
        if i >= 0:
            out, self._buf = self._buf[:i], self._buf[i:]
            self._mode, self._found_here = "calls", 0
            return out
        hold = _overlap(self._buf, self.tag)
        out, self._buf = self._buf[: len(self._buf) - hold], self._buf[len(self._buf) - hold :]
        return out

    def _calls(self) -> tuple[str, list[ParsedToolCall]]:
        """Parse calls at the front of the buffer; on anything else, fall back to content."""
        calls: list[ParsedToolCall] = []
        while True:
            pos = _skip_tags(self._buf, 0, (self.tag, self.close) if self.tag != BARE else ())
            rest = self._buf[pos:]
            if not rest or any(t.startswith(rest) for t in (self.tag, self.close) if t):
                return "", calls  # wait for more
            if rest[0] not in "{[":
                if self._found_here:  # text after the calls: content again
                    self._buf = rest
                    self._mode = "plain" if self.tag == BARE else "content"
                    return "", calls
                return self._invalid(), calls
            end = _json_end(rest)
            if end is None:
                if len(rest) > MAX_CALL_CHARS:
                    return self._invalid(), calls
                return "", calls
            found = self._extract(rest[:end])
            if found is None:
                return self._invalid(), calls
            calls.extend(found)
            self._found_here += len(found)
            self._buf = rest[end:]

    def _invalid(self) -> str:
        out, self._buf = self._buf, ""
        self._mode = "plain" if self.tag == BARE else "content"
        if self.tag != BARE and out.startswith(self.tag):
            # Emit the tag as text, and keep looking for a real call after it.
            self._buf, out = out[len(self.tag) :], self.tag
        return out

    def _extract(self, text: str) -> list[ParsedToolCall] | None:
        try:
            value = json.loads(text)
        except ValueError:
            return None
        raw = _call_objects(value)
        if not raw or any(self.names and name not in self.names for name, _ in raw):
            return None
        out = []
        for name, args in raw:
            out.append(ParsedToolCall(name, args, new_call_id(), self._index))
            self._index += 1
        return out


def _call_objects(value: Any) -> list[tuple[str, dict[str, Any]]] | None:
    if isinstance(value, list):
        items = [_call_objects(v) for v in value]
        if not value or any(i is None for i in items):
            return None
        return [c for i in items for c in i or ()]
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict) and "name" not in value:
        return _call_objects(value["function"])
    name = value.get("name")
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(name, str) or not name or not isinstance(args, dict):
        return None
    return [(name, args)]


def _overlap(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def _skip_tags(text: str, pos: int, tags: Sequence[str]) -> int:
    while True:
        start = pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        for tag in tags:
            if tag and text.startswith(tag, pos):
                pos += len(tag)
        if pos == start:
            return pos


def _strip_tags(text: str, tags: Sequence[str]) -> str:
    rest = text[_skip_tags(text, 0, tags) :]
    return "" if any(t.startswith(rest) for t in tags if t) else rest


def _json_end(text: str) -> int | None:
    """End of the JSON object or array at the start of ``text``; None while incomplete."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


# -- forcing a call -------------------------------------------------------------------------------
def forced_call_grammar(tools: Sequence[dict[str, Any]], name: str | None, tag: str) -> str:
    """GBNF for exactly one call: of the function ``name``, or of any tool when None.

    The arguments follow the function's ``parameters`` schema. InvalidFormat names the tool
    whose schema cannot be enforced.
    """
    alternatives = []
    for tool in tools:
        fn = tool.get("function") or {}
        fn_name = fn.get("name")
        if name is not None and fn_name != name:
            continue
        params = fn.get("parameters") or {"type": "object"}
        try:
            grammar_for_schema(params)
        except InvalidFormat as exc:
            raise InvalidFormat(f"tool {fn_name!r}: parameters: {exc}") from None
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn_name}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    if not alternatives:
        raise InvalidFormat(f"tool_choice names a function that is not in tools: {name!r}")
    schema = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    body = _rename_rule(grammar_for_schema(schema), "root", "forced-tool-call")
    if tag == BARE:
        return body + "\nroot ::= forced-tool-call"
    close = closing_tag(tag)
    tail = f' "\\n"? {_literal(close)}' if close else ""
    return body + f'\nroot ::= {_literal(tag)} "\\n"? forced-tool-call{tail}'


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _rename_rule(gbnf: str, old: str, new: str) -> str:
    """Rename a rule (definition and references), leaving string literals and classes alone."""
    token = r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]|[A-Za-z0-9-]+|\s+|.'
    return "".join(new if t == old else t for t in re.findall(token, gbnf, flags=re.DOTALL))
