"""Go's ``fmt`` for templates: ``print``, ``println`` and ``printf`` with Go's output.

``printf`` understands flags ``+ - # 0`` and space, width and precision (``*`` too), and the
verbs ``v s q d t f F e E g G x X o b c U %``; wrong types print as Go does (``%!d(string=hi)``),
as do missing (``%!s(MISSING)``) and extra arguments (``%!(EXTRA int=1)``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from server.engine.gotemplate_ast import GoTemplateError
from server.engine.gotemplate_values import (
    MISSING,
    GoSlice,
    GoStruct,
    PropertyType,
    format_value,
    go_float,
    go_type,
    sort_keys,
)

__all__ = ["go_quote", "sprint", "sprintf", "sprintln"]

_SPEC = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.DOTALL)
_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_QUOTE_ESCAPES["\v"] = "\\v"


def _operand(value: object) -> str:
    return "" if value is MISSING else format_value(value)


def sprint(args: Sequence[object]) -> str:
    """``fmt.Sprint``: a space between operands when neither side is a string."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_operand(arg))
    return "".join(out)


def sprintln(args: Sequence[object]) -> str:
    """``fmt.Sprintln``: operands joined by spaces, then a newline."""
    return " ".join(_operand(a) for a in args) + "\n"


def go_quote(text: str, quote: str = '"', *, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (or ``QuoteRune`` with ``quote="'"``)."""
    out = [quote]
    for ch in text:
        code = ord(ch)
        if ch in (quote, "\\"):
            out.append("\\" + ch)
        elif ch.isprintable() and not (ascii_only and code >= 0x80):
            out.append(ch)
        elif ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote)
    return "".join(out)


class _Spec:
    """One parsed ``%`` directive."""

    def __init__(self, flags: str, width: int | None, prec: int | None, verb: str) -> None:
        self.minus = "-" in flags
        self.plus = "+" in flags
        self.sharp = "#" in flags
        self.space = " " in flags
        self.zero = "0" in flags and not self.minus
        self.width = width
        self.prec = prec
        self.verb = verb

    def pad(self, text: str, *, numeric: bool = False) -> str:
        if self.width is None or len(text) >= self.width:
            return text
        fill = self.width - len(text)
        if self.minus:
            return text + " " * fill
        if self.zero:
            if numeric and text[:1] in "+- ":
                return text[0] + "0" * fill + text[1:]
            return "0" * fill + text
        return " " * fill + text


def _bad(spec: _Spec, value: object) -> str:
    if value is None:
        return f"%!{spec.verb}(<nil>)"
    return f"%!{spec.verb}({go_type(value)}={format_value(value)})"


def _sign(spec: _Spec, *, negative: bool) -> str:
    if negative:
        return "-"
    return "+" if spec.plus else " " if spec.space else ""


def _format_int(spec: _Spec, value: int) -> str:
    verb = spec.verb
    if verb == "c":
        return spec.pad(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd")
    if verb == "q":
        return spec.pad(go_quote(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", "'"))
    if verb == "U":
        return spec.pad(f"U+{value:04X}")
    bases = {"d": "d", "v": "d", "x": "x", "X": "X", "o": "o", "O": "o", "b": "b"}
    if verb not in bases:
        return _bad(spec, value)
    digits = format(abs(value), bases[verb])
    if spec.prec is not None:
        digits = "" if spec.prec == 0 and value == 0 else digits.rjust(spec.prec, "0")
    prefix = ""
    if verb == "O" or (spec.sharp and verb == "o" and not digits.startswith("0")):
        prefix = "0o" if verb == "O" else "0"
    elif spec.sharp and verb in "xXb":
        prefix = {"x": "0x", "X": "0X", "b": "0b"}[verb]
    text = _sign(spec, negative=value < 0) + prefix + digits
    return spec.pad(text, numeric=spec.prec is None)


def _format_float(spec: _Spec, value: float) -> str:
    verb = spec.verb
    if verb not in "vgGeEfF":
        return _bad(spec, value)
    if math.isnan(value) or math.isinf(value):
        text = go_float(value)
        if text == "+Inf" and not spec.plus:
            text = " Inf" if spec.space else "Inf"
        return spec.pad(text)
    if verb in "vgG" and spec.prec is None:
        text = go_float(abs(value))
        text = text.upper() if verb == "G" else text
    else:
        prec = 6 if spec.prec is None else spec.prec
        text = format(abs(value), f".{prec}{'f' if verb == 'F' else verb}")
    return spec.pad(_sign(spec, negative=math.copysign(1.0, value) < 0) + text, numeric=True)


def _format_str(spec: _Spec, value: str) -> str:
    verb = spec.verb
    if spec.prec is not None and verb in "vsq":
        value = value[: spec.prec]
    if verb in "vs":
        return spec.pad(value)
    if verb == "q":
        return spec.pad(go_quote(value, ascii_only=spec.plus))
    if verb in "xX":
        data = value.encode("utf-8", "replace")
        sep = " " if spec.space else ""
        pre = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        return spec.pad(sep.join(pre + format(b, "02" + verb) for b in data))
    return _bad(spec, value)


def _format_arg(spec: _Spec, value: object, depth: int = 0) -> str:
    if depth > 100:
        raise GoTemplateError("data nested too deeply")
    verb = spec.verb
    if value is MISSING:
        value = ""
    if value is None:
        return spec.pad("<nil>") if verb == "v" else _bad(spec, None)
    if isinstance(value, bool):
        return spec.pad("true" if value else "false") if verb in "vt" else _bad(spec, value)
    if isinstance(value, int):
        return _format_int(spec, value)
    if isinstance(value, float):
        return _format_float(spec, value)
    if isinstance(value, str):
        return _format_str(spec, value)
    stringer = (
        isinstance(value, PropertyType)
        or (isinstance(value, GoStruct) and value.stringer)
        or (isinstance(value, GoSlice) and value.stringer)
    )
    if stringer and verb in "vsqxX":
        return _format_str(spec, format_value(value))
    inner = _Spec("", None, spec.prec, verb)
    if isinstance(value, GoStruct):
        fields = (_format_arg(inner, v, depth + 1) for v in value.fields.values())
        return spec.pad("{" + " ".join(fields) + "}")
    if isinstance(value, list | tuple):
        return spec.pad("[" + " ".join(_format_arg(inner, v, depth + 1) for v in value) + "]")
    if isinstance(value, Mapping):
        items = (
            f"{_format_arg(inner, k, depth + 1)}:{_format_arg(inner, value[k], depth + 1)}"
            for k in sort_keys(value.keys())
        )
        return spec.pad("map[" + " ".join(items) + "]")
    return spec.pad(format_value(value)) if verb in "vs" else _bad(spec, value)


def _star(args: Sequence[object], index: int, max_len: int) -> tuple[int | None, bool]:
    """A ``*`` width or precision taken from the arguments: (value, ok)."""
    if index >= len(args):
        return None, False
    value = args[index]
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > max_len:
        return None, False
    return value, True


def sprintf(fmt: str, args: Sequence[object], max_len: int) -> str:
    """``fmt.Sprintf``; widths and precisions above ``max_len`` are refused (memory bound)."""
    out: list[str] = []
    argi = 0
    pos = 0
    while pos < len(fmt):
        pct = fmt.find("%", pos)
        if pct < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:pct])
        m = _SPEC.match(fmt, pct)
        assert m is not None  # the pattern matches any "%…"
        pos = m.end()
        flags, width_s, prec_s, verb = m.groups()
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            width, ok = _star(args, argi, max_len)
            argi += 1
            if not ok:
                out.append("%!(BADWIDTH)")
            elif width is not None and width < 0:
                flags, width = flags + "-", -width
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            prec, ok = _star(args, argi, max_len)
            argi += 1
            if not ok or (prec is not None and prec < 0):
                out.append("%!(BADPREC)")
                prec = None
        elif prec_s is not None:
            prec = int(prec_s) if prec_s else 0
        if (width or 0) > max_len or (prec or 0) > max_len:
            raise GoTemplateError("printf: width or precision too large")
        if not verb:
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        spec = _Spec(flags, width, prec, verb)
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_arg(spec, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{go_type(a)}={format_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
