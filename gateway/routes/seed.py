"""`POST /prompt`: the seed demo's endpoint, kept compatible.

The body is a whole prompt in the seed layout, the user's message inside:
`{"config": {...}, "system": "...", "user": "...", "template": "{system}{user}"}`.
It is validated by the core like any prompt file, rendered, and the generated text
is the answer (text/plain), as the seed demo answered.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from gateway.deps import service_of
from gateway.errors import error_response
from gateway.serving import Stats
from promptops.errors import PromptInvalid, PromptOpsError
from promptops.schema import check_bytes

router = APIRouter(tags=["seed"])
SEED_NAME = "seed"


@router.post("/prompt", response_class=PlainTextResponse, response_model=None,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "example": {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"},
                                               "system": "You are helpful.\n", "user": "Hi!",
                                               "template": "{system}{user}"}}}}}})
async def seed_prompt(request: Request) -> Response:
    """Render the posted template (with the user's prompt inside) and answer with the generated text."""
    service = service_of(request)
    prompt, problems = check_bytes(await request.body(), SEED_NAME, "request body")
    if prompt is None:
        raise PromptInvalid(problems)
    prepared = service.prepare_prompt(prompt, None)
    try:
        text = await service.complete(prepared, "seed", Stats(), service.limits.caller(request))
    except PromptOpsError as exc:
        return error_response(exc, prepared.headers)
    return PlainTextResponse(text, headers=prepared.headers)
