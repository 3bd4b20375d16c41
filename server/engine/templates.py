"""Chat templates: the model's template layer (Go or Jinja) or else the GGUF's Jinja template.

Precedence follows Ollama: a template layer in the store wins over ``tokenizer.chat_template``.
A layer is Go ``text/template`` text unless it looks like Jinja. A model with neither renders
messages as plain text (Ollama's ``{{ .Prompt }}`` default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.engine import gotemplate
from server.engine.jinja import JinjaTemplate, TemplateRenderError

__all__ = ["ChatMessage", "ChatTemplate", "TemplateRenderError", "load_template"]


@dataclass(frozen=True)
class ToolCall:
    """A call the assistant made: a function name and its arguments."""

    name: str
    arguments: dict[str, Any]
    id: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation, as the templates see it."""

    role: str
    content: str = ""
    images: tuple[bytes, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str | None = None
    tool_call_id: str | None = None
    thinking: str | None = None


@dataclass(frozen=True)
class RenderInput:
    """Everything a template can use."""

    messages: Sequence[ChatMessage]
    tools: Sequence[dict[str, Any]] = ()
    add_generation_prompt: bool = True
    think: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChatTemplate(Protocol):
    """A renderer for one model's prompt format."""

    source: str
    kind: str

    def render(self, data: RenderInput) -> str:
        """The prompt text for these messages."""
        ...

    def uses(self, feature: str) -> bool:
        """Whether the template handles ``tools``, ``suffix``, ``thinking``..."""
        ...


class JinjaChatTemplate:
    """A GGUF (HF) Jinja chat template."""

    kind = "jinja"

    def __init__(self, source: str, *, bos: str, eos: str) -> None:
        self.source = source
        self._template = JinjaTemplate(source)
        self._bos, self._eos = bos, eos

    def uses(self, feature: str) -> bool:
        if feature == "tools":
            return "tools" in self.source or "tool_call" in self.source
        if feature == "thinking":
            return "<think>" in self.source and "</think>" in self.source
        return feature in self.source

    def render(self, data: RenderInput) -> str:
        messages = [_jinja_message(m) for m in data.messages]
        variables: dict[str, Any] = {
            "messages": messages,
            "add_generation_prompt": data.add_generation_prompt,
            "bos_token": self._bos,
            "eos_token": self._eos,
            **data.extra,
        }
        if data.tools:
            variables["tools"] = list(data.tools)
        if data.think is not None:
            variables["enable_thinking"] = data.think
        return self._template.render(variables)


def _jinja_message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "type": "function",
                "id": c.id,
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in m.tool_calls
        ]
    if m.tool_name:
        out["name"] = m.tool_name
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.thinking:
        out["reasoning_content"] = m.thinking
    return out


class GoChatTemplate:
    """An Ollama template layer written in Go ``text/template``."""

    kind = "go"

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._template = gotemplate.GoTemplate.parse(source)
        except gotemplate.GoTemplateError as exc:
            raise TemplateRenderError(f"invalid template: {exc}") from None

    def uses(self, feature: str) -> bool:
        field_name = {"tools": "Tools", "suffix": "Suffix", "thinking": "Think"}.get(
            feature, feature
        )
        return self._template.uses(field_name)

    def render(self, data: RenderInput) -> str:
        try:
            return gotemplate.render_chat(
                self._template,
                messages=[_go_message(m) for m in data.messages],
                tools=list(data.tools) or None,
                think=data.think,
                **data.extra,
            )
        except gotemplate.GoTemplateError as exc:
            raise TemplateRenderError(f"template failed: {exc}") from None


def _go_message(m: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "function": {"index": c.index, "name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_name:
        out["tool_name"] = m.tool_name
    if m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    if m.thinking:
        out["thinking"] = m.thinking
    return out


class PlainTemplate:
    """No template at all: the messages' text, concatenated (Ollama's ``{{ .Prompt }}``)."""

    kind = "none"
    source = "{{ .Prompt }}"

    def uses(self, feature: str) -> bool:
        return False

    def render(self, data: RenderInput) -> str:
        return "".join(m.content for m in data.messages if m.role != "system")


def load_template(layer: str | None, gguf: str | None, *, bos: str, eos: str) -> ChatTemplate:
    """Pick the template by Ollama's precedence: template layer, then the GGUF's, then none."""
    if layer:
        if gotemplate.looks_like_jinja(layer):
            return JinjaChatTemplate(layer, bos=bos, eos=eos)
        return GoChatTemplate(layer)
    if gguf:
        return JinjaChatTemplate(gguf, bos=bos, eos=eos)
    return PlainTemplate()
