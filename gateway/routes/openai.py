"""OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`.

`model` is a prompt reference (`support`, `support@3`). The messages become the
prompt's `{history}` plus its `{user}` (the last message, which must be the user's);
the prompt's own fields (its system text) stay as the prompt file says.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import ServiceDep, service_of
from gateway.errors import error_body, error_response
from gateway.routes.chat import start_stream
from gateway.serving import Prepared, Stats
from promptops.errors import PromptOpsError

router = APIRouter(prefix="/v1", tags=["openai"])


class ChatMessage(BaseModel):
    """An OpenAI chat message; content is a string or a list of text parts."""

    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class CompletionRequest(BaseModel):
    """The OpenAI fields promptops honours; the others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    def overrides(self) -> dict[str, Any]:
        """Sampling parameters the caller set, in the prompt config's vocabulary."""
        values = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                  "max_tokens": self.max_completion_tokens or self.max_tokens,
                  "stop": [self.stop] if isinstance(self.stop, str) else self.stop,
                  "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty}
        return {k: v for k, v in values.items() if v is not None}


def _split(body: CompletionRequest) -> tuple[str, list[dict[str, str]]]:
    if body.n != 1:
        raise PromptOpsError(f"n={body.n} is not supported", fix="ask for one choice (n=1)")
    *past, last = body.messages
    if last.role != "user":
        raise PromptOpsError(f"the last message must be the user's, not {last.role!r}",
                             fix="end `messages` with {\"role\": \"user\", ...}")
    return last.text(), [{"role": m.role, "content": m.text()} for m in past]


def _finish_reason(prepared: Prepared, stats: Stats) -> str:
    limit = prepared.sampling.get("max_tokens")
    return "length" if isinstance(limit, int) and stats.tokens >= limit else "stop"


def _model_name(prepared: Prepared) -> str:
    return f"{prepared.name}@{prepared.version}"


async def _chunks(prepared: Prepared, deltas: AsyncIterator[str], first: str | None, stats: Stats,
                  include_usage: bool) -> AsyncIterator[bytes]:
    import json

    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": _model_name(prepared), "system_fingerprint": prepared.commit[:12] or None}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"

    try:
        yield chunk({"role": "assistant", "content": first or ""})
        async for delta in deltas:
            yield chunk({"content": delta})
    except PromptOpsError as exc:  # the openai client raises APIError on an `error` chunk
        yield b"data: " + json.dumps(error_body(exc)).encode() + b"\n\n"
        return
    yield chunk({}, _finish_reason(prepared, stats))
    if include_usage:
        data = {**base, "choices": [], "usage": stats.usage()}
        yield b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI Chat Completions (streamed or not) with `model` = prompt reference."""
    service = service_of(request)
    message, history = _split(body)
    prepared = service.prepare(service.resolve(body.model), message, history, body.overrides())
    stats, caller = Stats(), service.limits.caller(request)
    try:
        if body.stream:
            deltas, first = await start_stream(service, prepared, "openai", stats, caller)
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_chunks(prepared, deltas, first, stats, include_usage),
                                     media_type="text/event-stream", headers={**prepared.headers,
                                                                              "Cache-Control": "no-cache"})
        text = await service.complete(prepared, "openai", stats, caller)
    except PromptOpsError as exc:
        return error_response(exc, prepared.headers)
    return JSONResponse({
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": _model_name(prepared), "system_fingerprint": prepared.commit[:12] or None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": _finish_reason(prepared, stats)}],
        "usage": stats.usage()}, headers=prepared.headers)


@router.get("/models")
def list_models(service: ServiceDep) -> dict[str, Any]:
    """Prompts with an approved version, as OpenAI "models" (use `name@N` to pin a version)."""
    rows = [s for s in service.store.status() if s.approved is not None]
    return {"object": "list", "data": [{"id": s.name, "object": "model", "owned_by": "promptops",
                                        "created": 0} for s in rows]}
