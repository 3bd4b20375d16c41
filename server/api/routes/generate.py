"""POST /api/generate and POST /api/chat."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.api.deps import ServiceDep
from server.api.generation import chat_events, generate_events, merge_chat, merge_generate
from server.api.ollama_types import ChatRequest, GenerateRequest
from server.api.streaming import parse_body, respond

router = APIRouter()


@router.post("/api/generate")
async def generate(request: Request, service: ServiceDep) -> Response:
    """Generate a completion for a prompt."""
    body = await parse_body(request, GenerateRequest)
    events = generate_events(service, body)
    return await respond(request, events, stream=body.stream, merge=merge_generate)


@router.post("/api/chat")
async def chat(request: Request, service: ServiceDep) -> Response:
    """Generate the next message of a chat."""
    body = await parse_body(request, ChatRequest)
    events = chat_events(service, body)
    return await respond(request, events, stream=body.stream, merge=merge_chat)
