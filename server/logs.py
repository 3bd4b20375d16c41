"""Logging set-up: one dictConfig at start-up, text or JSON lines, each with its transaction id.

The handler's :class:`~server.request_context.TransactionIdFilter` stamps every record with the
id of the request being handled (``-`` outside requests and in the engine threads, which do not
inherit the request's context). Prompts and generated text are never logged at INFO or above.
"""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any

from server.request_context import TransactionIdFilter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(transaction_id)s]: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("transaction_id",):
            value = getattr(record, key, None)
            if value and value != "-":
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """Configure the root logger once (llama.cpp's own chatter stays at DEBUG)."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"format": TEXT_FORMAT}
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"main": formatter},
            "filters": {"transaction_id": {"()": TransactionIdFilter}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "main",
                    "filters": ["transaction_id"],
                }
            },
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                "llama_cpp.native": {"level": "WARNING"},
                "uvicorn.access": {"level": "WARNING"},
            },
        }
    )
