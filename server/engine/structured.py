"""Structured output: a JSON schema is checked, then turned into a GBNF grammar llama.cpp enforces.

Three steps, each with a message that says what is wrong:

1. the schema must be valid against its JSON Schema meta-schema (``jsonschema``);
2. it may only use keywords the grammar can enforce: llama.cpp's converter silently ignores
   ``multipleOf``, ``uniqueItems``, ``not`` and friends, and a grammar that ignores a constraint
   produces output that does not validate, so those are refused instead;
3. the conversion itself (llama.cpp's ``json_schema_to_gbnf``), with integer bounds
   (``minimum``/``maximum``/``exclusive*``) added here, since the converter drops them.

Compiling the grammar needs a vocabulary; ``server.api.generation`` does that once a model is
loaded, before any token is generated.
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from collections.abc import Iterator
from typing import Any

from jsonschema import SchemaError, validators
from jsonschema.validators import Draft202012Validator

from server.engine.llama_backend import JSON_GBNF, json_schema_to_gbnf

__all__ = ["InvalidFormat", "grammar_for_format", "grammar_for_schema", "int_range_rule"]

MAX_SCHEMA_BYTES = 256 * 1024


class InvalidFormat(ValueError):
    """The format is neither "json" nor a JSON schema we can enforce with a grammar."""


MAX_DIGITS = 16  # the converter's own integers have at most 16 digits
_INT_LIMIT = 10**MAX_DIGITS - 1

# Assertions the grammar cannot enforce: refused rather than silently ignored.
UNSUPPORTED = frozenset(
    {
        "not", "if", "then", "else", "multipleOf", "uniqueItems", "contains", "minContains",
        "maxContains", "minProperties", "maxProperties", "patternProperties", "propertyNames",
        "dependentRequired", "dependentSchemas", "dependencies", "unevaluatedProperties",
        "unevaluatedItems", "$dynamicRef", "$recursiveRef", "contentSchema",
    }
)  # fmt: skip
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")


def grammar_for_format(fmt: str | dict[str, Any] | None) -> str | None:
    """GBNF for Ollama's ``format`` ("json" or a JSON schema); None when there is no format."""
    if fmt is None or fmt == "":
        return None
    if isinstance(fmt, str):
        if fmt == "json":
            return JSON_GBNF
        raise InvalidFormat(
            f'invalid format {fmt!r}: expected "json" or a valid JSON Schema object'
        )
    if not fmt:
        return JSON_GBNF
    return grammar_for_schema(fmt)


def grammar_for_schema(schema: dict[str, Any]) -> str:
    """GBNF whose language is the JSON documents valid against ``schema`` (InvalidFormat if not)."""
    if len(json.dumps(schema)) > MAX_SCHEMA_BYTES:
        raise InvalidFormat("invalid JSON schema: larger than 256 KiB")
    check_schema(schema)
    bounded: dict[str, tuple[int, int]] = {}
    try:
        rewritten = _rewrite(schema, "$", bounded)
        text = json_schema_to_gbnf(json.dumps(rewritten))
    except RecursionError:
        raise InvalidFormat("invalid JSON schema: nested too deeply") from None
    except InvalidFormat:
        raise
    except Exception as exc:  # the converter asserts, or raises bare exceptions
        raise InvalidFormat(f"unsupported JSON schema: {exc}") from None
    return _splice_integers(text, bounded)


def check_schema(schema: dict[str, Any]) -> None:
    """Validate against the schema's meta-schema (2020-12 unless ``$schema`` names another)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an unknown $schema falls back to the default
        cls = validators.validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = _path("$", exc.absolute_path)
        raise InvalidFormat(f"invalid JSON schema at {where}: {exc.message}") from None
    except RecursionError:
        raise InvalidFormat("invalid JSON schema: nested too deeply") from None


def _path(root: str, parts: Any) -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


# -- rewriting ------------------------------------------------------------------------------------
def _rewrite(node: Any, where: str, bounded: dict[str, tuple[int, int]]) -> Any:
    """A copy of the schema the converter handles faithfully; bounded integers become sentinels."""
    if node is True:
        return {}
    if node is False:
        raise InvalidFormat(f"unsupported JSON schema at {where}: a false schema matches nothing")
    if not isinstance(node, dict):
        return copy.deepcopy(node)
    for key in node:
        if key in UNSUPPORTED:
            raise InvalidFormat(f"unsupported JSON schema keyword {key!r} at {where}")
    out = dict(node)
    for key in _SCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            out[key] = {k: _rewrite(v, f"{where}.{key}.{k}", bounded) for k, v in node[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(node.get(key), list):
            out[key] = [
                _rewrite(v, f"{where}.{key}[{i}]", bounded) for i, v in enumerate(node[key])
            ]
    for key in ("items", "additionalProperties"):
        value = node.get(key)
        if isinstance(value, dict):
            out[key] = _rewrite(value, f"{where}.{key}", bounded)
        elif key == "items" and isinstance(value, list):  # draft 4-7 tuples
            out[key] = [_rewrite(v, f"{where}.items[{i}]", bounded) for i, v in enumerate(value)]
    _check_object(out, where)
    if "allOf" in node:
        out = _single_all_of(out, where, bounded)
    types = node.get("type")
    if isinstance(types, list) and len(types) > 1 and any(k in node for k in _BOUNDS):
        # The converter drops everything but the type for a type list: one branch per type.
        rest = {k: v for k, v in out.items() if k != "type"}
        alts = [_rewrite({**rest, "type": t}, f"{where}|{t}", bounded) for t in types]
        return {"anyOf": alts}
    untyped_items = "items" not in node and "prefixItems" not in node
    if types in ("array", None) and untyped_items and ("minItems" in node or "maxItems" in node):
        out["items"] = {}
    return _bounded_integer(out, where, bounded)


def _check_object(node: dict[str, Any], where: str) -> None:
    props = node.get("properties") or {}
    for name in node.get("required") or []:
        if name not in props:  # the grammar only ever writes listed properties for sure
            raise InvalidFormat(
                f"unsupported JSON schema at {where}: required property {name!r} "
                "is not listed in properties"
            )
    shaped = "pattern" in node or "format" in node
    if node.get("type") == "string" and shaped and ("minLength" in node or "maxLength" in node):
        raise InvalidFormat(
            f"unsupported JSON schema at {where}: minLength/maxLength cannot be "
            "combined with pattern or format"
        )


def _single_all_of(
    node: dict[str, Any], where: str, bounded: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    parts = node["allOf"]
    others = {k for k in node if k not in ("allOf", "title", "description", "default", "$defs")}
    if len(parts) != 1 or others:
        raise InvalidFormat(
            f"unsupported JSON schema at {where}: allOf is only supported with one subschema"
        )
    merged = {k: v for k, v in node.items() if k != "allOf"}
    inner = _rewrite(parts[0], f"{where}.allOf[0]", bounded)
    if not isinstance(inner, dict):
        raise InvalidFormat(f"unsupported JSON schema at {where}.allOf[0]")
    return {**merged, **inner}


def _bounded_integer(
    node: dict[str, Any], where: str, bounded: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    if not any(k in node for k in _BOUNDS) or "const" in node or "enum" in node:
        return node
    if node.get("type") != "integer":
        if node.get("type") in ("number", None):
            raise InvalidFormat(
                f"unsupported JSON schema at {where}: minimum/maximum are only supported "
                'on "type": "integer"'
            )
        return node  # bounds on a string or object are no-ops in JSON Schema
    lo, hi = -_INT_LIMIT, _INT_LIMIT
    if "minimum" in node:
        lo = max(lo, math.ceil(node["minimum"]))
    if "exclusiveMinimum" in node:
        lo = max(lo, math.floor(node["exclusiveMinimum"]) + 1)
    if "maximum" in node:
        hi = min(hi, math.floor(node["maximum"]))
    if "exclusiveMaximum" in node:
        hi = min(hi, math.ceil(node["exclusiveMaximum"]) - 1)
    if lo > hi:
        raise InvalidFormat(f"invalid JSON schema at {where}: no integer satisfies its bounds")
    sentinel = f"__quantserve_int_{len(bounded)}__"
    bounded[sentinel] = (lo, hi)
    return {"const": sentinel}


def _splice_integers(gbnf: str, bounded: dict[str, tuple[int, int]]) -> str:
    if not bounded:
        return gbnf
    prefix = "qs-bounded-int"
    while re.search(rf"^{prefix}", gbnf, re.MULTILINE):
        prefix += "-x"
    rules = [f'{prefix}-space ::= " "?']
    for i, (sentinel, (lo, hi)) in enumerate(bounded.items()):
        literal = '"\\"' + sentinel + '\\""'
        if literal not in gbnf:
            raise InvalidFormat("unsupported JSON schema: could not place an integer range")
        gbnf = gbnf.replace(literal, f"{prefix}-{i}")
        rules.append(f"{prefix}-{i} ::= ( {int_range_rule(lo, hi)} ) {prefix}-space")
    return gbnf + "\n" + "\n".join(rules)


# -- integer ranges -------------------------------------------------------------------------------
def int_range_rule(lo: int, hi: int) -> str:
    """A GBNF expression for the JSON integers n with lo <= n <= hi (no leading zeros, no -0)."""
    lo, hi = max(lo, -_INT_LIMIT), min(hi, _INT_LIMIT)
    if lo > hi:
        raise ValueError("empty range")
    alts: list[str] = []
    if lo < 0:
        magnitudes = list(_non_negative(max(-hi, 1), -lo))
        alts.append('"-" ( ' + " | ".join(magnitudes) + " )")
    if hi >= 0:
        alts.extend(_non_negative(max(lo, 0), hi))
    return " | ".join(alts)


def _non_negative(a: int, b: int) -> Iterator[str]:
    for n in range(len(str(a)), len(str(b)) + 1):
        low = max(a, 10 ** (n - 1) if n > 1 else 0)
        high = min(b, 10**n - 1)
        if low <= high:
            yield from _same_length(str(low), str(high))


def _same_length(x: str, y: str) -> Iterator[str]:
    """Sequences matching exactly the digit strings d of len(x) with x <= d <= y."""
    i = 0
    while i < len(x) and x[i] == y[i]:
        i += 1
    if i == len(x):
        yield f'"{x}"'
        return
    head = f'"{x[:i]}" ' if i else ""
    xs, ys = x[i:], y[i:]
    rest = len(xs) - 1
    if rest == 0:
        yield head + _digits(int(xs), int(ys))
        return
    low_full, high_full = xs[1:] == "0" * rest, ys[1:] == "9" * rest
    first, last = int(xs[0]) + (not low_full), int(ys[0]) - (not high_full)
    if not low_full:
        for tail in _same_length(xs[1:], "9" * rest):
            yield f'{head}"{xs[0]}" {tail}'
    if first <= last:
        yield f"{head}{_digits(first, last)} [0-9]{{{rest}}}"
    if not high_full:
        for tail in _same_length("0" * rest, ys[1:]):
            yield f'{head}"{ys[0]}" {tail}'


def _digits(a: int, b: int) -> str:
    return f'"{a}"' if a == b else f"[{a}-{b}]"
