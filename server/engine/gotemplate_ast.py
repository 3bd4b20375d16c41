"""Syntax tree of a Go ``text/template`` (the node kinds of Go's ``text/template/parse``).

The tree is immutable: lists of nodes are tuples, so one parsed template can be rendered from
many threads at once and rewritten (Ollama's legacy "cut after .Response") without copying.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Action",
    "Arg",
    "Break",
    "Chain",
    "Command",
    "Continue",
    "Dot",
    "Field",
    "GoTemplateError",
    "Identifier",
    "If",
    "Literal",
    "Nil",
    "Node",
    "Pipe",
    "Range",
    "Text",
    "Variable",
    "With",
]


class GoTemplateError(ValueError):
    """A Go template failed to parse or to render; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


# --- operands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """``.A.B``: a field chain evaluated on dot."""

    idents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Variable:
    """``$x`` or ``$x.A.B``; ``idents[0]`` is the variable name with its ``$``."""

    idents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    """``(pipeline).A.B``: fields of a parenthesised term's value."""

    node: Arg
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dot:
    """``.`` itself."""


@dataclass(frozen=True, slots=True)
class Nil:
    """The literal ``nil``."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A bool, number or string constant."""

    value: bool | int | float | str


@dataclass(frozen=True, slots=True)
class Identifier:
    """A function name."""

    name: str


@dataclass(frozen=True, slots=True)
class Command:
    """One stage of a pipeline: an operand, or a function and its arguments."""

    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Pipe:
    """``$x := a | b c``: optional declarations, then commands joined by ``|``."""

    line: int
    decls: tuple[str, ...]
    is_assign: bool
    cmds: tuple[Command, ...]


Arg = Field | Variable | Chain | Dot | Nil | Literal | Identifier | Pipe

# --- statements -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    """Literal text between actions."""

    text: str


@dataclass(frozen=True, slots=True)
class Action:
    """``{{ pipeline }}``: prints the value unless the pipeline declares variables."""

    pipe: Pipe


@dataclass(frozen=True, slots=True)
class If:
    """``{{ if }} … {{ else }} … {{ end }}``; ``else if`` is nested in ``else_body``."""

    pipe: Pipe
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None


@dataclass(frozen=True, slots=True)
class With:
    """``{{ with }}``: like ``if``, but dot becomes the value inside the body."""

    pipe: Pipe
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None


@dataclass(frozen=True, slots=True)
class Range:
    """``{{ range }}``: the body once per element, ``else_body`` when there are none."""

    pipe: Pipe
    body: tuple[Node, ...]
    else_body: tuple[Node, ...] | None


@dataclass(frozen=True, slots=True)
class Break:
    """``{{ break }}`` inside a range."""

    line: int


@dataclass(frozen=True, slots=True)
class Continue:
    """``{{ continue }}`` inside a range."""

    line: int


Node = Text | Action | If | With | Range | Break | Continue
