"""`POST /v1/chat`: one message to a prompt version, answered as JSON or as Server-Sent Events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Scope

from gateway.auth import TTFT, UPSTREAM
from gateway.deps import identity, service_of
from gateway.errors import error_body, error_response
from gateway.routes.prompts import TurnModel
from gateway.serving import Answer, EventStream, Last, Prepared, Service, dumps, headers, sse
from promptops.errors import PromptOpsError

router = APIRouter(prefix="/v1", tags=["chat"])
Events = AsyncIterator[str | Answer]


class ChatRequest(BaseModel):
    """A message for a prompt reference (`support`, `support@3`, `support@<sha>`, `support@<tag>`)."""

    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(..., examples=["support", "support@3"])
    message: str
    history: list[TurnModel] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict, description="sampling overrides, checked by the schema")
    stream: bool = False


async def start_stream(service: Service, prepared: Prepared, endpoint: str, caller: str | None, scope: Scope, *,
                       logprobs: bool = False) -> tuple[Events, str | Answer]:
    """Start generating and wait for the first event (a delta, or the Answer of an empty answer), so a
    failure before it gets a real HTTP status (a caller over its concurrency limit included: 429).
    The wait is recorded in `scope` for the Server-Timing header (gateway/auth.py)."""
    events = service.generate(prepared, endpoint, caller, logprobs=logprobs)
    started = time.perf_counter()
    first = await anext(events)
    scope[UPSTREAM] = scope[TTFT] = time.perf_counter() - started
    return events, first


async def complete(service: Service, prepared: Prepared, endpoint: str, caller: str | None, scope: Scope, *,
                   logprobs: bool = False) -> Answer:
    """The whole answer; the model's time is recorded in `scope` for the Server-Timing header."""
    answer = await service.complete(prepared, endpoint, caller, logprobs=logprobs)
    scope[UPSTREAM], scope[TTFT] = answer.total_s, answer.ttft_s
    return answer


def finished(prepared: Prepared, answer: Answer) -> dict[str, Any]:
    """The facts of a finished answer: the version, the model's usage and finish reason, the timing."""
    return {**prepared.describe(), "usage": answer.usage(), "finish_reason": answer.finish_reason,
            "timing": answer.timing()}


def token(text: str) -> bytes:
    """`sse("token", {"text": text})`, built around the one value that changes (a frame per token)."""
    return b'event: token\ndata: {"text":' + dumps(text) + b"}\n\n"


async def _events(prepared: Prepared, events: Events, first: str | Answer) -> AsyncIterator[bytes]:
    answer = first if isinstance(first, Answer) else None
    try:
        if not isinstance(first, Answer):
            yield token(first)
        async for event in events:
            if isinstance(event, Answer):
                answer = event
            else:
                yield token(event)
    except PromptOpsError as exc:  # Triton failed mid-stream: the status line is long gone
        yield Last(sse("error", error_body(exc)))
        return
    assert answer is not None  # the pipeline always ends with an Answer
    yield Last(sse("done", finished(prepared, answer)))


@router.post("/chat", response_model=None)
async def chat(body: ChatRequest, request: Request) -> Response:
    """Answer `message` with the resolved prompt version; `stream: true` answers with SSE (`token` events,
    then `done` with prompt, version, commit, model, the model's usage and finish reason, and timing;
    or `error`)."""
    # A warm catalog answers without a thread hop; the serving policy is applied there (promptops.policy).
    service = service_of(request)
    user, caller = identity(request)
    prepared = service.prepare(await service.serve(body.prompt, user), body.message,
                               [t.model_dump() for t in body.history], body.config)
    try:
        if body.stream:
            events, first = await start_stream(service, prepared, "chat", caller, request.scope)
            return EventStream(_events(prepared, events, first), headers={
                **headers(prepared), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        answer = await complete(service, prepared, "chat", caller, request.scope)
    except PromptOpsError as exc:
        return error_response(exc, headers(prepared))
    return JSONResponse({"text": answer.text, **finished(prepared, answer)}, headers=headers(prepared))
