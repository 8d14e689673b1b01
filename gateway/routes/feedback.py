"""`POST /v1/feedback`: a score for the prompt version that answered a request (the request id of its
`X-Request-Id` header, or of the OpenAI response's `id`), kept in the gateway's state store (promptops/state)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.deps import identity, service_of

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackRequest(BaseModel):
    """A score from 0 to 1, or thumbs up (1) / down (0), and an optional comment."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(..., min_length=1, max_length=200, examples=["4f1c...", "chatcmpl-4f1c..."])
    score: float | None = Field(None, ge=0, le=1)
    thumbs: Literal["up", "down"] | None = None
    comment: str | None = Field(None, max_length=4000)

    @model_validator(mode="after")
    def one_score(self) -> FeedbackRequest:
        if (self.score is None) == (self.thumbs is None):
            raise ValueError("send either score (0 to 1) or thumbs (up or down)")
        return self

    @property
    def value(self) -> float:
        return self.score if self.score is not None else float(self.thumbs == "up")


@router.post("/feedback")
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    """Record feedback for an answered request: which prompt version served it comes from the request's record.
    One per person and request: sending again replaces it. 404 for an unknown request id."""
    service = service_of(request)
    user, caller = identity(request)
    request_id = body.request_id.removeprefix("chatcmpl-")
    saved = await service.feedback(request_id, body.value, body.comment, user, caller)
    assert service.state is not None  # feedback() refused otherwise
    record = await service.state_call(service.state.request, request_id)
    return {"request_id": saved.request_id, "score": saved.score, "prompt": record.prompt if record else None,
            "version": record.version if record else None, "canary": record.canary if record else None}
