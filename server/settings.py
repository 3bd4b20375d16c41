"""Server settings: pydantic-settings, built once at start-up.

Every field reads ``QUANTSERVE_<NAME>`` first and Ollama's ``OLLAMA_<NAME>`` as a fallback, so an
existing Ollama environment works unchanged. Three flat classes (server, engine, store) keep the
aliases simple; :class:`Settings` holds them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.durations import parse_keep_alive

DEFAULT_PORT = 11434
KvCacheType = Literal["f16", "q8_0", "q4_0"]


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"QUANTSERVE_{name}", f"OLLAMA_{name}")


def _config(prefix: str = "QUANTSERVE_") -> SettingsConfigDict:
    # An empty variable means "unset", as in Ollama's envconfig (OLLAMA_MODELS= is not the cwd).
    return SettingsConfigDict(
        env_prefix=prefix,
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,
    )


class ServerSettings(BaseSettings):
    """HTTP listener, CORS and logging."""

    model_config = _config()

    host: str = Field(
        "127.0.0.1:11434",
        validation_alias=_env("HOST"),
        description="Address to listen on, [scheme://]host[:port]; a bare host uses port 11434.",
    )
    origins: str = Field(
        "",
        validation_alias=_env("ORIGINS"),
        description="Extra allowed CORS origins, comma separated (* wildcards allowed).",
    )
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_env("LOG_FORMAT"), description="Log line format: text or json."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias=_env("LOG_LEVEL"), description="Minimum log level."
    )

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        split_host(value)
        return value

    @property
    def bind(self) -> tuple[str, int]:
        """The (host, port) pair to bind."""
        return split_host(self.host)


class EngineSettings(BaseSettings):
    """Model residency, batching and KV-cache settings."""

    model_config = _config()

    keep_alive: str = Field(
        "5m",
        validation_alias=_env("KEEP_ALIVE"),
        description="How long an idle model stays loaded (Go duration or seconds; <0 = forever).",
    )
    num_parallel: Annotated[int, Field(ge=1, le=64)] = Field(
        4,
        validation_alias=_env("NUM_PARALLEL"),
        description="Parallel sequences (slots) per loaded model, batched on one context.",
    )
    max_loaded_models: Annotated[int, Field(ge=0, le=64)] = Field(
        3,
        validation_alias=_env("MAX_LOADED_MODELS"),
        description="Models kept loaded at once; the least recently used idle one is evicted.",
    )
    max_queue: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        512,
        validation_alias=_env("MAX_QUEUE"),
        description="Requests allowed to wait for a slot; beyond it requests get 503.",
    )
    context_length: Annotated[int, Field(ge=32, le=1_048_576)] = Field(
        4096,
        validation_alias=_env("CONTEXT_LENGTH"),
        description="Default context window (num_ctx) per sequence.",
    )
    kv_cache_type: KvCacheType = Field(
        "f16",
        validation_alias=_env("KV_CACHE_TYPE"),
        description="KV cache precision: f16, q8_0 (about 1/2) or q4_0 (about 1/4).",
    )
    flash_attention: bool | None = Field(
        None,
        validation_alias=_env("FLASH_ATTENTION"),
        description="Flash attention: 1 on, 0 off, unset = on when the KV cache type needs it.",
    )
    num_thread: Annotated[int, Field(ge=0, le=1024)] = Field(
        0,
        validation_alias=_env("NUM_THREAD"),
        description="llama.cpp threads (0 = the number of CPU cores).",
    )
    num_batch: Annotated[int, Field(ge=1, le=65536)] = Field(
        512,
        validation_alias=_env("NUM_BATCH"),
        description="Tokens per decode step (prompt chunks plus one token per generating slot).",
    )
    load_timeout: str = Field(
        "5m",
        validation_alias=_env("LOAD_TIMEOUT"),
        description="Give up on a model load after this long.",
    )

    @field_validator("keep_alive", "load_timeout")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        parse_keep_alive(value)
        return value

    @field_validator("flash_attention", mode="before")
    @classmethod
    def _empty_is_auto(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _kv_needs_flash_attention(self) -> EngineSettings:
        # llama.cpp cannot store a quantized V cache without flash attention: it would return a
        # NULL context at load time, so refuse the combination at start-up instead.
        if self.kv_cache_type != "f16" and self.flash_attention is False:
            kv, fa = _set_variable("KV_CACHE_TYPE"), _set_variable("FLASH_ATTENTION")
            raise ValueError(
                f"{kv}={self.kv_cache_type} requires flash attention; unset {fa} or set it to 1"
            )
        return self

    @property
    def threads(self) -> int:
        """llama.cpp threads: never more than the cores."""
        cores = os.cpu_count() or 1
        return min(self.num_thread, cores) if self.num_thread > 0 else cores

    @property
    def keep_alive_seconds(self) -> float | None:
        """Default keep-alive in seconds; None means forever."""
        return parse_keep_alive(self.keep_alive)

    @property
    def load_timeout_seconds(self) -> float | None:
        """Load timeout in seconds; None means no limit."""
        value = parse_keep_alive(self.load_timeout)
        return None if value is None or value <= 0 else value


class StoreSettings(BaseSettings):
    """Where models live and what is available on a fresh install."""

    model_config = _config()

    models: Path = Field(
        Path("~/.ollama/models"),
        validation_alias=_env("MODELS"),
        description="Model store root, Ollama's layout (manifests/ and blobs/).",
    )
    embed_default_model: bool = Field(
        True,
        validation_alias=AliasChoices("QUANTSERVE_EMBED_DEFAULT_MODEL"),
        description="Import the embedded smollm2:135m into the store when it is missing.",
    )

    @property
    def root(self) -> Path:
        """The expanded store root."""
        return self.models.expanduser()


@dataclass(frozen=True)
class Settings:
    """All settings, built once by :func:`load_settings`."""

    server: ServerSettings
    engine: EngineSettings
    store: StoreSettings


class SettingsError(Exception):
    """A setting has a bad value; the message names the variable."""


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment (plus explicit overrides, for tests)."""
    parts: dict[str, BaseSettings] = {}
    for key, cls in (
        ("server", ServerSettings),
        ("engine", EngineSettings),
        ("store", StoreSettings),
    ):
        mine = {k: v for k, v in overrides.items() if k in cls.model_fields}
        try:
            parts[key] = cls(**mine)
        except ValidationError as exc:
            raise SettingsError(_describe(cls, exc)) from None
    return Settings(**parts)  # type: ignore[arg-type]


def _set_variable(name: str) -> str:
    """The variable the user set for a setting: QUANTSERVE_<NAME> wins over OLLAMA_<NAME>."""
    choices = (f"QUANTSERVE_{name}", f"OLLAMA_{name}")
    return next((c for c in choices if c in os.environ), choices[-1])


def _field_for(cls: type[BaseSettings], loc: str) -> tuple[str, FieldInfo] | None:
    # pydantic reports an aliased field under its first alias, not under the variable set.
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        choices = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []
        if loc == name or loc in choices:
            return name, info
    return None


def _describe(cls: type[BaseSettings], exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
    found = _field_for(cls, str(err["loc"][0])) if err["loc"] else None
    if found is None:
        # A check across fields: its message names the variables itself.
        return f"invalid settings: {msg}"
    field, info = found
    alias = info.validation_alias
    names = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []
    names = names or [f"QUANTSERVE_{field.upper()}"]
    # Name the variable the user actually set, when we can tell.
    chosen = next((n for n in names if n in os.environ), names[0])
    value = os.environ.get(chosen, err.get("input"))
    return f"invalid value {value!r} for {chosen}: {msg}"


_HOST_RE = re.compile(
    r"^(?:(?P<scheme>https?)://)?(?P<host>\[[0-9a-fA-F:]+\]|[^:/\s]*)(?::(?P<port>\d+))?/?$"
)


def split_host(value: str) -> tuple[str, int]:
    """Parse ``[scheme://]host[:port]`` like Ollama and its clients.

    Without a port: 11434, except ``http://`` (80) and ``https://`` (443), as Ollama's envconfig
    and the ollama client read ``OLLAMA_HOST`` — so the server binds where clients connect.
    """
    match = _HOST_RE.match(value.strip().strip("\"'"))
    if not match:
        raise ValueError(f"not a host[:port]: {value!r}")
    host = match["host"].strip("[]") or "127.0.0.1"
    default = {"http": 80, "https": 443}.get(match["scheme"] or "", DEFAULT_PORT)
    port = int(match["port"]) if match["port"] else default
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {port}")
    return host, port


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable names, default, meaning) for every setting: feeds --help and the README."""
    rows: list[tuple[str, str, str]] = []
    for cls in (ServerSettings, EngineSettings, StoreSettings):
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            names = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else [name]
            default = "" if info.default is None else str(info.default)
            rows.append((" / ".join(names), default, info.description or ""))
    return rows
