"""Parser for Go ``text/template``: tokens to the tree of ``gotemplate_ast``.

Follows Go's ``text/template/parse/parse.go``: the same grammar, the same checks at parse time
(unknown functions, undefined variables, ``break`` outside ``range``, literals as later pipeline
stages) and, where it matters to a user, the same wording of errors. ``define``, ``template`` and
``block`` are not supported (Ollama's templates do not use them).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from server.engine.gotemplate_ast import (
    Action,
    Arg,
    Break,
    Chain,
    Command,
    Continue,
    Dot,
    Field,
    GoTemplateError,
    Identifier,
    If,
    Literal,
    Nil,
    Node,
    Pipe,
    Range,
    Text,
    Variable,
    With,
)
from server.engine.gotemplate_lexer import Kind, Token, tokenize

__all__ = ["MAX_NESTING", "parse", "parse_number", "unquote"]

# Deeper nesting than this is refused, so hostile input can't exhaust Python's recursion limit.
MAX_NESTING = 50

_LEGACY_OCTAL = re.compile(r"0[0-7_]+")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def parse_number(text: str) -> int | float:
    """A Go number literal: ints (0x, 0o, 0b, legacy octal, ``_``), floats, hex floats."""
    low = text.lower()
    body = low.lstrip("+-")
    sign = "-" if low.startswith("-") else ""
    if len(low) - len(body) > 1 or not body or body.endswith("i"):
        raise ValueError(text)
    is_hex = body.startswith("0x")
    if (is_hex and "p" not in body) or (not is_hex and not any(c in body for c in ".e")):
        if _LEGACY_OCTAL.fullmatch(body):
            return int(f"{sign}0o{body[1:]}", 0)
        return int(low, 0)
    if is_hex:
        return float(sign + str(float.fromhex(body.replace("_", ""))))
    return float(low)


def _unicode_escape(body: str, i: int, width: int, out: bytearray) -> int:
    digits = body[i : i + width]
    if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(body)
    code = int(digits, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise ValueError(body)
    out += chr(code).encode()
    return i + width


def unquote(token: str) -> str:
    """The value of a Go string literal: ``"…"`` with Go escapes, or a raw ```…``` string."""
    if token.startswith("`"):
        return token[1:-1].replace("\r", "")
    body, quote = token[1:-1], token[0]
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        i += 1
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            continue
        esc = body[i : i + 1]
        i += 1
        if esc in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[esc].encode()
        elif esc == quote:
            out += esc.encode()
        elif esc == "x":
            digits = body[i : i + 2]
            if len(digits) != 2 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError(token)
            out.append(int(digits, 16))
            i += 2
        elif esc in "01234567" and esc:
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
                raise ValueError(token)
            out.append(int(digits, 8))
            i += 2
        elif esc == "u":
            i = _unicode_escape(body, i, 4, out)
        elif esc == "U":
            i = _unicode_escape(body, i, 8, out)
        else:
            raise ValueError(token)
    # Go strings are bytes; \x escapes may form invalid UTF-8, which we show as U+FFFD.
    return out.decode("utf-8", "replace")


class _Parser:
    def __init__(self, tokens: list[Token], funcs: Collection[str]) -> None:
        self.tokens = tokens
        self.i = 0
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0

    # --- token helpers --------------------------------------------------------------------

    def error(self, message: str, tok: Token | None = None) -> GoTemplateError:
        return GoTemplateError(message, (tok or self.tokens[self.i]).line)

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Kind.EOF:
            self.i += 1
        return tok

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.kind is Kind.SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        tok = self.next_non_space()
        self.i -= 1
        return tok

    def expect(self, kind: Kind, context: str) -> Token:
        tok = self.next_non_space()
        if tok.kind is not kind:
            raise self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> GoTemplateError:
        if tok.kind is Kind.EOF:
            return self.error(f"unexpected EOF in {context}", tok)
        return self.error(f"unexpected {tok.val!r} in {context}", tok)

    def nest(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error("template nesting too deep", tok)

    # --- statements -----------------------------------------------------------------------

    def parse(self) -> tuple[Node, ...]:
        nodes: list[Node] = []
        while self.peek().kind is not Kind.EOF:
            node = self.text_or_action()
            if isinstance(node, str):
                raise self.error(f"unexpected {{{{{node}}}}}")
            if node is not None:
                nodes.append(node)
        return tuple(nodes)

    def item_list(self) -> tuple[tuple[Node, ...], str]:
        """Nodes up to ``{{end}}`` or ``{{else}}``; returns them and which one ended the list."""
        nodes: list[Node] = []
        while True:
            if self.peek().kind is Kind.EOF:
                raise self.error("unexpected EOF")
            node = self.text_or_action()
            if isinstance(node, str):
                return tuple(nodes), node
            if node is not None:
                nodes.append(node)

    def text_or_action(self) -> Node | str | None:
        tok = self.next_non_space()
        if tok.kind is Kind.TEXT:
            return Text(tok.val)
        if tok.kind is Kind.LEFT_DELIM:
            return self.action()
        raise self.unexpected(tok, "input")

    def action(self) -> Node | str | None:
        tok = self.peek_non_space()
        if tok.kind is Kind.KEYWORD:
            self.next_non_space()
            word = tok.val
            if word in ("if", "range", "with"):
                return self.control(word, tok)
            if word == "end":
                self.expect(Kind.RIGHT_DELIM, "end")
                return "end"
            if word == "else":
                following = self.peek_non_space()
                if following.kind is Kind.KEYWORD and following.val in ("if", "with"):
                    return "else"
                self.expect(Kind.RIGHT_DELIM, "else")
                return "else"
            if word in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.error(f"{{{{{word}}}}} outside {{{{range}}}}", tok)
                self.expect(Kind.RIGHT_DELIM, word)
                return Break(tok.line) if word == "break" else Continue(tok.line)
            raise self.error(f"{{{{{word}}}}} is not supported", tok)
        return Action(self.pipeline("command", Kind.RIGHT_DELIM))

    def control(self, context: str, tok: Token) -> Node:
        self.nest(tok)
        n_vars = len(self.vars)
        pipe = self.pipeline(context, Kind.RIGHT_DELIM)
        if context == "range":
            self.range_depth += 1
        body, ended = self.item_list()
        if context == "range":
            self.range_depth -= 1
        else_body: tuple[Node, ...] | None = None
        if ended == "else":
            following = self.peek_non_space()
            if (
                context in ("if", "with")
                and following.kind is Kind.KEYWORD
                and following.val == context
            ):
                # {{else if x}} is {{else}}{{if x}}…{{end}}{{end}}: the inner one eats the {{end}}.
                self.next_non_space()
                else_body = (self.control(context, following),)
            else:
                else_body, ended = self.item_list()
                if ended != "end":
                    raise self.error("expected end; found {{else}}")
        del self.vars[n_vars:]
        self.depth -= 1
        if context == "if":
            return If(pipe, body, else_body)
        if context == "with":
            return With(pipe, body, else_body)
        return Range(pipe, body, else_body)

    # --- pipelines ------------------------------------------------------------------------

    def pipeline(self, context: str, end: Kind) -> Pipe:
        line = self.peek_non_space().line
        decls: list[str] = []
        is_assign = False
        while self.peek_non_space().kind is Kind.VARIABLE:
            save = self.i
            var = self.next_non_space()
            following = self.peek_non_space()
            if following.kind in (Kind.ASSIGN, Kind.DECLARE):
                is_assign = following.kind is Kind.ASSIGN
                self.next_non_space()
                decls.append(var.val)
                self.vars.append(var.val)
                break
            if following.kind is Kind.CHAR and following.val == ",":
                self.next_non_space()
                decls.append(var.val)
                self.vars.append(var.val)
                if context == "range" and len(decls) < 2:
                    if self.peek_non_space().kind is Kind.VARIABLE:
                        continue
                    raise self.error("range can only initialize variables")
                raise self.error(f"too many declarations in {context}")
            # "$x foo": the variable is an operand, not a declaration.
            self.i = save
            break
        cmds: list[Command] = []
        while True:
            tok = self.next_non_space()
            if tok.kind is end:
                break
            if tok.kind in _OPERAND_START:
                self.i -= 1
                cmds.append(self.command())
                continue
            raise self.unexpected(tok, context)
        if not cmds:
            raise self.error(f"missing value for {context}", tok)
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], Literal | Dot | Nil):
                raise self.error(f"non executable command in pipeline stage {stage}", tok)
        return Pipe(line, tuple(decls), is_assign, tuple(cmds))

    def command(self) -> Command:
        args: list[Arg] = []
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.kind is Kind.SPACE:
                continue
            if tok.kind in (Kind.RIGHT_DELIM, Kind.RIGHT_PAREN):
                self.i -= 1
            elif tok.kind is not Kind.PIPE:
                raise self.unexpected(tok, "operand")
            break
        if not args:
            raise self.error("empty command")
        return Command(tuple(args))

    def operand(self) -> Arg | None:
        node = self.term()
        if node is None or self.peek().kind is not Kind.FIELD:
            return node
        fields: list[str] = []
        while self.peek().kind is Kind.FIELD:
            fields.append(self.next().val[1:])
        if isinstance(node, Field):
            return Field(node.idents + tuple(fields))
        if isinstance(node, Variable):
            return Variable(node.idents + tuple(fields))
        if isinstance(node, Literal | Nil | Dot):
            raise self.error("unexpected . after term")
        return Chain(node, tuple(fields))

    def term(self) -> Arg | None:
        tok = self.next_non_space()
        kind = tok.kind
        if kind is Kind.IDENTIFIER:
            if tok.val not in self.funcs:
                raise self.error(f"function {tok.val!r} not defined", tok)
            return Identifier(tok.val)
        if kind is Kind.DOT:
            return Dot()
        if kind is Kind.NIL:
            return Nil()
        if kind is Kind.VARIABLE:
            if tok.val not in self.vars:
                raise self.error(f"undefined variable {tok.val!r}", tok)
            return Variable((tok.val,))
        if kind is Kind.FIELD:
            return Field((tok.val[1:],))
        if kind is Kind.BOOL:
            return Literal(tok.val == "true")
        if kind is Kind.NUMBER:
            try:
                return Literal(parse_number(tok.val))
            except ValueError:
                raise self.error(f"illegal number syntax: {tok.val!r}", tok) from None
        if kind is Kind.CHAR_CONSTANT:
            return Literal(self.char_value(tok))
        if kind in (Kind.STRING, Kind.RAW_STRING):
            try:
                return Literal(unquote(tok.val))
            except ValueError:
                raise self.error(f"invalid syntax in string {tok.val!r}", tok) from None
        if kind is Kind.LEFT_PAREN:
            self.nest(tok)
            pipe = self.pipeline("parenthesized pipeline", Kind.RIGHT_PAREN)
            self.depth -= 1
            return pipe
        self.i -= 1
        return None

    def char_value(self, tok: Token) -> int:
        try:
            value = unquote(tok.val)
        except ValueError:
            value = ""
        if len(value) != 1:
            raise self.error(f"malformed character constant: {tok.val}", tok)
        return ord(value)


_OPERAND_START = frozenset(
    {
        Kind.BOOL,
        Kind.CHAR_CONSTANT,
        Kind.DOT,
        Kind.FIELD,
        Kind.IDENTIFIER,
        Kind.NUMBER,
        Kind.NIL,
        Kind.RAW_STRING,
        Kind.STRING,
        Kind.VARIABLE,
        Kind.LEFT_PAREN,
    }
)


def parse(text: str, funcs: Collection[str]) -> tuple[Node, ...]:
    """The top-level nodes of ``text``; ``funcs`` are the function names it may call."""
    return _Parser(tokenize(text), funcs).parse()
