"""Settings: every QUANTSERVE_*/OLLAMA_* variable is read, validated and described."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from ollama._client import _parse_host

from server.settings import (
    EngineSettings,
    ServerSettings,
    SettingsError,
    StoreSettings,
    describe_settings,
    load_settings,
    split_host,
)

# field -> (variable suffix, value as set in the environment, parsed value, section)
CASES: dict[str, tuple[str, str, Any, str]] = {
    "host": ("HOST", "0.0.0.0:8080", "0.0.0.0:8080", "server"),
    "origins": (
        "ORIGINS",
        "https://a.example,http://b:*",
        "https://a.example,http://b:*",
        "server",
    ),
    "log_format": ("LOG_FORMAT", "json", "json", "server"),
    "log_level": ("LOG_LEVEL", "DEBUG", "DEBUG", "server"),
    "keep_alive": ("KEEP_ALIVE", "1h30m", "1h30m", "engine"),
    "num_parallel": ("NUM_PARALLEL", "7", 7, "engine"),
    "max_loaded_models": ("MAX_LOADED_MODELS", "2", 2, "engine"),
    "max_queue": ("MAX_QUEUE", "9", 9, "engine"),
    "context_length": ("CONTEXT_LENGTH", "8192", 8192, "engine"),
    "kv_cache_type": ("KV_CACHE_TYPE", "q4_0", "q4_0", "engine"),
    "flash_attention": ("FLASH_ATTENTION", "1", True, "engine"),
    "num_thread": ("NUM_THREAD", "3", 3, "engine"),
    "num_batch": ("NUM_BATCH", "64", 64, "engine"),
    "load_timeout": ("LOAD_TIMEOUT", "90s", "90s", "engine"),
    "models": ("MODELS", "/srv/models", Path("/srv/models"), "store"),
    "embed_default_model": ("EMBED_DEFAULT_MODEL", "false", False, "store"),
}
QUANTSERVE_ONLY = {"embed_default_model"}
ALL_FIELDS = {
    name for cls in (ServerSettings, EngineSettings, StoreSettings) for name in cls.model_fields
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No QUANTSERVE_*/OLLAMA_* variable from the outer environment leaks in."""
    for key in list(os.environ):
        if key.startswith(("QUANTSERVE_", "OLLAMA_")):
            monkeypatch.delenv(key)


def _get(field: str) -> Any:
    settings = load_settings()
    return getattr(getattr(settings, CASES[field][3]), field)


def test_every_setting_has_a_case_here() -> None:
    # A new setting must be added to CASES (and so gets its variables tested).
    assert set(CASES) == ALL_FIELDS


def test_defaults() -> None:
    s = load_settings()
    assert s.server.bind == ("127.0.0.1", 11434)
    assert s.engine.keep_alive_seconds == 300
    assert s.engine.kv_cache_type == "f16"
    assert s.engine.flash_attention is None
    assert s.engine.load_timeout_seconds == 300
    assert s.store.root == Path("~/.ollama/models").expanduser()
    assert s.store.embed_default_model is True


@pytest.mark.parametrize("field", sorted(set(CASES) - QUANTSERVE_ONLY))
def test_ollama_variable_is_read(field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix, raw, parsed, _ = CASES[field]
    monkeypatch.setenv(f"OLLAMA_{suffix}", raw)
    assert _get(field) == parsed


@pytest.mark.parametrize("field", sorted(CASES))
def test_quantserve_variable_is_read(field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix, raw, parsed, _ = CASES[field]
    monkeypatch.setenv(f"QUANTSERVE_{suffix}", raw)
    assert _get(field) == parsed


def test_quantserve_wins_over_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "2")
    monkeypatch.setenv("QUANTSERVE_NUM_PARALLEL", "5")
    monkeypatch.setenv("OLLAMA_KEEP_ALIVE", "1m")
    monkeypatch.setenv("QUANTSERVE_KEEP_ALIVE", "2m")
    s = load_settings()
    assert s.engine.num_parallel == 5
    assert s.engine.keep_alive_seconds == 120


def test_ollama_embed_default_model_is_not_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not an Ollama setting: only the QUANTSERVE_ name exists.
    monkeypatch.setenv("OLLAMA_EMBED_DEFAULT_MODEL", "false")
    assert load_settings().store.embed_default_model is True


@pytest.mark.parametrize("bare", ["HOST", "KEEP_ALIVE", "NUM_PARALLEL", "MODELS", "LOG_LEVEL"])
def test_bare_names_are_not_read(bare: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # HOST, MODELS... are common shell variables: only prefixed names configure the server.
    monkeypatch.setenv(bare, "5x:bad")
    s = load_settings()  # no error: the bad value is not seen
    assert s.server.host == "127.0.0.1:11434"
    assert s.engine.keep_alive == "5m"
    assert s.store.models == Path("~/.ollama/models")


@pytest.mark.parametrize("suffix", ["MODELS", "NUM_PARALLEL", "KEEP_ALIVE", "FLASH_ATTENTION"])
def test_empty_variable_means_unset(suffix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ollama's envconfig treats OLLAMA_X= like an unset variable.
    defaults = load_settings()
    monkeypatch.setenv(f"OLLAMA_{suffix}", "")
    assert load_settings() == defaults


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "2")
    assert load_settings(num_parallel=3).engine.num_parallel == 3


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OLLAMA_NUM_PARALLEL": "abc"}, "OLLAMA_NUM_PARALLEL"),
        ({"QUANTSERVE_NUM_PARALLEL": "0"}, "QUANTSERVE_NUM_PARALLEL"),
        ({"OLLAMA_KEEP_ALIVE": "5x"}, "OLLAMA_KEEP_ALIVE"),
        ({"QUANTSERVE_KEEP_ALIVE": "--1m"}, "QUANTSERVE_KEEP_ALIVE"),
        ({"OLLAMA_KV_CACHE_TYPE": "q2"}, "OLLAMA_KV_CACHE_TYPE"),
        ({"OLLAMA_FLASH_ATTENTION": "maybe"}, "OLLAMA_FLASH_ATTENTION"),
        ({"OLLAMA_HOST": "127.0.0.1:99999"}, "OLLAMA_HOST"),
        ({"OLLAMA_HOST": "a b"}, "OLLAMA_HOST"),
        ({"OLLAMA_MAX_LOADED_MODELS": "-1"}, "OLLAMA_MAX_LOADED_MODELS"),
        ({"OLLAMA_MAX_QUEUE": "0"}, "OLLAMA_MAX_QUEUE"),
        ({"OLLAMA_CONTEXT_LENGTH": "-5"}, "OLLAMA_CONTEXT_LENGTH"),
        ({"OLLAMA_LOAD_TIMEOUT": "forever"}, "OLLAMA_LOAD_TIMEOUT"),
        ({"OLLAMA_LOG_LEVEL": "verbose"}, "OLLAMA_LOG_LEVEL"),
        ({"OLLAMA_LOG_FORMAT": "xml"}, "OLLAMA_LOG_FORMAT"),
        ({"OLLAMA_NUM_THREAD": "x"}, "OLLAMA_NUM_THREAD"),
        ({"OLLAMA_NUM_BATCH": "0"}, "OLLAMA_NUM_BATCH"),
        ({"QUANTSERVE_EMBED_DEFAULT_MODEL": "perhaps"}, "QUANTSERVE_EMBED_DEFAULT_MODEL"),
        (
            {"OLLAMA_FLASH_ATTENTION": "0", "OLLAMA_KV_CACHE_TYPE": "q8_0"},
            "OLLAMA_KV_CACHE_TYPE",
        ),
        (
            {"QUANTSERVE_FLASH_ATTENTION": "false", "OLLAMA_KV_CACHE_TYPE": "q4_0"},
            "QUANTSERVE_FLASH_ATTENTION",
        ),
    ],
)
def test_bad_value_names_the_variable(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert named in message
    assert "\n" not in message
    assert "?" not in message.split(":")[0]


def test_quantized_kv_cache_with_flash_attention_on_or_auto(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OLLAMA_KV_CACHE_TYPE", "q8_0")
    assert load_settings().engine.flash_attention is None
    monkeypatch.setenv("OLLAMA_FLASH_ATTENTION", "1")
    assert load_settings().engine.flash_attention is True


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5m", 300.0), ("30", 30.0), ("-1", None), ("-1m", None), ("0", 0.0), ("1h", 3600.0)],
)
def test_keep_alive_seconds(value: str, seconds: float | None) -> None:
    assert load_settings(keep_alive=value).engine.keep_alive_seconds == seconds


@pytest.mark.parametrize(("value", "seconds"), [("0", None), ("-1s", None), ("2m", 120.0)])
def test_load_timeout_seconds(value: str, seconds: float | None) -> None:
    assert load_settings(load_timeout=value).engine.load_timeout_seconds == seconds


def test_threads_never_exceed_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert load_settings(num_thread=0).engine.threads == cores
    assert load_settings(num_thread=1024).engine.threads == cores
    assert load_settings(num_thread=1).engine.threads == 1


def test_store_root_expands_user() -> None:
    assert load_settings(models=Path("~/m")).store.root == Path.home() / "m"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 11434)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        (":8080", ("127.0.0.1", 8080)),
        ("http://example.com", ("example.com", 80)),
        ("https://example.com", ("example.com", 443)),
        ("http://10.0.0.1:9000", ("10.0.0.1", 9000)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", 11434)),
        ("example.com/", ("example.com", 11434)),
        ('"0.0.0.0:1234"', ("0.0.0.0", 1234)),
        (" 0.0.0.0:1234 ", ("0.0.0.0", 1234)),
    ],
)
def test_split_host(value: str, expected: tuple[str, int]) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "1.2.3.4",
        ":56789",
        "1.2.3.4:56789",
        "http://1.2.3.4",
        "https://1.2.3.4",
        "https://example.com:56789",
        "example.com/",
        "[0001:002:003:0004::1]:56789",
        "http://[0001:002:003:0004::1]",
    ],
)
def test_server_binds_where_the_ollama_client_connects(value: str) -> None:
    # The same OLLAMA_HOST must point the official client at the server.
    host, port = split_host(value)
    url = _parse_host(value)
    assert url.rsplit(":", 1)[1] == str(port)
    assert host in url


@pytest.mark.parametrize("value", ["host:0", "host:65536", "a b", "ftp://x", "host:port"])
def test_split_host_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=r"host|port"):
        split_host(value)


def test_describe_settings_lists_every_variable() -> None:
    rows = describe_settings()
    names = " ".join(r[0] for r in rows)
    for field, (suffix, *_rest) in CASES.items():
        assert f"QUANTSERVE_{suffix}" in names
        if field not in QUANTSERVE_ONLY:
            assert f"OLLAMA_{suffix}" in names
    assert len(rows) == len(ALL_FIELDS)
    assert all(meaning for _, _, meaning in rows)
    defaults = {r[0].split(" / ")[0]: r[1] for r in rows}
    assert defaults["QUANTSERVE_KEEP_ALIVE"] == "5m"
    assert defaults["QUANTSERVE_FLASH_ATTENTION"] == ""
