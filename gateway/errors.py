"""The one map from promptops exceptions to HTTP statuses and JSON error bodies.

Every error the gateway answers has the body `{"error": {"type", "message", "fix"}}`
(plus `problems` for invalid prompts, `current_version`/`current_commit` for
conflicts, `limit`/`retry_after_s` for 429s, `retry_after_s` for 503 `draining` and
`prompt_tokens`/`max_tokens`/`context` for a prompt over the model's context). Routes raise core exceptions;
nothing else picks a status code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
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
    """No valid credential: a write (or, with `read_access = token`, any request) without a valid token or
    session, or a webhook delivery without a valid `X-Hub-Signature-256`."""


class MaxTokensOverCap(e.PromptOpsError):
    """A request (or the prompt it names) asks for more tokens than the gateway's `max_tokens_cap`."""


class HistoryTooLong(e.PromptOpsError):
    """A request sends more history turns than the gateway's `max_history_turns`."""


class TooManyRequests(e.PromptOpsError):
    """A caller already has `max_concurrent_per_caller` generation requests in flight (gateway/limits.py)."""

    def __init__(self, message: str, *, fix: str | None = None, limit: int, retry_after_s: int) -> None:
        super().__init__(message, fix=fix)
        self.limit = limit
        self.retry_after_s = retry_after_s


class Draining(e.PromptOpsError):
    """The server is shutting down (SIGTERM, gateway/drain.py): a new generation is refused with 503 and
    Retry-After, so the caller (or its load balancer) sends it to another replica."""

    def __init__(self, message: str, *, fix: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message, fix=fix)
        self.retry_after_s = retry_after_s


# Most specific first: the first isinstance match wins.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (PayloadTooLarge, 413),
    (Unauthorized, 401),
    (TooManyRequests, 429),
    (Draining, 503),
    (MaxTokensOverCap, 422),
    (HistoryTooLong, 422),
    (e.ContextTooLong, 422),
    (e.ProtectedLabel, 409),
    (e.Refused, 409),
    (e.NotApproved, 404),
    (e.VersionNotFound, 404),
    (e.PromptNotFound, 404),
    (e.UnknownRequest, 404),
    (e.InvalidName, 400),
    (e.RefError, 400),
    (e.PromptInvalid, 422),
    (e.TemplateError, 422),
    (e.PromptExists, 409),
    (e.Conflict, 409),
    (e.Forbidden, 403),
    (e.UnknownModel, 404),
    (e.ServerUnavailable, 503),
    (e.ModelNotFound, 503),
    (e.InferenceTimeout, 504),
    (e.ModelError, 502),
    (e.InferenceError, 502),
    (e.StoreBusy, 503),
    (e.StateUnavailable, 503),
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
    if isinstance(exc, TooManyRequests):
        body["limit"] = exc.limit
        body["retry_after_s"] = exc.retry_after_s
    if isinstance(exc, Draining):
        body["retry_after_s"] = exc.retry_after_s
    if isinstance(exc, e.ContextTooLong):
        body.update(prompt_tokens=exc.prompt_tokens, max_tokens=exc.max_tokens, context=exc.context)
    return {"error": body}


Redact = Callable[[str], str]
_URL_USERINFO = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")


def without_url_credentials(text: str) -> str:
    """`https://user:token@host/x` -> `https://host/x` wherever it appears in `text`."""
    return _URL_USERINFO.sub(r"\1", text)


def redactor(paths: Iterable[tuple[Path | str | None, str]]) -> Redact:
    """A function that hides URL credentials and the given absolute paths (each -> its stand-in, e.g.
    the repository -> `<repo>`, the home folder -> `~`) in a message shown to callers."""
    pairs: dict[str, str] = {}
    for path, name in paths:
        if path is None or not str(path).startswith("/") or len(str(path)) < 2:
            continue
        for variant in {str(path).rstrip("/"), str(Path(path).resolve())}:
            pairs.setdefault(variant, name)
    pattern = re.compile("|".join(f"({re.escape(p)})(?![\\w.-])" for p in sorted(pairs, key=len, reverse=True))) \
        if pairs else None
    names = [pairs[p] for p in sorted(pairs, key=len, reverse=True)]

    def redact(text: str) -> str:
        text = without_url_credentials(text)
        if pattern is None or "/" not in text:
            return text
        return pattern.sub(lambda m: names[m.lastindex - 1] if m.lastindex else m.group(0), text)

    return redact


def _redacted(body: dict[str, Any], redact: Redact) -> dict[str, Any]:
    error = body["error"]
    for key in ("message", "fix"):
        if isinstance(error.get(key), str):
            error[key] = redact(error[key])
    for problem in error.get("problems") or ():
        if isinstance(problem.get("message"), str):
            problem["message"] = redact(problem["message"])
    return body


def error_response(exc: Exception, headers: Mapping[str, str] | None = None, *,
                   redact: Redact | None = None) -> JSONResponse:
    """A JSON error response for `exc` (used by the handlers and by routes that add headers);
    a 429 carries `Retry-After` (seconds), a 401 `WWW-Authenticate: Bearer`. `redact` hides
    absolute paths and URL credentials from the message (the log keeps them)."""
    status = status_of(exc)
    if status >= 500 and not isinstance(exc, e.InferenceError | Draining):
        log.error("request failed", exc_info=exc)
    headers = dict(headers or {})
    if isinstance(exc, TooManyRequests | Draining):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    body = error_body(exc)
    return JSONResponse(_redacted(body, redact) if redact else body, status_code=status, headers=headers)


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


def install(app: FastAPI, redact: Redact | None = None) -> None:
    """Register the handlers: core errors, FastAPI validation errors, HTTP errors, and the unexpected.
    `redact` (see :func:`redactor`) keeps absolute paths and URL credentials out of error bodies."""
    app.add_exception_handler(e.PromptOpsError, lambda request, exc: error_response(exc, redact=redact))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, lambda request, exc: error_response(exc, redact=redact))
