from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.names import InvalidModelName, ModelName


@pytest.mark.parametrize(
    ("text", "parts", "display"),
    [
        ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m"), "smollm2:135m"),
        ("llama3.2", ("registry.ollama.ai", "library", "llama3.2", "latest"), "llama3.2:latest"),
        ("me/my-model:v1.0", ("registry.ollama.ai", "me", "my-model", "v1.0"), "me/my-model:v1.0"),
        (
            "hf.co/bartowski/Qwen2.5-GGUF:Q4_K_M",
            ("hf.co", "bartowski", "Qwen2.5-GGUF", "Q4_K_M"),
            "hf.co/bartowski/Qwen2.5-GGUF:Q4_K_M",
        ),
        (
            "localhost:5000/ns/m",
            ("localhost:5000", "ns", "m", "latest"),
            "localhost:5000/ns/m:latest",
        ),
        (
            "https://example.com/ns/m:t",
            ("example.com", "ns", "m", "t"),
            "example.com/ns/m:t",
        ),
        ("Registry.Ollama.AI/Library/X:Y", ("Registry.Ollama.AI", "Library", "X", "Y"), "X:Y"),
        ("_private", ("registry.ollama.ai", "library", "_private", "latest"), "_private:latest"),
    ],
)
def test_parse_and_display(text: str, parts: tuple[str, str, str, str], display: str) -> None:
    name = ModelName.parse(text)
    assert name.manifest_parts == parts
    assert (name.host, name.namespace, name.model, name.tag) == parts
    assert str(name) == display == name.display
    assert ModelName.parse(name.full) == name
    assert ModelName.parse(display).key == name.key


def test_key_is_case_insensitive() -> None:
    a, b = ModelName.parse("SmolLM2:135M"), ModelName.parse("smollm2:135m")
    assert a != b
    assert a.key == b.key == ("registry.ollama.ai", "library", "smollm2", "135m")
    assert a.equal_fold(b)


def test_length_limits() -> None:
    assert ModelName.parse("a" * 80).model == "a" * 80
    assert ModelName.parse("m:" + "t" * 80).tag == "t" * 80
    host = "h" * 350
    assert ModelName.parse(f"{host}/ns/m").host == host
    for text in ("a" * 81, "m:" + "t" * 81, "n" * 81 + "/m", "h" * 351 + "/ns/m"):
        with pytest.raises(InvalidModelName):
            ModelName.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../x",
        "..",
        ".",
        "a/../b",
        "x/../../etc/passwd",
        "/abs/path",
        "/etc/passwd:latest",
        "a/b/c/d",
        "m:",
        ":tag",
        "m:t:t",
        "ns/",
        "/m",
        "a//b",
        ".hidden",
        "m:.hidden",
        "-dash",
        "m..x",
        "ns.dot/m",
        "with space",
        "tab\tname",
        "nul\x00byte",
        "back\\slash",
        "C:\\models\\x",
        "m:t/x",
        "emoji😀",
        "ftp://host/ns/m",
        "https://m",
        "m\n",
    ],
)
def test_invalid_names(text: str) -> None:
    with pytest.raises(InvalidModelName) as info:
        ModelName.parse(text)
    assert str(info.value).startswith("invalid model name")
    assert isinstance(info.value, ValueError)


def test_non_string_and_direct_construction_are_validated() -> None:
    with pytest.raises(InvalidModelName):
        ModelName.parse(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidModelName):
        ModelName("registry.ollama.ai", "library", "../x", "latest")
    with pytest.raises(InvalidModelName):
        ModelName("registry.ollama.ai", "lib/rary", "x", "latest")


_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcXYZ019_.-:/\\\x00 ", max_size=30))
def test_anything_accepted_is_a_safe_path_component(text: str) -> None:
    try:
        name = ModelName.parse(text)
    except InvalidModelName:
        return
    for part in name.manifest_parts:
        assert _PART.fullmatch(part)
        assert ".." not in part and "/" not in part and "\\" not in part
    assert ModelName.parse(name.full) == name
