"""OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`.

`model` is a prompt reference (`support`, `support@3`). The messages map onto the prompt by one rule
(`promptops.chat.split_messages`):

- the last message must be the user's; it becomes `{user}`;
- earlier `user` and `assistant` messages become the history, placed where the prompt puts it:
  `{history}` in a template prompt (each turn through `turn_template`), the `{"history": true}`
  entry in a chat prompt, else before its last user message;
- a `system` (or `developer`) message is refused with 400: the prompt's system text is reviewed
  code in its prompt file, so a caller neither replaces nor extends it; `function` roles too;
- for a prompt with tools, the model's calls come back as `tool_calls` (`finish_reason: "tool_calls"`),
  and the caller's next request carries that assistant message and `tool` messages with the results.

The prompt's `response_format` and tools are enforced by the model server (promptops.prompt.outputs):
`message.content` is the JSON text, as OpenAI answers. A caller's `response_format` applies where the
prompt declares none; one that differs from the prompt's is refused with 400 (a caller cannot loosen a
reviewed contract); tools come only from the prompt file; `tool_choice` may only narrow the prompt's
(`Contract.with_caller`).

`usage` and `finish_reason` are the model's own (its tokenizer's counts; `length` when `max_tokens`
ended the answer, `stop` otherwise). `logprobs: true` (with `top_logprobs: N`) returns the model's log
probabilities in OpenAI's shape; streamed, they come in the chunk that carries `finish_reason`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import ServiceDep, identity, service_of, sticky_of
from gateway.errors import error_body, error_response
from gateway.serving import Answer, Events, EventStream, Last, Prepared, complete, dumps, headers, start_stream
from promptops.chat import split_messages
from promptops.errors import PromptOpsError
from promptops.prompt.outputs import Contract
from promptops.store import Resolved

router = APIRouter(prefix="/v1", tags=["openai"])
# OpenAI's stand-in for a log probability too small to represent (JSON has no -Infinity).
FLOOR = -9999.0


class ChatMessage(BaseModel):
    """An OpenAI chat message; content is a string or a list of text parts. An assistant message may
    carry the `tool_calls` the model made; a `tool` message answers one (`tool_call_id`)."""

    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


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
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = None  # OpenAI's end-user id: the sticky key of a canary split when no one is signed in
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    def overrides(self) -> dict[str, Any]:
        """Sampling parameters the caller set, in the prompt config's vocabulary."""
        values = {"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed,
                  "max_tokens": self.max_completion_tokens or self.max_tokens,
                  "stop": [self.stop] if isinstance(self.stop, str) else self.stop,
                  "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty,
                  "logprobs": (self.top_logprobs or 0) if self.logprobs else None}
        return {k: v for k, v in values.items() if v is not None}


def _split(body: CompletionRequest) -> tuple[str, list[Any], list[Any]]:
    if body.n != 1:
        raise PromptOpsError(f"n={body.n} is not supported", fix="ask for one choice (n=1)")
    if body.top_logprobs is not None and not body.logprobs:
        raise PromptOpsError("top_logprobs needs logprobs", fix="send \"logprobs\": true with top_logprobs")
    return split_messages([m.model_dump() for m in body.messages])


def _contract(body: CompletionRequest, resolved: Resolved) -> Contract | None:
    """The prompt's output contract with what the caller asked for (ContractRefused: 400 when it would
    loosen or replace the prompt's); None when the caller asked for nothing (the prompt's own applies)."""
    if body.response_format is None and body.tools is None and body.tool_choice is None:
        return None
    return resolved.prompt.contract.with_caller(body.response_format, body.tools, body.tool_choice)


def _message(prepared: Prepared, answer: Answer) -> tuple[dict[str, Any], str | None]:
    """The assistant message and finish reason, as OpenAI answers them: `content` is the text (the JSON
    text under a response_format); a tool call is `tool_calls` with `finish_reason: "tool_calls"`."""
    structured = prepared.read(answer.text)
    if structured is not None and structured.tool_calls:
        calls = [call.openai() for call in structured.tool_calls]
        reason = "tool_calls" if answer.finish_reason == "stop" else answer.finish_reason
        return {"role": "assistant", "content": None, "tool_calls": calls}, reason
    if structured is not None and prepared.contract is not None and prepared.contract.callable_tools:
        return {"role": "assistant", "content": structured.content}, answer.finish_reason
    return {"role": "assistant", "content": answer.text}, answer.finish_reason


def _model_name(prepared: Prepared) -> str:
    return f"{prepared.name}@{prepared.version}"


def _entry(position: Mapping[str, Any]) -> dict[str, Any]:
    token = position.get("decoded_token") or ""
    logprob = position.get("logprob")
    finite = isinstance(logprob, int | float) and math.isfinite(logprob)
    return {"token": token, "logprob": float(logprob) if finite else FLOOR, "bytes": list(token.encode("utf-8"))}


def openai_logprobs(positions: list[dict[str, Any]] | None, top: int) -> dict[str, Any]:
    """The model's per-token `[{token_id: {logprob, rank, decoded_token}}]` in OpenAI's shape.

    The chosen token is each position's first entry (vLLM puts the sampled token first, then the
    top alternatives); `top_logprobs` are the entries of rank 1..`top`, best first."""
    content = []
    for position in positions or []:
        entries = list(position.values())
        if not entries:
            continue
        ranked = sorted(entries, key=lambda e: e.get("rank") or 0)[:top]
        content.append({**_entry(entries[0]), "top_logprobs": [_entry(e) for e in ranked]})
    return {"content": content, "refusal": None}


def _choice_logprobs(body: CompletionRequest, answer: Answer) -> dict[str, Any] | None:
    return openai_logprobs(answer.logprobs, body.top_logprobs or 0) if body.logprobs else None


def _data(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


async def _chunks(body: CompletionRequest, prepared: Prepared, events: Events,
                  first: str | Answer) -> AsyncIterator[bytes]:
    base = {"id": f"chatcmpl-{prepared.request_id}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": _model_name(prepared), "system_fingerprint": prepared.commit[:12] or None}
    # A token's chunk is `{**base, "choices": [{"index": 0, "delta": DELTA, "finish_reason": null}]}`: the bytes
    # around DELTA are the same in every chunk of the stream, so they are encoded once.
    before = b"data: " + dumps(base)[:-1] + b',"choices":[{"index":0,"delta":'
    after = b',"finish_reason":null}]}\n\n'

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return _data({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}]})

    answer = first if isinstance(first, Answer) else None
    # A tool prompt's answer is JSON until it is whole: whether it is a call or content shows at the end.
    buffered = prepared.contract is not None and bool(prepared.contract.callable_tools)
    try:
        if not buffered:
            yield before + dumps({"role": "assistant", "content": "" if answer else first}) + after
        async for event in events:
            if isinstance(event, Answer):
                answer = event
            elif not buffered:
                yield before + dumps({"content": event}) + after
    except PromptOpsError as exc:  # the openai client raises APIError on an `error` chunk
        yield Last(_data(error_body(exc)))
        return
    assert answer is not None  # the pipeline always ends with an Answer
    finish = answer.finish_reason
    if buffered:
        message, finish = _message(prepared, answer)
        if message.get("tool_calls"):
            message["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        yield before + dumps(message) + after
    logprobs = _choice_logprobs(body, answer)
    end = chunk({}, finish, **({"logprobs": logprobs} if logprobs else {}))
    if body.stream_options and body.stream_options.include_usage:
        end += _data({**base, "choices": [], "usage": answer.usage()})
    yield Last(end + b"data: [DONE]\n\n")  # the last chunks, usage and [DONE]: one write with the body's end


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: CompletionRequest, request: Request) -> Response:
    """OpenAI Chat Completions (streamed or not) with `model` = prompt reference."""
    service = service_of(request)
    message, history, after = _split(body)
    user, caller = identity(request)
    resolved = await service.serve(body.model, user, sticky_of(request, user, body.user))
    prepared = service.prepare(resolved, message, history, body.overrides(), after=after,
                               contract=_contract(body, resolved))
    logprobs = bool(body.logprobs)
    try:
        if body.stream:
            events, first = await start_stream(service, prepared, "openai", caller, request.scope, logprobs=logprobs)
            return EventStream(_chunks(body, prepared, events, first),
                               headers={**headers(prepared), "Cache-Control": "no-cache"})
        answer = await complete(service, prepared, "openai", caller, request.scope, logprobs=logprobs)
    except PromptOpsError as exc:
        return error_response(exc, headers(prepared))
    message, finish = _message(prepared, answer)
    return JSONResponse({
        "id": f"chatcmpl-{prepared.request_id}", "object": "chat.completion", "created": int(time.time()),
        "model": _model_name(prepared), "system_fingerprint": prepared.commit[:12] or None,
        "choices": [{"index": 0, "message": message, "logprobs": _choice_logprobs(body, answer),
                     "finish_reason": finish}],
        "usage": answer.usage()}, headers=headers(prepared))


@router.get("/models")
def list_models(service: ServiceDep) -> dict[str, Any]:
    """Prompts with an approved version, as OpenAI "models" (use `name@N` to pin a version)."""
    catalog = service.live.current_blocking()
    names = [name for name in sorted(catalog.versions) if catalog.approved(name)]
    return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "promptops",
                                        "created": 0} for name in names]}
