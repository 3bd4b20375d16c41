"""Ollama template layers: Go ``text/template`` rendered in pure Python.

``GoTemplate.parse(text)`` builds the tree once (``GoTemplateError`` with a line number on bad
syntax); ``render(data)`` runs it with Go's semantics, bounded in output size and time.
``render_chat`` applies Ollama's rules on top (messages mode, legacy per-turn mode, insert
mode). The supported language is what Ollama's templates use: actions and pipelines, ``{{-``/
``-}}`` trimming, comments, ``if``/``else if``/``with``/``range`` (with ``else``, ``break``,
``continue``), variables, ``$``, field chains, literals, parenthesised pipelines, Go's builtin
functions and Ollama's ``json``, ``currentDate``, ``yesterdayDate``, ``toTypeScriptType``.
``define``/``template``/``block`` are not supported.

How Python data looks to a template is described in ``gotemplate_values`` (dict = Go map,
``GoStruct`` = struct, ``GoSlice``/``GoMap`` for Ollama's JSON-printing types).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from server.engine.gotemplate_ast import (
    Action,
    Field,
    GoTemplateError,
    If,
    Node,
    Pipe,
    Range,
    Variable,
    With,
)
from server.engine.gotemplate_exec import execute
from server.engine.gotemplate_funcs import FUNCS
from server.engine.gotemplate_ollama import message_value, render_chat, tool_value
from server.engine.gotemplate_parser import parse
from server.engine.gotemplate_values import MISSING, GoMap, GoSlice, GoStruct, PropertyType

__all__ = [
    "DEFAULT_DEADLINE_S",
    "DEFAULT_MAX_OUTPUT",
    "MISSING",
    "GoMap",
    "GoSlice",
    "GoStruct",
    "GoTemplate",
    "GoTemplateError",
    "PropertyType",
    "is_go_template",
    "looks_like_jinja",
    "message_value",
    "render_chat",
    "tool_value",
]

DEFAULT_MAX_OUTPUT = 4 * 1024 * 1024
DEFAULT_DEADLINE_S = 2.0


class GoTemplate:
    """A parsed Go template; immutable, so one instance may render from many threads."""

    __slots__ = ("_nodes", "_source", "_vars")

    def __init__(self, source: str, nodes: tuple[Node, ...]) -> None:
        self._source = source
        self._nodes = nodes
        self._vars = frozenset(name.lower() for name in _identifiers(nodes))

    @classmethod
    def parse(cls, text: str) -> GoTemplate:
        """Parse ``text``; raises ``GoTemplateError`` (with ``.line``) on a syntax error."""
        try:
            return cls(text, parse(text, FUNCS))
        except RecursionError:
            raise GoTemplateError("template nested too deeply") from None

    @property
    def source(self) -> str:
        """The template text as given."""
        return self._source

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The top-level nodes of the syntax tree."""
        return self._nodes

    def render(
        self,
        data: object,
        *,
        max_output: int = DEFAULT_MAX_OUTPUT,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> str:
        """Execute with ``data`` as dot and ``$``.

        Raises ``GoTemplateError`` on a runtime error, when the output would exceed
        ``max_output`` characters, or when rendering takes longer than ``deadline_s``.
        """
        return execute(
            self._nodes, data, max_output=max_output, deadline=time.monotonic() + deadline_s
        )

    def vars(self) -> frozenset[str]:
        """Field and variable names the template mentions, lowercased (Ollama's ``Vars``)."""
        return self._vars

    def uses(self, field: str) -> bool:
        """Whether the template mentions ``field`` (e.g. ``"Messages"``, ``".Tools"``).

        Matches Ollama's capability checks: case-insensitive, any field or variable path
        segment, in actions and in ``if``/``range``/``with`` conditions.
        """
        return field.lstrip(".$").lower() in self._vars

    def __str__(self) -> str:
        return self._source

    def __repr__(self) -> str:
        return f"GoTemplate({self._source[:40]!r})"


def _identifiers(nodes: Iterable[Node]) -> Iterable[str]:
    """Ollama's ``template.Identifiers``: names in fields and variables, not in chains."""
    for node in nodes:
        if isinstance(node, Action):
            yield from _pipe_identifiers(node.pipe)
        elif isinstance(node, If | With | Range):
            yield from _pipe_identifiers(node.pipe)
            yield from _identifiers(node.body)
            yield from _identifiers(node.else_body or ())


def _pipe_identifiers(pipe: Pipe) -> Iterable[str]:
    for cmd in pipe.cmds:
        for arg in cmd.args:
            if isinstance(arg, Field | Variable):
                yield from arg.idents
            elif isinstance(arg, Pipe):
                yield from _pipe_identifiers(arg)


# --- Go or Jinja? -----------------------------------------------------------------------------

_JINJA_MARKERS = (
    "{%",
    "{#",
    ".items()",
    "raise_exception",
    "add_generation_prompt",
    "bos_token",
    "eos_token",
    "loop.index",
    "loop.last",
    "loop.first",
)
_ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
_GO_WORDS = frozenset(FUNCS) | {
    *("if", "else", "end", "range", "with", "break", "continue"),
    *("define", "template", "block", "true", "false", "nil"),
}
_GO_WORD = "(?:" + "|".join(sorted(_GO_WORDS)) + r")\b"
_FUNC = "(?:" + "|".join(sorted(FUNCS)) + r")\b"
# Inside an action, things Go's grammar has no use for: "message.content", "x['k']", "f(",
# subscripts, "| filter" with a non-Go name, multi-character '...' strings, == and !=.
_JINJA_ACTION = re.compile(
    rf"(?:^|[\s(])(?!{_GO_WORD})[A-Za-z_]\w*[\[.(]"
    r"|\["
    rf"|\|\s*(?!{_FUNC})[A-Za-z_]"
    r"|'[^'\\][^']+'"
    r"|==|!="
)
_FIRST_WORD = re.compile(r"[A-Za-z_]\w*")


def looks_like_jinja(text: str) -> bool:
    """Whether a template is Jinja (HF chat template) rather than Go ``text/template``.

    Jinja signs: ``{% %}``/``{# #}`` blocks, ``message.content``/``message['role']`` style
    access, filters like ``| trim`` or ``| tojson``, bare names such as ``{{ messages }}``.
    Go actions start with ``.``, ``$``, a keyword or a Go function.
    """
    if any(marker in text for marker in _JINJA_MARKERS):
        return True
    for match in _ACTION.finditer(text):
        body = _strip_strings(match.group(1).strip())
        if body.startswith("/*"):
            continue
        first = _FIRST_WORD.match(body)
        if (first and first.group() not in _GO_WORDS) or _JINJA_ACTION.search(body):
            return True
    return False


def _strip_strings(body: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', body)


def is_go_template(text: str) -> bool:
    """Whether ``text`` is a valid Go template that does not look like Jinja."""
    if looks_like_jinja(text):
        return False
    try:
        GoTemplate.parse(text)
    except GoTemplateError:
        return False
    return True
