"""Limits of the generation routes, answered clearly: a cap on `max_tokens` and requests in flight per caller.

- `max_tokens_cap` (PROMPTOPS_MAX_TOKENS): a request, or the prompt file it serves, asking for more is
  refused with 422 naming the cap (and the prompt file, when the file asks). Never clamped silently: an
  answer cut shorter than its prompt asks for is a behaviour change nobody reviewed. Unset, the cap is the
  model's `max_model_len` from its `model.json` (the context the engine was started with), else 2048.
- `max_history_turns` (PROMPTOPS_MAX_HISTORY_TURNS, default 200, 0: unlimited): more past turns are refused
  with 422 naming both numbers; then a prompt that cannot fit the model's context with the answer it asks
  for, counted with the model's own tokenizer, is refused with 422 naming the numbers (promptops/prompt/tokens.py).
- `max_concurrent_per_caller` (PROMPTOPS_MAX_CONCURRENT, 0: unlimited): a caller is the signed-in person
  (a token or session that validated), else the client address; an unknown token is nobody. One more
  generation request than the limit is answered 429 with `Retry-After`; a stream holds its slot until it
  ends or is cancelled (the slot is taken and given back inside `Service.generate`). The UI counts the same.
- `max_in_flight` / `max_queued` / `queue_wait_s` (PROMPTOPS_MAX_IN_FLIGHT, PROMPTOPS_MAX_QUEUED,
  PROMPTOPS_QUEUE_WAIT): a bound on generations in flight on the whole server with a short line in front
  (:class:`Gate`); a full line or a wait past the limit is answered 429 with `Retry-After`.

The counters are a plain dict: every request runs on the server's one asyncio loop, so no lock is needed,
and a caller's entry is removed when its count drops to zero.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request

from gateway.errors import Draining, HistoryTooLong, TooManyRequests
from promptops.config.users import User
from promptops.prompt.tokens import model_context

DEFAULT_MAX_TOKENS = 2048
RETRY_AFTER_S = 1  # slots free when a generation ends: usually within a second for short answers


def model_repositories() -> list[Path]:
    """Where the local Triton's models live (PROMPTOPS_MODEL_REPOSITORY, else the project's model_repository/)."""
    from promptops.errors import TritonLaunchError
    from promptops.triton.launcher import REPO_ROOT, TritonConfig

    try:
        return list(TritonConfig().model_repositories)
    except TritonLaunchError:  # a bad port variable: the repositories are still the default
        return [REPO_ROOT / "model_repository"]


def default_cap(model: str, repositories: Iterable[Path] | None = None) -> int:
    """The cap when PROMPTOPS_MAX_TOKENS is unset: the model's context length, else 2048."""
    return model_context(model, model_repositories() if repositories is None else repositories) or DEFAULT_MAX_TOKENS


def check_history_turns(turns: int, limit: int) -> None:
    """Refuse more history turns than `limit` (0: no limit) with HistoryTooLong (422) naming both numbers."""
    if 0 < limit < turns:
        raise HistoryTooLong(f"the request sends {turns:,} history turns, over this gateway's limit of {limit:,}",
                             fix=f"send at most the last {limit:,} turns (the limit is PROMPTOPS_MAX_HISTORY_TURNS)")


def caller_key(user: User | None, address: str | None) -> str:
    """Who a limit counts: the signed-in person (a token or session that validated), else the client address.

    Only validated identities count apart: an unknown token is nobody, so inventing tokens does not lift
    the limit. Every door (API, OpenAI route, /prompt, the UI) counts the same way."""
    return f"user:{user.name}" if user is not None else f"ip:{address or ''}"


def address_of(request: Request) -> str:
    """The client address of an HTTP request (a proxy's, unless uvicorn trusts its X-Forwarded-For)."""
    client = request.scope.get("client")
    return client[0] if client else ""


class CallerLimits:
    """Generation requests in flight per caller."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active: dict[str, int] = {}

    def caller(self, user: User | None, address: str | None) -> str | None:
        """The caller to count, or None when there is no limit."""
        return caller_key(user, address) if self.limit > 0 else None

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


def draining() -> Draining:
    """The 503 a new generation gets once this server drains."""
    return Draining("this gateway is shutting down and takes no new generations",
                    fix=f"retry after {RETRY_AFTER_S} s: another replica answers (a load balancer stops sending "
                        "here once /readyz answers 503)", retry_after_s=RETRY_AFTER_S)


class Gate:
    """A bound on generation requests in flight on this server, with a short queue in front.

    Past `limit`, a request waits in line (first come, first served) for up to `wait_s`; when `queued`
    are already waiting, or the wait runs out, it is answered 429 with Retry-After at once: a burst is
    smoothed, never piled up without bound in front of the model server.

    `close()` (the server drains, gateway/drain.py) answers everyone in line, and everyone after, with
    Draining (503 and Retry-After): they go to another replica instead of waiting for this one to stop.
    Slots already taken are kept until their generations end.
    """

    def __init__(self, limit: int, queued: int, wait_s: float) -> None:
        self.limit = limit
        self.queued = queued
        self.wait_s = wait_s
        self.active = 0
        self.closed = False
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def enter(self) -> None:
        """Take a slot, waiting in line when all are taken; TooManyRequests when the line is full or slow,
        Draining once the gate is closed."""
        if self.closed:
            raise draining()
        if self.limit <= 0:
            return
        if self.active < self.limit and not self._waiting:
            self.active += 1
            return
        if len(self._waiting) >= self.queued:
            raise self._busy(f"the server has {self.active} generation requests in flight and "
                             f"{len(self._waiting)} waiting (limits {self.limit} and {self.queued})")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await asyncio.wait_for(turn, self.wait_s)  # leave() hands the slot over: `active` already counts it
        except Draining:  # close() emptied the line
            raise
        except TimeoutError:
            self._discard(turn)
            raise self._busy(f"no generation slot freed within {self.wait_s:g} s ({self.limit} in flight)") from None
        except asyncio.CancelledError:  # the caller left while waiting
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self.leave()  # the slot arrived just as it left: hand it on
            self._discard(turn)
            raise

    def _discard(self, turn: asyncio.Future[None]) -> None:
        if turn in self._waiting:
            self._waiting.remove(turn)

    def close(self) -> None:
        """Refuse new generations from now on, and those waiting in line now, with Draining."""
        self.closed = True
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_exception(draining())

    def leave(self) -> None:
        """Give a slot back: to the first in line, else to the pool."""
        if self.limit <= 0:
            return
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.active -= 1

    def _busy(self, message: str) -> TooManyRequests:
        return TooManyRequests(message, fix=f"retry after {RETRY_AFTER_S} s (the limits are PROMPTOPS_MAX_IN_FLIGHT "
                                            "and PROMPTOPS_MAX_QUEUED)", limit=self.limit,
                               retry_after_s=RETRY_AFTER_S)
