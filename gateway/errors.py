"""The one map from promptops exceptions to HTTP statuses and JSON error bodies.

Every error the gateway answers has the body `{"error": {"type", "message", "fix"}}`
(plus `problems` for invalid prompts and `current_version`/`current_commit` for
conflicts). Routes raise core exceptions; nothing else picks a status code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from promptops import errors as e

log = logging.getLogger("gateway")


class PayloadTooLarge(e.PromptOpsError):
    """The request body is larger than `max_body_bytes` (raised by the body-limit middleware)."""


class Unauthorized(e.PromptOpsError):
    """A webhook delivery without a valid `X-Hub-Signature-256` (and no valid admin token)."""


# Most specific first: the first isinstance match wins.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (PayloadTooLarge, 413),
    (Unauthorized, 401),
    (e.ProtectedLabel, 409),
    (e.Refused, 409),
    (e.NotApproved, 404),
    (e.VersionNotFound, 404),
    (e.PromptNotFound, 404),
    (e.InvalidName, 400),
    (e.RefError, 400),
    (e.PromptInvalid, 422),
    (e.TemplateError, 422),
    (e.PromptExists, 409),
    (e.Conflict, 409),
    (e.Forbidden, 403),
    (e.ServerUnavailable, 503),
    (e.ModelNotFound, 503),
    (e.InferenceTimeout, 504),
    (e.ModelError, 502),
    (e.InferenceError, 502),
    (e.StoreError, 500),
    (e.PromptOpsError, 400),
)


def status_of(exc: Exception) -> int:
    """The HTTP status for a core exception (500 for anything unexpected)."""
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 500)


def type_of(exc: Exception) -> str:
    """`NotApproved` -> `not_approved`: the stable machine-readable error type."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def error_body(exc: Exception) -> dict[str, Any]:
    """The JSON body for an exception; unexpected ones say no more than their type."""
    if not isinstance(exc, e.PromptOpsError):
        return {"error": {"type": "internal_error", "message": f"unexpected {type(exc).__name__}",
                          "fix": "see the gateway log"}}
    body: dict[str, Any] = {"type": type_of(exc), "message": exc.message, "fix": exc.fix}
    if isinstance(exc, e.PromptInvalid):
        body["problems"] = [{"message": p.message, "json_path": p.json_path, "line": p.line, "column": p.column,
                             "severity": p.severity, "fix": p.fix, "code": p.code} for p in exc.problems]
    if isinstance(exc, e.Conflict):
        body["current_version"] = exc.current_version
        body["current_commit"] = exc.current_commit
    return {"error": body}


def error_response(exc: Exception, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error response for `exc` (used by the handlers and by routes that add headers)."""
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, e.InferenceError):
        log.error("request failed", exc_info=exc)
    return JSONResponse(error_body(exc), status_code=status, headers=dict(headers or {}))


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = {"error": {"type": "http_error", "message": str(exc.detail), "fix": "see the API reference at /docs"}}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    problems = [{"loc": list(err.get("loc", ())), "message": err.get("msg", "")} for err in exc.errors()]
    body = {"error": {"type": "invalid_request", "message": f"{where or 'request'}: {first.get('msg')}",
                      "fix": "see the API docs at /docs", "problems": problems}}
    return JSONResponse(body, status_code=422)


def install(app: FastAPI) -> None:
    """Register the handlers: core errors, FastAPI validation errors, HTTP errors, and the unexpected."""
    app.add_exception_handler(e.PromptOpsError, lambda request, exc: error_response(exc))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, lambda request, exc: error_response(exc))
