"""Tokenizer for Go ``text/template`` (a port of the rules of Go's ``text/template/parse/lex.go``).

Text outside ``{{ }}`` becomes TEXT tokens; ``{{- `` and `` -}}`` trim the adjacent whitespace
(spaces, tabs, CR and LF) exactly as Go does, and ``{{/* */}}`` comments vanish.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.engine.gotemplate_ast import GoTemplateError

__all__ = ["Kind", "Token", "tokenize"]

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
)


class Kind(enum.Enum):
    """Token kinds."""

    TEXT = enum.auto()
    LEFT_DELIM = enum.auto()
    RIGHT_DELIM = enum.auto()
    SPACE = enum.auto()
    IDENTIFIER = enum.auto()
    KEYWORD = enum.auto()
    FIELD = enum.auto()
    VARIABLE = enum.auto()
    DOT = enum.auto()
    NUMBER = enum.auto()
    CHAR_CONSTANT = enum.auto()
    STRING = enum.auto()
    RAW_STRING = enum.auto()
    BOOL = enum.auto()
    NIL = enum.auto()
    LEFT_PAREN = enum.auto()
    RIGHT_PAREN = enum.auto()
    PIPE = enum.auto()
    DECLARE = enum.auto()
    ASSIGN = enum.auto()
    CHAR = enum.auto()
    EOF = enum.auto()


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``line`` is where it starts (1-based)."""

    kind: Kind
    val: str
    line: int


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.tokens: list[Token] = []

    def error(self, message: str) -> GoTemplateError:
        return GoTemplateError(message, self.line)

    def emit(self, kind: Kind, start: int) -> None:
        val = self.text[start : self.pos]
        self.tokens.append(Token(kind, val, self.line))
        self.line += val.count("\n")

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def run(self) -> list[Token]:
        text = self.text
        while True:
            start = self.pos
            i = text.find("{{", start)
            if i < 0:
                if start < len(text):
                    self.pos = len(text)
                    self.emit(Kind.TEXT, start)
                break
            trim_left = text.startswith("-", i + 2) and text[i + 3 : i + 4] in tuple(_SPACE)
            chunk = text[start:i]
            if trim_left:
                chunk = chunk.rstrip(_SPACE)
            if chunk:
                self.tokens.append(Token(Kind.TEXT, chunk, self.line))
            self.line += text.count("\n", start, i)
            self.pos = i + (4 if trim_left else 2)
            if text.startswith("/*", self.pos):
                self.comment()
            else:
                self.tokens.append(Token(Kind.LEFT_DELIM, "{{", self.line))
                self.inside_action()
        self.tokens.append(Token(Kind.EOF, "", self.line))
        return self.tokens

    def at_right_delim(self) -> tuple[bool, bool]:
        """(at a closing delimiter, with a trim marker)."""
        text, p = self.text, self.pos
        if text[p : p + 1] in tuple(_SPACE) and text.startswith("-}}", p + 1):
            return True, True
        return text.startswith("}}", p), False

    def close_action(self, *, trim: bool) -> None:
        self.pos += 4 if trim else 2
        if trim:
            end = self.pos
            while end < len(self.text) and self.text[end] in _SPACE:
                end += 1
            self.line += self.text.count("\n", self.pos, end)
            self.pos = end

    def comment(self) -> None:
        end = self.text.find("*/", self.pos + 2)
        if end < 0:
            raise self.error("unclosed comment")
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end + 2
        delim, trim = self.at_right_delim()
        if not delim:
            raise self.error("comment ends before closing delimiter")
        self.close_action(trim=trim)

    def inside_action(self) -> None:
        depth = 0
        while True:
            delim, trim = self.at_right_delim()
            if delim:
                if depth:
                    raise self.error("unclosed left paren")
                self.tokens.append(Token(Kind.RIGHT_DELIM, "}}", self.line))
                self.close_action(trim=trim)
                return
            c = self.peek()
            start = self.pos
            if not c:
                raise self.error("unclosed action")
            if c in _SPACE:
                self.space()
                continue
            self.pos += 1
            if c == "=":
                self.emit(Kind.ASSIGN, start)
            elif c == ":":
                if self.peek() != "=":
                    raise self.error("expected :=")
                self.pos += 1
                self.emit(Kind.DECLARE, start)
            elif c == "|":
                self.emit(Kind.PIPE, start)
            elif c == '"':
                self.quote(start)
            elif c == "`":
                end = self.text.find("`", self.pos)
                if end < 0:
                    raise self.error("unterminated raw quote")
                self.pos = end + 1
                self.emit(Kind.RAW_STRING, start)
            elif c == "$":
                self.field_or_variable(start, Kind.VARIABLE)
            elif c == "'":
                self.char_constant(start)
            elif c == "." and not ("0" <= self.peek() <= "9" and self.peek() != ""):
                self.field_or_variable(start, Kind.FIELD)
            elif c in "+-." or "0" <= c <= "9":
                self.pos = start
                self.number()
            elif _is_alnum(c):
                self.identifier(start)
            elif c == "(":
                depth += 1
                self.emit(Kind.LEFT_PAREN, start)
            elif c == ")":
                depth -= 1
                if depth < 0:
                    raise self.error("unexpected right paren")
                self.emit(Kind.RIGHT_PAREN, start)
            elif c.isascii() and c.isprintable():
                self.emit(Kind.CHAR, start)
            else:
                raise self.error(f"unrecognized character in action: U+{ord(c):04X}")

    def space(self) -> None:
        start = self.pos
        while self.peek() and self.peek() in _SPACE:
            self.pos += 1
        # The last space may belong to a " -}}" trim marker: leave it for at_right_delim.
        if self.text.startswith("-}}", self.pos):
            self.pos -= 1
        if self.pos > start:
            self.emit(Kind.SPACE, start)

    def at_terminator(self) -> bool:
        c = self.peek()
        if not c or c in _SPACE or c in ".,|:()":
            return True
        return self.text.startswith("}}", self.pos)

    def field_or_variable(self, start: int, kind: Kind) -> None:
        while self.peek() and _is_alnum(self.peek()):
            self.pos += 1
        if self.pos == start + 1 and kind is Kind.FIELD:
            kind = Kind.DOT
        if not self.at_terminator():
            raise self.error(f"bad character {self.peek()!r}")
        self.emit(kind, start)

    def identifier(self, start: int) -> None:
        while self.peek() and _is_alnum(self.peek()):
            self.pos += 1
        if not self.at_terminator():
            raise self.error(f"bad character {self.peek()!r}")
        word = self.text[start : self.pos]
        if word in _KEYWORDS:
            self.emit(Kind.KEYWORD, start)
        elif word in ("true", "false"):
            self.emit(Kind.BOOL, start)
        elif word == "nil":
            self.emit(Kind.NIL, start)
        else:
            self.emit(Kind.IDENTIFIER, start)

    def quote(self, start: int) -> None:
        while True:
            c = self.peek()
            self.pos += 1
            if c == "\\":
                nxt = self.peek()
                if nxt and nxt != "\n":
                    self.pos += 1
                    continue
                c = nxt
            if c in ("", "\n"):
                raise self.error("unterminated quoted string")
            if c == '"':
                break
        self.emit(Kind.STRING, start)

    def char_constant(self, start: int) -> None:
        while True:
            c = self.peek()
            self.pos += 1
            if c == "\\":
                nxt = self.peek()
                if nxt and nxt != "\n":
                    self.pos += 1
                    continue
                c = nxt
            if c in ("", "\n"):
                raise self.error("unterminated character constant")
            if c == "'":
                break
        self.emit(Kind.CHAR_CONSTANT, start)

    def accept(self, chars: str) -> bool:
        if self.peek() and self.peek() in chars:
            self.pos += 1
            return True
        return False

    def accept_run(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.pos += 1

    def number(self) -> None:
        start = self.pos
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if self.peek() and _is_alnum(self.peek()):
            raise self.error(f"bad number syntax: {self.text[start : self.pos + 1]!r}")
        self.emit(Kind.NUMBER, start)


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an EOF token; raises GoTemplateError."""
    return _Lexer(text).run()
