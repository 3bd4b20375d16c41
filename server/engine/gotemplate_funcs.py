"""Functions a template can call: Go's builtins and Ollama's additions.

Go: ``and or not len index slice print printf println eq ne lt le gt ge html js urlquery call``
(``and``/``or`` short-circuit in the executor). Ollama: ``json``, ``currentDate``,
``yesterdayDate``, ``toTypeScriptType``. Comparisons follow Go 1.18+; the one leniency is that
ints and floats compare by value (Go refuses; Python's JSON gives ints where Go has float64).
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from server.engine.gotemplate_ast import GoTemplateError
from server.engine.gotemplate_fmt import sprint, sprintf, sprintln
from server.engine.gotemplate_values import (
    MISSING,
    GoSlice,
    GoStruct,
    PropertyType,
    go_type,
    marshal_json,
    truth,
)

__all__ = ["FUNCS", "FuncContext", "Function"]


@dataclass(frozen=True, slots=True)
class FuncContext:
    """What functions may need from the running template."""

    max_len: int


@dataclass(frozen=True, slots=True)
class Function:
    """A builtin: its implementation and how many arguments it takes."""

    call: Callable[[FuncContext, Sequence[object]], object]
    min_args: int
    max_args: int | None


def _kind(value: object) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return None


def _norm(value: object) -> object:
    return None if value is MISSING else value


def _is_nil(value: object) -> bool:
    return value is None or (isinstance(value, GoSlice) and value.nil)


def _eq_one(a: object, b: object) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        if {ka, kb} == {"int", "float"}:
            return a == b
        if a is not None and b is not None:
            raise GoTemplateError(
                f"incompatible types for comparison: {go_type(a)} and {go_type(b)}"
            )
        return False
    if ka is not None:
        return a == b
    if _is_nil(a) or _is_nil(b):
        return _is_nil(a) == _is_nil(b)
    if isinstance(a, list | tuple | Mapping) or isinstance(b, list | tuple | Mapping):
        raise GoTemplateError(f"non-comparable type {go_type(b)}")
    return a == b


def _eq(_: FuncContext, args: Sequence[object]) -> object:
    first = _norm(args[0])
    return any(_eq_one(first, _norm(b)) for b in args[1:])


def _ne(ctx: FuncContext, args: Sequence[object]) -> object:
    return not _eq(ctx, args)


def _lt_pair(a: object, b: object) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka is None or kb is None or "bool" in (ka, kb):
        raise GoTemplateError("invalid type for comparison")
    if ka != kb and {ka, kb} != {"int", "float"}:
        raise GoTemplateError(f"incompatible types for comparison: {go_type(a)} and {go_type(b)}")
    return bool(a < b)  # type: ignore[operator]


def _lt(_: FuncContext, args: Sequence[object]) -> object:
    return _lt_pair(_norm(args[0]), _norm(args[1]))


def _le(_: FuncContext, args: Sequence[object]) -> object:
    a, b = _norm(args[0]), _norm(args[1])
    return _lt_pair(a, b) or _eq_one(a, b)


def _gt(ctx: FuncContext, args: Sequence[object]) -> object:
    return not _le(ctx, args)


def _ge(_: FuncContext, args: Sequence[object]) -> object:
    return not _lt_pair(_norm(args[0]), _norm(args[1]))


def _not(_: FuncContext, args: Sequence[object]) -> object:
    return not truth(args[0])


def _len(_: FuncContext, args: Sequence[object]) -> object:
    item = args[0]
    if item is MISSING:
        return 0
    if item is None:
        raise GoTemplateError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogatepass"))  # Go's len counts bytes
    if isinstance(item, bytes | list | tuple | Mapping):
        return len(item)
    raise GoTemplateError(f"len of type {go_type(item)}")


def _index_arg(index: object, cap: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise GoTemplateError(f"cannot index slice/array with type {go_type(index)}")
    if index < 0 or index > cap:
        raise GoTemplateError(f"index out of range: {index}")
    return index


def _index(_: FuncContext, args: Sequence[object]) -> object:
    item = _norm(args[0])
    if item is None:
        raise GoTemplateError("index of untyped nil")
    for index in args[1:]:
        if item is None:
            raise GoTemplateError("index of nil pointer")
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogatepass")
            i = _index_arg(index, len(data))
            if i >= len(data):
                raise GoTemplateError(f"index out of range: {i}")
            item = data[i]
        elif isinstance(item, list | tuple | bytes):
            i = _index_arg(index, len(item))
            if i >= len(item):
                raise GoTemplateError(f"index out of range: {i}")
            item = item[i]
        elif isinstance(item, Mapping):
            item = item.get(index)
        else:
            raise GoTemplateError(f"can't index item of type {go_type(item)}")
    return item


def _slice(_: FuncContext, args: Sequence[object]) -> object:
    item, indexes = _norm(args[0]), args[1:]
    if item is None:
        raise GoTemplateError("slice of untyped nil")
    if len(indexes) > 3:
        raise GoTemplateError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise GoTemplateError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, list | tuple):
        data = item  # type: ignore[assignment]
    else:
        raise GoTemplateError(f"can't slice item of type {go_type(item)}")
    idx = [0, len(data), len(data)]
    for n, index in enumerate(indexes):
        idx[n] = _index_arg(index, len(data))
    if idx[0] > idx[1] or idx[1] > idx[2]:
        raise GoTemplateError(f"invalid slice index: {idx[0]} > {idx[1]}")
    part = data[idx[0] : idx[1]]
    if isinstance(item, str):
        return bytes(part).decode("utf-8", "replace")
    if isinstance(item, GoSlice):
        return GoSlice(part, stringer=item.stringer)
    return list(part)


def _eval_args(args: Sequence[object]) -> str:
    """Go's ``evalArgs``: the arguments as ``fmt.Sprint`` prints them, nil as <no value>."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is None else a for a in args])


def _html(_: FuncContext, args: Sequence[object]) -> object:
    text = _eval_args(args)
    for ch, rep in (("&", "&amp;"), ("'", "&#39;"), ('"', "&#34;"), ("<", "&lt;"), (">", "&gt;")):
        text = text.replace(ch, rep)
    return text.replace("\0", "\ufffd")


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026"}
_JS["="] = "\\u003D"


def _js(_: FuncContext, args: Sequence[object]) -> object:
    out = []
    for ch in _eval_args(args):
        if ch in _JS:
            out.append(_JS[ch])
        elif ch < " ":
            out.append(f"\\u00{ord(ch):02X}")
        elif ord(ch) >= 0x80 and not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(_: FuncContext, args: Sequence[object]) -> object:
    return urllib.parse.quote_plus(_eval_args(args), safe="")


def _print(ctx: FuncContext, args: Sequence[object]) -> object:
    return sprint(args)


def _println(ctx: FuncContext, args: Sequence[object]) -> object:
    return sprintln(args)


def _printf(ctx: FuncContext, args: Sequence[object]) -> object:
    if not isinstance(args[0], str):
        raise GoTemplateError(f"wrong type for value; expected string; got {go_type(args[0])}")
    return sprintf(args[0], args[1:], ctx.max_len)


def _call(_: FuncContext, args: Sequence[object]) -> object:
    raise GoTemplateError(f"can't call non-function of type {go_type(args[0])}")


# --- Ollama's functions ---------------------------------------------------------------------


def _json(_: FuncContext, args: Sequence[object]) -> object:
    try:
        return marshal_json(args[0])
    except GoTemplateError:
        raise
    except ValueError:
        return ""  # Ollama ignores json.Marshal's error and prints the empty result


def _date_args(args: Sequence[object]) -> None:
    for arg in args:
        if not isinstance(arg, str):
            raise GoTemplateError(f"wrong type for value; expected string; got {go_type(arg)}")


def _current_date(_: FuncContext, args: Sequence[object]) -> object:
    _date_args(args)  # Ollama accepts and ignores a format argument
    return dt.date.today().isoformat()


def _yesterday_date(_: FuncContext, args: Sequence[object]) -> object:
    _date_args(args)
    return (dt.date.today() - dt.timedelta(days=1)).isoformat()


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "array": "any[]",
    "object": "Record<string, any>",
    "null": "null",
}


def _ts_type(prop: object, depth: int = 0) -> str:
    if depth > 50:
        raise GoTemplateError("data nested too deeply")
    if isinstance(prop, GoStruct):
        any_of, types = prop.get("AnyOf"), prop.get("Type")
    elif isinstance(prop, Mapping):
        any_of, types = prop.get("anyOf"), prop.get("type")
    else:
        return "any"
    if isinstance(any_of, list | tuple) and any_of:
        return " | ".join(_ts_type(p, depth + 1) for p in any_of)
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, list | tuple | PropertyType) or not names:
        return "any"
    return " | ".join(_TS_TYPES.get(str(t), "any") for t in names)


def _to_typescript_type(_: FuncContext, args: Sequence[object]) -> object:
    return _ts_type(args[0])


def _unreachable(_: FuncContext, args: Sequence[object]) -> object:
    raise AssertionError("and/or are evaluated by the executor")


FUNCS: Mapping[str, Function] = {
    "and": Function(_unreachable, 1, None),
    "or": Function(_unreachable, 1, None),
    "not": Function(_not, 1, 1),
    "len": Function(_len, 1, 1),
    "index": Function(_index, 1, None),
    "slice": Function(_slice, 1, None),
    "print": Function(_print, 0, None),
    "printf": Function(_printf, 1, None),
    "println": Function(_println, 0, None),
    "eq": Function(_eq, 2, None),
    "ne": Function(_ne, 2, 2),
    "lt": Function(_lt, 2, 2),
    "le": Function(_le, 2, 2),
    "gt": Function(_gt, 2, 2),
    "ge": Function(_ge, 2, 2),
    "html": Function(_html, 0, None),
    "js": Function(_js, 0, None),
    "urlquery": Function(_urlquery, 0, None),
    "call": Function(_call, 1, None),
    "json": Function(_json, 1, 1),
    "currentDate": Function(_current_date, 0, None),
    "yesterdayDate": Function(_yesterday_date, 0, None),
    "toTypeScriptType": Function(_to_typescript_type, 1, 1),
}
