"""GGUF chat templates are code: render them in an immutable Jinja sandbox with a deadline.

The sandbox blocks attribute escapes (``''.__class__``); the deadline and the size caps stop
templates that would otherwise run for ever (nested ``range`` loops, string multiplication).
The check runs on every function call, every ``range`` step, every binary ``*``/``**`` and every
emitted chunk, so a runaway template is interrupted within milliseconds of its deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import TemplateError, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT_CHARS = 4 * 1024 * 1024
MAX_RANGE = 100_000


class TemplateRenderError(ValueError):
    """The template failed, was refused by the sandbox, or ran past its limits."""


class _GenerationTag(Extension):
    """HF's ``{% generation %}…{% endgeneration %}`` marks assistant spans: render the body."""

    tags = {"generation"}  # noqa: RUF012 - jinja's API

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


class _DeadlineEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=["jinja2.ext.loopcontrols", _GenerationTag],
        )
        self.deadline = float("inf")
        self.globals["range"] = self._range
        self.globals["raise_exception"] = _raise
        self.globals["strftime_now"] = lambda fmt: datetime.now(UTC).strftime(fmt)
        self.filters["tojson"] = _tojson

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateRenderError("chat template took too long to render")

    def _range(self, *args: int) -> Iterator[int]:
        r = range(*args)
        if len(r) > MAX_RANGE:
            raise TemplateRenderError("chat template range is too large")
        for i in r:
            self.check()
            yield i

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        self.check()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.check()
        if (
            operator == "*"
            and isinstance(left, str | list)
            and isinstance(right, int)
            and len(left) * right > MAX_OUTPUT_CHARS
        ):
            raise TemplateRenderError("chat template builds a value that is too large")
        if operator == "**" and isinstance(right, int) and right > 1024:
            raise TemplateRenderError("chat template exponent is too large")
        return super().call_binop(context, operator, left, right)


def _raise(message: str) -> None:
    raise TemplateRenderError(f"chat template error: {message}")


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    # HF's tojson: no HTML escaping, unicode kept.
    return json.dumps(value, ensure_ascii=False, indent=indent)


class JinjaTemplate:
    """A compiled GGUF chat template (HF ``apply_chat_template`` conventions)."""

    def __init__(self, source: str, *, timeout_s: float = 2.0) -> None:
        self._env = _DeadlineEnvironment()
        self._timeout = timeout_s
        self.source = source
        try:
            self._template = self._env.from_string(source)
        except TemplateError as exc:
            raise TemplateRenderError(f"invalid chat template: {exc}") from None

    def render(self, variables: Mapping[str, Any]) -> str:
        """Render with a deadline and an output cap."""
        self._env.deadline = time.monotonic() + self._timeout
        out: list[str] = []
        size = 0
        try:
            for piece in self._template.generate(**variables):
                size += len(piece)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateRenderError("chat template output is too large")
                self._env.check()
                out.append(piece)
        except TemplateRenderError:
            raise
        except (TemplateError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise TemplateRenderError(f"chat template failed: {exc}") from None
        finally:
            self._env.deadline = float("inf")
        return "".join(out)
