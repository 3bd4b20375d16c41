"""OLLAMA_HOST parsing, and the environment used only when no host is given."""

from __future__ import annotations

import pytest

from clients import AsyncClient, Client, parse_host


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("  ", "http://127.0.0.1:11434"),
        ('"example.com"', "http://example.com:11434"),
        ("example.com", "http://example.com:11434"),
        ("Example.COM:8080", "http://example.com:8080"),
        (":56789", "http://127.0.0.1:56789"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:9000", "http://[::1]:9000"),
        ("[fe80::1]", "http://[fe80::1]:11434"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("HTTPS://example.com:8443/", "https://example.com:8443"),
        ("example.com/ollama/", "http://example.com:11434/ollama"),
        ("example.com:99999", "http://example.com:11434"),
    ],
)
def test_parse_host(host: str | None, url: str) -> None:
    assert parse_host(host) == url


def test_ollama_host_is_the_default_when_no_host_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:7777")
    assert AsyncClient().base_url == "http://127.0.0.1:7777"
    assert Client().base_url == "http://127.0.0.1:7777"


def test_an_explicit_host_wins_over_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "elsewhere:1")
    assert AsyncClient("here").base_url == "http://here:11434"
    assert Client("").base_url == "http://127.0.0.1:11434"


def test_no_ollama_host_means_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert AsyncClient().base_url == "http://127.0.0.1:11434"
