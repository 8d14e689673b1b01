"""`POST /v1/chat`: one message to a prompt version, answered as JSON or as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import service_of
from gateway.errors import error_body, error_response
from gateway.routes.prompts import TurnModel
from gateway.serving import Prepared, Service, Stats, sse
from promptops.errors import PromptOpsError

router = APIRouter(prefix="/v1", tags=["chat"])


class ChatRequest(BaseModel):
    """A message for a prompt reference (`support`, `support@3`, `support@<sha>`, `support@<tag>`)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(..., examples=["support", "support@3"])
    message: str
    history: list[TurnModel] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict, description="sampling overrides, checked by the schema")
    stream: bool = False


async def start_stream(service: Service, prepared: Prepared, endpoint: str, stats: Stats,
                       caller: str | None = None) -> tuple[AsyncIterator[str], str | None]:
    """Start generating and wait for the first delta, so a failure before it gets a real HTTP status
    (a caller over its concurrency limit included: 429)."""
    deltas = service.generate(prepared, endpoint, stats, caller)
    try:
        first = await anext(deltas)
    except StopAsyncIteration:
        first = None
    return deltas, first


async def _events(prepared: Prepared, deltas: AsyncIterator[str], first: str | None,
                  stats: Stats) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield sse("token", {"text": first})
            async for delta in deltas:
                yield sse("token", {"text": delta})
    except PromptOpsError as exc:  # Triton failed mid-stream: the status line is long gone
        yield sse("error", error_body(exc))
        return
    yield sse("done", {**prepared.describe(), "usage": stats.usage(), "timing": stats.timing()})


@router.post("/chat", response_model=None)
async def chat(body: ChatRequest, request: Request) -> Response:
    """Answer `message` with the resolved prompt version; `stream: true` answers with SSE
    (`token` events, then `done` with usage, timing, prompt, version, commit and model, or `error`)."""
    # Resolution is inline (no thread hop): a warm store answers in microseconds.
    service = service_of(request)
    prepared = service.prepare(service.resolve(body.prompt), body.message,
                               [t.model_dump() for t in body.history], body.config)
    stats, caller = Stats(), service.limits.caller(request)
    try:
        if body.stream:
            deltas, first = await start_stream(service, prepared, "chat", stats, caller)
            return StreamingResponse(_events(prepared, deltas, first, stats), media_type="text/event-stream",
                                     headers={**prepared.headers, "Cache-Control": "no-cache",
                                              "X-Accel-Buffering": "no"})
        text = await service.complete(prepared, "chat", stats, caller)
    except PromptOpsError as exc:
        return error_response(exc, prepared.headers)
    return JSONResponse({"text": text, **prepared.describe(), "usage": stats.usage(), "timing": stats.timing()},
                        headers=prepared.headers)
