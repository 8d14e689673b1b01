"""What the state database keeps: one row per answered request, one per (request, user) feedback.

Plain frozen dataclasses with no database import, so code that only computes over them
(``promptops.canary``, its tests) needs neither SQLAlchemy nor a database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    """One request the gateway answered (or failed to answer), as the gateway saw it."""

    id: str  # the request id: X-Request-Id, and the OpenAI response id without its `chatcmpl-` prefix
    at: float  # unix seconds when the request arrived
    prompt: str
    version: int | None  # the version served; None when the request failed before one was resolved
    label: str | None  # the label the caller asked for; None for a pin (`name@N`) or a draft
    canary: bool  # True when the label's canary version served it
    endpoint: str  # "/v1/chat", "/v1/chat/completions", "/prompt", ...
    ok: bool
    error: str | None  # the error type when not ok ("timeout", "model_error", ...)
    latency_ms: float | None  # arrival to last byte
    ttft_ms: float | None  # arrival to first token (streams only)
    prompt_tokens: int | None
    completion_tokens: int | None
    replica: str  # which gateway answered (a fleet shares one database)


@dataclass(frozen=True)
class Feedback:
    """A caller's judgement of one answer: 1.0 is good (thumbs up), 0.0 bad (thumbs down)."""

    request_id: str
    score: float  # 0..1
    comment: str | None
    user: str | None  # who gave it; None when anonymous (anonymous feedback counts as one user)
    at: float  # unix seconds when it was given (or last replaced)
