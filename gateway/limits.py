"""Limits of the generation routes, answered clearly: a cap on `max_tokens` and requests in flight per caller.

- `max_tokens_cap` (PROMPTOPS_MAX_TOKENS): a request, or the prompt file it serves, asking for more is
  refused with 422 naming the cap (and the prompt file, when the file asks). Never clamped silently: an
  answer cut shorter than its prompt asks for is a behaviour change nobody reviewed. Unset, the cap is the
  model's `max_model_len` from its `model.json` (the context the engine was started with), else 2048.
- `max_concurrent_per_caller` (PROMPTOPS_MAX_CONCURRENT, 0: unlimited): a caller is its credential -- the
  SHA-256 of the Bearer token, else of the `promptops_session` cookie, else of the client IP. One more
  generation request than the limit is answered 429 with `Retry-After`; a stream holds its slot until it
  ends or is cancelled (the slot is taken and given back inside `Service.generate`).

The counters are a plain dict: every request runs on the server's one asyncio loop, so no lock is needed,
and a caller's entry is removed when its count drops to zero.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request

from gateway.errors import TooManyRequests

DEFAULT_MAX_TOKENS = 2048
RETRY_AFTER_S = 1  # slots free when a generation ends: usually within a second for short answers
SESSION_COOKIE = "promptops_session"
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def model_repositories() -> list[Path]:
    """Where the local Triton's models live (PROMPTOPS_MODEL_REPOSITORY, else the project's model_repository/)."""
    from promptops.errors import TritonLaunchError
    from promptops.triton import REPO_ROOT, TritonConfig

    try:
        return list(TritonConfig().model_repositories)
    except TritonLaunchError:  # a bad port variable: the repositories are still the default
        return [REPO_ROOT / "model_repository"]


def model_context(model: str, repositories: Iterable[Path]) -> int | None:
    """`max_model_len` of the newest version's `model.json` of `model`; None when absent or unreadable."""
    if not _MODEL_NAME.fullmatch(model):
        return None
    for repository in repositories:
        versions = [p for p in (Path(repository) / model).glob("*/model.json") if p.parent.name.isdigit()]
        if not versions:
            continue
        newest = max(versions, key=lambda p: int(p.parent.name))
        try:
            value = json.loads(newest.read_text(encoding="utf-8")).get("max_model_len")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    return None


def default_cap(model: str, repositories: Iterable[Path] | None = None) -> int:
    """The cap when PROMPTOPS_MAX_TOKENS is unset: the model's context length, else 2048."""
    return model_context(model, model_repositories() if repositories is None else repositories) or DEFAULT_MAX_TOKENS


def caller_of(request: Request) -> str:
    """Who is asking: SHA-256 of the Bearer token, else of the session cookie, else of the client IP."""
    authorization = cookies = b""
    for name, value in request.scope["headers"]:  # one pass over the raw headers (lower-case names in ASGI)
        if name == b"authorization":
            authorization = value
        elif name == b"cookie":
            cookies = value
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() == b"bearer" and token.strip():
        credential = b"bearer:" + token.strip()
    elif SESSION_COOKIE.encode() in cookies and (cookie := request.cookies.get(SESSION_COOKIE)):
        credential = b"session:" + cookie.encode("utf-8", "surrogateescape")
    else:
        client = request.scope.get("client")
        credential = b"ip:" + (client[0] if client else "").encode()
    return hashlib.sha256(credential).hexdigest()


class CallerLimits:
    """Generation requests in flight per caller."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active: dict[str, int] = {}

    def caller(self, request: Request) -> str | None:
        """The caller to count for `request`, or None when there is no limit (nothing hashed then)."""
        return caller_of(request) if self.limit > 0 else None

    def enter(self, caller: str | None) -> None:
        """Take a slot for `caller`, or raise TooManyRequests (429 with Retry-After)."""
        if caller is None:
            return
        count = self.active.get(caller, 0)
        if count >= self.limit:
            raise TooManyRequests(
                f"this caller already has {count} generation requests in flight (limit {self.limit})",
                fix=f"wait for one to finish and retry after {RETRY_AFTER_S} s, or send fewer at once "
                    "(the limit is PROMPTOPS_MAX_CONCURRENT)",
                limit=self.limit, retry_after_s=RETRY_AFTER_S)
        self.active[caller] = count + 1

    def leave(self, caller: str | None) -> None:
        """Give the slot back (once per successful enter)."""
        if caller is None:
            return
        count = self.active.get(caller, 0) - 1
        if count > 0:
            self.active[caller] = count
        else:
            self.active.pop(caller, None)
