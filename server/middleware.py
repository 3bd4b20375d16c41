"""CORS with Ollama's default origins plus OLLAMA_ORIGINS."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

# Ollama's built-in origins (envconfig.AllowedOrigins).
DEFAULT_ORIGINS = (
    "http://localhost",
    "https://localhost",
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1",
    "https://127.0.0.1",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
    "http://0.0.0.0",
    "https://0.0.0.0",
    "http://0.0.0.0:*",
    "https://0.0.0.0:*",
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)


def origin_regex(extra: str) -> str:
    """One regex matching the default origins and the comma-separated extra ones (* = any)."""
    origins = list(DEFAULT_ORIGINS) + [o.strip() for o in extra.split(",") if o.strip()]
    parts = [re.escape(o).replace(r"\*", ".*") for o in origins]
    return "^(?:" + "|".join(parts) + ")$"


def install_cors(app: FastAPI, extra_origins: str) -> None:
    """Allow browser clients from the allowed origins only (never ``*`` with credentials)."""
    app.add_middleware(
        CORSMiddleware,
        allow_origin_regex=origin_regex(extra_origins),
        allow_methods=["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "User-Agent",
            "Accept",
            "X-Requested-With",
            "X-Transaction-Id",
            "X-Request-Id",
        ],
        expose_headers=["X-Transaction-Id", "Retry-After"],
    )
