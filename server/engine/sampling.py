"""Structured output: Ollama's ``format`` ("json" or a JSON schema) to a GBNF grammar.

The grammar sampler is placed first in each request's chain (see ``SamplerChain``), so every
sampled token keeps the output inside the grammar.
"""

from __future__ import annotations

import json
from typing import Any

from server.engine.llama_backend import JSON_GBNF, json_schema_to_gbnf

MAX_SCHEMA_BYTES = 256 * 1024


class InvalidFormat(ValueError):
    """The format is neither "json" nor a JSON schema we can turn into a grammar."""


def grammar_for_format(fmt: str | dict[str, Any] | None) -> str | None:
    """GBNF for a ``format`` value; None when there is no format."""
    if fmt is None or fmt == "":
        return None
    if isinstance(fmt, str):
        if fmt == "json":
            return JSON_GBNF
        raise InvalidFormat(
            f'invalid format {fmt!r}: expected "json" or a valid JSON Schema object'
        )
    return grammar_for_schema(fmt)


def grammar_for_schema(schema: dict[str, Any]) -> str:
    """GBNF for a JSON schema, or InvalidFormat saying what is wrong."""
    text = json.dumps(schema)
    if len(text) > MAX_SCHEMA_BYTES:
        raise InvalidFormat("invalid JSON schema: too large")
    if not schema:
        return JSON_GBNF
    try:
        return json_schema_to_gbnf(text)
    except (ValueError, KeyError, TypeError, AssertionError, RecursionError) as exc:
        raise InvalidFormat(f"invalid JSON schema in format: {exc}") from None
    except Exception as exc:  # the converter raises bare Exception for unsupported keywords
        raise InvalidFormat(f"unsupported JSON schema in format: {exc}") from None
