"""Python values as a Go template sees them: structs, maps, slices, printing and JSON.

Mapping of Python to Go:

- ``dict`` (any ``Mapping``) is a Go ``map[string]any``: ``.Key`` looks a key up and a missing
  key is nil (Ollama runs templates with ``missingkey=zero``), ``range`` visits keys in sorted
  order, ``%v`` prints ``map[k:v]`` and ``json`` sorts the keys, as Go does for maps.
- ``GoStruct`` is a Go struct: fields in declaration order, for ``json`` too. A field that
  does not exist is ``MISSING`` (Go would stop with an error; we render it as empty and falsy).
- ``list``/``tuple`` is a slice; ``GoSlice`` adds Go's nil slice (JSON ``null``) and an opt-in
  ``String()`` that prints JSON, like Ollama's ``templateTools``. ``GoMap`` does the same for
  maps (Ollama's ``templateArgs``, printed by ``{{ .Function.Arguments }}``).
- ``None`` is nil: an action prints it as ``<no value>``, ``print``/``printf`` as ``<nil>``.
- ``str``, ``bool``, ``int``, ``float`` are themselves; floats print as Go's ``%v``/JSON do.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType

from server.engine.gotemplate_ast import GoTemplateError

__all__ = [
    "MISSING",
    "GoMap",
    "GoSlice",
    "GoStruct",
    "PropertyType",
    "format_value",
    "go_float",
    "go_type",
    "json_float",
    "marshal_json",
    "print_value",
    "sort_keys",
    "truth",
]

# How deep printing or marshalling may recurse into data (a guard against hostile nesting).
MAX_DATA_DEPTH = 200


class _Missing:
    """A struct field that does not exist: falsy, prints as "", JSON null."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class _NoJSON:
    __slots__ = ()


_NO_JSON = _NoJSON()


class GoStruct:
    """A Go struct for templates: named fields in declaration order.

    ``.Name`` reads ``fields["Name"]``. ``json`` marshals ``json_value`` when one is given (for
    example a GoStruct with the lowercase, omitempty-applied JSON form of the same data), else
    the fields under their Go names, in order. With ``stringer=True`` the struct prints as its
    JSON, like Ollama types that have a ``String()`` method; otherwise as Go's ``%v``: ``{a b}``.
    """

    __slots__ = ("_fields", "_json_value", "_stringer")

    def __init__(
        self,
        fields: Mapping[str, object],
        *,
        json_value: object = _NO_JSON,
        stringer: bool = False,
    ) -> None:
        self._fields = dict(fields)
        self._json_value = json_value
        self._stringer = stringer

    @property
    def fields(self) -> Mapping[str, object]:
        """The fields, read-only."""
        return MappingProxyType(self._fields)

    @property
    def stringer(self) -> bool:
        """Whether the struct prints as its JSON."""
        return self._stringer

    @property
    def has_json_value(self) -> bool:
        """Whether ``json`` uses an explicit JSON form rather than the Go field names."""
        return not isinstance(self._json_value, _NoJSON)

    @property
    def json_value(self) -> object:
        """What ``json`` marshals: the explicit JSON form, or the struct itself."""
        return self if isinstance(self._json_value, _NoJSON) else self._json_value

    def get(self, name: str) -> object:
        """The field's value, or ``MISSING``."""
        return self._fields.get(name, MISSING)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoStruct) and self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"GoStruct({self._fields!r})"


class GoSlice(list[object]):
    """A Go slice: ``nil=True`` is a nil slice (JSON ``null``); ``stringer=True`` prints JSON."""

    __slots__ = ("nil", "stringer")

    def __init__(
        self, items: Iterable[object] = (), *, stringer: bool = False, nil: bool = False
    ) -> None:
        super().__init__(items)
        self.stringer = stringer
        self.nil = nil


class GoMap(dict[str, object]):
    """A Go map; ``stringer=True`` prints it as JSON (Ollama's ``templateArgs``)."""

    __slots__ = ("stringer",)

    def __init__(self, items: Mapping[str, object] | None = None, *, stringer: bool = False):
        super().__init__(items or {})
        self.stringer = stringer


class PropertyType(list[str]):
    """Ollama's ``PropertyType``: a JSON-schema type, one name or several.

    Prints as the name when there is one (``[a b]`` otherwise); JSON is a string or an array.
    """

    __slots__ = ()


# --- truth and type names -------------------------------------------------------------------


def truth(value: object) -> bool:
    """Go's template truth: false, 0, nil, and empty strings, slices and maps are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float):
        return value != 0
    if isinstance(value, str | bytes | list | tuple | Mapping):
        return len(value) > 0
    return True


def go_type(value: object) -> str:
    """The Go type name of a value, for error messages."""
    if value is None or value is MISSING:
        return "<nil>"
    names: list[tuple[type, str]] = [
        (bool, "bool"),
        (int, "int"),
        (float, "float64"),
        (str, "string"),
        (bytes, "[]uint8"),
        (PropertyType, "api.PropertyType"),
        (GoStruct, "struct"),
        (list, "[]interface {}"),
        (tuple, "[]interface {}"),
        (Mapping, "map[string]interface {}"),
    ]
    for cls, name in names:
        if isinstance(value, cls):
            return name
    return type(value).__name__


def sort_keys(keys: Iterable[object]) -> list[object]:
    """Map keys in Go's order (``fmtsort``): numbers numerically, strings by bytes."""

    def key(k: object) -> tuple[int, object]:
        if isinstance(k, bool):
            return (0, int(k))
        if isinstance(k, int | float):
            return (1, k)
        return (2, str(k))

    return sorted(keys, key=key)


# --- floats ---------------------------------------------------------------------------------


def _digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a finite non-zero |value|, and the exponent
    such that value = 0.d1d2d3… × 10**exp (Go's ``decimal.dp``)."""
    _, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    dp = len(digits) + int(exponent)
    return text, dp


def _exp_form(digits: str, dp: int, *, neg: bool) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = dp - 1
    return f"{'-' if neg else ''}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _plain_form(digits: str, dp: int, *, neg: bool) -> str:
    if dp <= 0:
        text = "0." + "0" * -dp + digits
    elif dp >= len(digits):
        text = digits + "0" * (dp - len(digits))
    else:
        text = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + text


def go_float(value: float) -> str:
    """A float64 as Go's ``%v`` prints it (shortest ``%g``: ``1e+06``, ``0.0001``, ``1.5``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, dp = _digits(value)
    # strconv's shortest %g picks the exponent form "if exp < -4 || exp >= eprec" with eprec 6.
    if not -4 <= dp - 1 < 6:
        return _exp_form(digits, dp, neg=value < 0)
    return _plain_form(digits, dp, neg=value < 0)


def json_float(value: float) -> str:
    """A float64 as Go's ``encoding/json`` writes it (``1``, ``1.5``, ``1e+21``, ``1e-7``)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError("unsupported value")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, dp = _digits(value)
    if abs(value) < 1e-6 or abs(value) >= 1e21:
        text = _exp_form(digits, dp, neg=value < 0)
        # Go cleans up e-09 to e-9 (but keeps e+21).
        mantissa, _, exp = text.partition("e")
        sign, num = exp[0], exp[1:].lstrip("0") or "0"
        return f"{mantissa}e{sign}{num}"
    return _plain_form(digits, dp, neg=value < 0)


# --- printing (fmt's %v) --------------------------------------------------------------------


def _check_depth(depth: int) -> None:
    if depth > MAX_DATA_DEPTH:
        raise GoTemplateError("data nested too deeply")


def format_value(value: object, depth: int = 0) -> str:
    """A value as Go's ``fmt`` prints it with ``%v``."""
    _check_depth(depth)
    if value is None:
        return "<nil>"
    if value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, PropertyType):
        return value[0] if len(value) == 1 else "[" + " ".join(value) + "]" if value else ""
    if isinstance(value, GoStruct):
        if value.stringer:
            return marshal_json(value.json_value, depth)
        return "{" + " ".join(format_value(v, depth + 1) for v in value.fields.values()) + "}"
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, GoSlice) and value.stringer:
        return marshal_json(value, depth)
    if isinstance(value, list | tuple):
        return "[" + " ".join(format_value(v, depth + 1) for v in value) + "]"
    if isinstance(value, GoMap) and value.stringer:
        return marshal_json(value, depth) if value else "{}"
    if isinstance(value, Mapping):
        items = (
            f"{format_value(k, depth + 1)}:{format_value(value[k], depth + 1)}"
            for k in sort_keys(value.keys())
        )
        return "map[" + " ".join(items) + "]"
    return str(value)


def print_value(value: object) -> str:
    """What ``{{ pipeline }}`` writes: nil is ``<no value>``, a missing field nothing."""
    if value is None:
        return "<no value>"
    return format_value(value)


# --- encoding/json --------------------------------------------------------------------------

_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        esc = _JSON_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":
            out.append("\ufffd")  # Go replaces invalid UTF-8 (our lone surrogates).
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def marshal_json(value: object, depth: int = 0) -> str:
    """``value`` as Go's ``json.Marshal`` writes it: compact, HTML-escaped, map keys sorted.

    Raises ValueError for what Go can't marshal (NaN, infinities, unknown objects).
    """
    _check_depth(depth)
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, PropertyType):
        return _json_string(value[0]) if len(value) == 1 else marshal_json(list(value), depth)
    if isinstance(value, GoStruct):
        if value.has_json_value:
            return marshal_json(value.json_value, depth)
        parts = (f"{_json_string(k)}:{marshal_json(v, depth + 1)}" for k, v in value.fields.items())
        return "{" + ",".join(parts) + "}"
    if isinstance(value, bytes):
        return _json_string(base64.b64encode(value).decode())
    if isinstance(value, GoSlice) and value.nil:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(marshal_json(v, depth + 1) for v in value) + "]"
    if isinstance(value, Mapping):
        keys = sort_keys(value.keys())
        parts = (f"{_json_string(str(k))}:{marshal_json(value[k], depth + 1)}" for k in keys)
        return "{" + ",".join(parts) + "}"
    raise ValueError(f"json: unsupported type {type(value).__name__}")
