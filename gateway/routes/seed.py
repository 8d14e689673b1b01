"""`POST /prompt`: the seed demo's endpoint, kept byte-compatible, and governed like every door.

The body is a whole prompt in the seed layout, the user's message inside:
`{"config": {...}, "system": "...", "user": "...", "template": "{system}{user}"}`.
It is validated by the core like any prompt file. When its content (everything but `user` and the
documentation keys) is that of an approved version or a label's target, it is served as that version,
with the usual `X-Prompt-*` headers, to anyone who may read; anything else needs a signed-in editor or
approver, or PROMPTOPS_SERVE_UNREVIEWED (promptops.policy). The answer is what the seed demo
answered: the posted JSON with `result` (the generated text) added, so its Gradio frontend's
`requests.post(url, json=template).json()["result"]` works unchanged. Errors are the gateway's
usual JSON error bodies.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from gateway.deps import identity, service_of
from gateway.errors import error_response
from gateway.serving import complete, headers
from promptops.errors import PromptInvalid, PromptOpsError
from promptops.prompt.schema import check_bytes

router = APIRouter(tags=["seed"])
SEED_NAME = "seed"
EXAMPLE = {"config": {"temperature": "1.0", "top_p": "0.95", "max_tokens": "256"},
           "system": "You are helpful.\n", "user": "Hi!", "template": "{system}{user}"}


@router.post("/prompt", response_model=None,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                 "type": "object", "example": EXAMPLE}}}},
                 "responses": {"200": {"description": "The posted prompt with `result`, the generated text",
                                       "content": {"application/json": {"example": {
                                           **EXAMPLE, "result": "Hello! How can I help?"}}}}}})
async def seed_prompt(request: Request) -> Response:
    """Render the posted template (with the user's message inside); answer the posted JSON plus `result`."""
    service = service_of(request)
    body = await request.body()
    prompt, problems = check_bytes(body, SEED_NAME, "request body")
    if prompt is None:
        raise PromptInvalid(problems)
    user, caller = identity(request)
    reviewed = await service.posted(prompt, user)
    if reviewed is not None:  # served as that version: the posted `user` is the caller's message
        prepared = service.prepare(reviewed, str(prompt.document.get("user", "")))
    else:  # a signed-in editor's (or an open server's) own prompt
        prepared = service.prepare_prompt(prompt)
    try:
        answer = await complete(service, prepared, "seed", caller, request.scope)
    except PromptOpsError as exc:
        return error_response(exc, headers(prepared))
    return JSONResponse({**json.loads(body), "result": answer.text}, headers=headers(prepared))
