"""Python client for quantserve and any Ollama-compatible server.

`AsyncClient` (and its synchronous counterpart `Client`) cover the Ollama API; `Orchestrator`
runs submissions with bounded concurrency, retries and latency telemetry. This package depends
only on httpx and pydantic: it never imports the server.
"""

from __future__ import annotations

from ._base import DEFAULT_TIMEOUT, parse_host
from ._client import AsyncClient
from ._exceptions import (
    ClientError,
    ConnectError,
    OrchestratorClosed,
    RequestError,
    RequestTimeout,
    ResponseError,
)
from ._orchestrator import Orchestrator
from ._requests import ChatParams, CreateParams, EmbedParams, GenerateParams
from ._sync_client import Client
from ._telemetry import ExecutionTelemetry, OrchestratorStats, Percentiles
from ._types import (
    ChatResponse,
    DetokenizeResponse,
    EmbedResponse,
    GenerateResponse,
    Image,
    ListResponse,
    Message,
    ModelDetails,
    ModelSummary,
    Options,
    ProcessResponse,
    ProgressResponse,
    ResponseModel,
    RunningModel,
    ShowResponse,
    TokenizeResponse,
    Tool,
    ToolCall,
    ToolCallFunction,
    ToolFunction,
    VersionResponse,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "ChatParams",
    "ChatResponse",
    "Client",
    "ClientError",
    "ConnectError",
    "CreateParams",
    "DetokenizeResponse",
    "EmbedParams",
    "EmbedResponse",
    "ExecutionTelemetry",
    "GenerateParams",
    "GenerateResponse",
    "Image",
    "ListResponse",
    "Message",
    "ModelDetails",
    "ModelSummary",
    "Options",
    "Orchestrator",
    "OrchestratorClosed",
    "OrchestratorStats",
    "Percentiles",
    "ProcessResponse",
    "ProgressResponse",
    "RequestError",
    "RequestTimeout",
    "ResponseError",
    "ResponseModel",
    "RunningModel",
    "ShowResponse",
    "TokenizeResponse",
    "Tool",
    "ToolCall",
    "ToolCallFunction",
    "ToolFunction",
    "VersionResponse",
    "parse_host",
]
