"""`POST /v1/chat`: one message to a prompt version, answered as JSON or as Server-Sent Events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import identity, service_of, sticky_of
from gateway.errors import error_body, error_response
from gateway.serving import (
    Answer,
    Events,
    EventStream,
    Last,
    Prepared,
    TurnModel,
    complete,
    dumps,
    headers,
    sse,
    start_stream,
)
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


def finished(prepared: Prepared, answer: Answer) -> dict[str, Any]:
    """The facts of a finished answer: the version, the model's usage and finish reason, the timing; for a
    prompt with an output contract, the parsed JSON (`parsed`), whether it is `valid` (`errors` if not)
    and its `tool_calls` (OpenAI's shape)."""
    structured = prepared.read(answer.text)
    return {**prepared.describe(), "usage": answer.usage(), "finish_reason": answer.finish_reason,
            "timing": answer.timing(), **(structured.describe() if structured is not None else {})}


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
    or `error`). A prompt with a `response_format` or tools also answers `parsed`, `valid`, `errors` and
    `tool_calls` (the model server enforced the format: promptops.prompt.outputs)."""
    # A warm catalog answers without a thread hop; the serving policy is applied there (promptops.policy).
    service = service_of(request)
    user, caller = identity(request)
    prepared = service.prepare(await service.serve(body.prompt, user, sticky_of(request, user)), body.message,
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
