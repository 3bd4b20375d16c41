"""GGUF chat templates run in an immutable sandbox with a deadline and size caps."""

from __future__ import annotations

import pytest

from models.defaults import default_gguf_path
from models.gguf import read_gguf
from server.engine.jinja import JinjaTemplate, TemplateRenderError
from server.engine.templates import ChatMessage, JinjaChatTemplate, RenderInput


def test_renders_the_default_models_own_template() -> None:
    source = read_gguf(default_gguf_path()).chat_template
    assert source
    template = JinjaChatTemplate(source, bos="<|im_start|>", eos="<|im_end|>")
    text = template.render(
        RenderInput([ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")])
    )
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",  # the classic SSTI escape
        "{{ messages.__class__ }}{{ cycler.__init__.__globals__ }}",
        "{% set _ = messages.append(1) %}",  # immutable: no mutation of our data
        "{{ raise_exception('no') }}",
        "{% for i in range(10**9) %}{% endfor %}",
        "{{ 'a' * 100000000 }}",
        "{{ 2 ** 100000 }}",
    ],
)
def test_hostile_templates_are_refused(source: str) -> None:
    with pytest.raises(TemplateRenderError):
        JinjaTemplate(source).render({"messages": [{"role": "user", "content": "x"}]})


def test_runaway_loops_hit_the_deadline() -> None:
    nested = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateRenderError, match="too long"):
        JinjaTemplate(nested, timeout_s=0.2).render({})


def test_huge_output_is_capped() -> None:
    loop = "{% for a in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"
    with pytest.raises(TemplateRenderError, match="too large"):
        JinjaTemplate(loop, timeout_s=30).render({})


def test_syntax_error_is_a_clear_error() -> None:
    with pytest.raises(TemplateRenderError, match="invalid chat template"):
        JinjaTemplate("{% for %}")
