"""Model parameters (PARAMETER lines, the params layer), typed like Ollama's options."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping

__all__ = [
    "BOOL_OPTIONS",
    "DEPRECATED_OPTIONS",
    "FLOAT_OPTIONS",
    "INT_OPTIONS",
    "LIST_OPTIONS",
    "parse_parameters",
    "validate_parameters",
]

logger = logging.getLogger(__name__)

# api.Options + api.Runner fields, by JSON name and Go kind.
INT_OPTIONS = frozenset(
    {
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "mirostat",
        "draft_num_predict",
    }
)
FLOAT_OPTIONS = frozenset(
    {
        "temperature",
        "top_p",
        "min_p",
        "typical_p",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
        "mirostat_tau",
        "mirostat_eta",
        "tfs_z",
    }
)
BOOL_OPTIONS = frozenset(
    {
        "numa",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mmap",
        "use_mlock",
        "penalize_newline",
    }
)
LIST_OPTIONS = frozenset({"stop"})
# Ollama's parser warns about and drops these (parser.deprecatedParameters).
DEPRECATED_OPTIONS = frozenset(
    {
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    }
)

_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _parse_one(key: str, text: str) -> object:
    if key in INT_OPTIONS:
        if _INT_RE.fullmatch(text) is None or not _INT64[0] <= int(text) <= _INT64[1]:
            raise ValueError(f"invalid int value [{text}]")
        return int(text)
    if key in FLOAT_OPTIONS:
        if _FLOAT_RE.fullmatch(text) is None or not math.isfinite(float(text)):
            raise ValueError(f"invalid float value [{text}]")
        return float(text)
    if key in BOOL_OPTIONS:
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"invalid bool value [{text}]")
    raise ValueError(f"unknown parameter '{key}'")


def parse_parameters(pairs: Iterable[tuple[str, str]]) -> dict[str, object]:
    """Type ``(key, text)`` pairs as Ollama's ``api.FormatParams`` does.

    ``stop`` accumulates into a list; for other keys the last value wins; deprecated
    keys are dropped with a warning; unknown keys and bad values raise ``ValueError``.
    """
    out: dict[str, object] = {}
    for key, text in pairs:
        if key in DEPRECATED_OPTIONS:
            logger.warning("parameter %s is deprecated and ignored", key)
            continue
        if key in LIST_OPTIONS:
            stops = out.get(key)
            if not isinstance(stops, list):
                stops = out[key] = []
            stops.append(text)
            continue
        out[key] = _parse_one(key, text)
    return out


def _check_typed(key: str, value: object) -> object:
    if key in LIST_OPTIONS:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError(f'option "{key}" must be a list of strings')
    if key in BOOL_OPTIONS:
        if isinstance(value, bool):
            return value
        raise ValueError(f'option "{key}" must be of type boolean')
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "integer" if key in INT_OPTIONS else "number"
        raise ValueError(f'option "{key}" must be of type {kind}')
    if not math.isfinite(value):
        raise ValueError(f'option "{key}" must be a finite number')
    if key in INT_OPTIONS:
        if not float(value).is_integer() or not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f'option "{key}" must be of type integer')
        return int(value)
    return float(value)


def validate_parameters(params: Mapping[str, object]) -> dict[str, object]:
    """Check JSON-typed parameters (``/api/create`` ``parameters``, a params layer).

    Unknown keys are dropped with a warning (Ollama's ``Options.FromMap``); values of
    the wrong type raise ``ValueError``.
    """
    out: dict[str, object] = {}
    for key, value in params.items():
        if key not in INT_OPTIONS | FLOAT_OPTIONS | BOOL_OPTIONS | LIST_OPTIONS:
            logger.warning("ignoring unknown parameter %r", key)
            continue
        out[key] = _check_typed(key, value)
    return out
