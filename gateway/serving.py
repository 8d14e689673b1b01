"""What every edge of the gateway does to answer a chat: the core's chat pipeline, plus metrics and limits.

The HTTP routes, the OpenAI-compatible routes, the seed endpoint and the Gradio UI all go through
:class:`Service`, so the serving rules (approved by default, pins, drafts), the limits and the
metrics are the same whichever door a request came in by. Rendering, checking and generating are
the core's (`promptops.chat`); this adds the per-caller limits (gateway/limits.py), the max_tokens
cap and the Prometheus metrics, all counted from the model's own token counts.

The HTTP routes (`/v1/chat`, the OpenAI routes, the seed `/prompt`) take an answer through
`start_stream` or `complete` here, which also record the model's time for the Server-Timing header;
`EventStream` frames a streamed one. A request goes down route -> this module -> promptops.chat.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway import tracing
from gateway.auth import TTFT, UPSTREAM
from gateway.errors import MaxTokensOverCap, type_of
from gateway.limits import CallerLimits, Gate, check_history_turns, default_cap, draining
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from promptops import chat
from promptops.chat import Answer, Prepared, to_turns
from promptops.config.users import User
from promptops.errors import Forbidden, PromptOpsError
from promptops.policy import ServingPolicy
from promptops.prompt import tokens
from promptops.prompt.model import Prompt
from promptops.prompt.outputs import Contract
from promptops.split import serves_canary
from promptops.store import PromptStore, Resolved, remote
from promptops.store.catalog import content_key
from promptops.store.live import LiveCatalog
from promptops.store.refs import parse_ref
from promptops.store.resolve import Default
from promptops.triton.client import InferenceClient

if TYPE_CHECKING:
    from promptops.capture import Capture
    from promptops.state import Feedback, StateStore

Events = AsyncIterator[str | Answer]
T = TypeVar("T")
"""What `Service.generate` yields: text deltas, then the Answer."""


class TurnModel(BaseModel):
    """One past chat turn in a request body (`history` of /v1/chat and of a render)."""

    model_config = ConfigDict(extra="forbid")
    role: str
    content: str


def sticky_key(user: User | None, *fallbacks: str | None) -> str:
    """Who a canary split keeps together (promptops/split.py): the signed-in person, else the first fallback
    given (each door's own: a caller's key, the client address, the browser session)."""
    if user is not None:
        return f"user:{user.email}"
    return next((key for key in fallbacks if key), "anonymous")


def headers(prepared: Prepared) -> dict[str, str]:
    """The `X-Prompt-*` / `X-Model` headers of every chat answer (`X-Prompt-Label` when a label chose)."""
    out = {"X-Prompt-Name": prepared.name, "X-Prompt-Version": prepared.version,
           "X-Prompt-Commit": prepared.commit, "X-Model": prepared.model}
    if prepared.label is not None:
        out["X-Prompt-Label"] = f"{prepared.label}; canary" if prepared.canary else prepared.label
    out["X-Request-Id"] = prepared.request_id
    return out


class Service:
    """One store, one catalog, one Triton client, one metrics registry: shared by every route and the UI.

    Writes go through `store` (the facade and its lock); every read that serves a caller goes through
    `live` (promptops.store.live): an immutable catalog swapped in when git moves, so a writer, or a CLI
    holding the repository lock, never stalls a reader.
    """

    def __init__(self, settings: GatewaySettings, store: PromptStore, client: InferenceClient,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.metrics = metrics
        self.live = LiveCatalog(store, drafts=settings.serve_drafts)
        self.policy = ServingPolicy(serve_unreviewed=settings.serve_unreviewed, serve_drafts=settings.serve_drafts)
        self.last_refresh: dict[str, Any] | None = None  # shown by GET /v1/store
        self.limits = CallerLimits(settings.max_concurrent_per_caller)
        self.gate = Gate(settings.max_in_flight, settings.max_queued, settings.queue_wait_s)
        self.draining = False  # set once by begin_drain (SIGTERM): /readyz and new generations answer 503
        self._caps: dict[str, int] = {}  # model -> max_tokens cap (read once per model)
        self._refreshing = asyncio.Lock()
        self._head_seen = store.head_commit()
        self.state: StateStore | None = None  # request records and feedback (lifespan opens it: promptops/state)
        # Its own threads: a slow or unreachable database must not take the default pool the catalog builds in.
        self.state_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="promptops-state")
        self.capture: Capture | None = None  # production inputs for replay (promptops/capture.py)
        self.replica = settings.replica or socket.gethostname()

    @property
    def default(self) -> Default:
        """What a bare name means here: the production label or newest approved version (drafts: the newest)."""
        return "head" if self.settings.serve_drafts else "approved"

    async def state_call(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on the state store's own threads (feedback, reads), never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.state_pool, function, *args)

    async def feedback(self, request_id: str, score: float, comment: str | None, user: User | None,
                       caller: str | None) -> Feedback:
        """Record feedback for an answered request (POST /v1/feedback, the UI's thumbs), as the signed-in person,
        else the caller's key. Forbidden without a state store; UnknownRequest (404) for an unknown id."""
        if self.state is None:
            raise Forbidden("this gateway keeps no request records (PROMPTOPS_STATE_URL=off)",
                            fix="unset PROMPTOPS_STATE_URL (SQLite) or point it at a database")
        who = user.email if user is not None else caller
        return await self.state_call(self.state.add_feedback, request_id, score, comment, who)

    async def serve(self, ref: str, user: User | None, sticky: str | None = None) -> Resolved:
        """The version `ref` names, if the serving policy (promptops.policy) lets `user` have it; the one
        door every generation route goes through. NotServed (403) names the approved versions.

        When a label chose the version and that label runs a canary, `sticky` (gateway/deps.py `sticky_key`)
        picks primary or canary deterministically (promptops/split.py); a pin (`name@3`) is never split."""
        name = parse_ref(ref).name
        with tracing.span("resolve", name):  # a no-op unless traces are exported (gateway/tracing.py)
            resolved, catalog = await self.live.resolve(ref, name, self.default)
            self.policy.check(resolved, user.roles if user else None, catalog.approved(name))
            label = resolved.label
            if label is not None and sticky is not None:
                canary = catalog.canary(name, label)
                if serves_canary(canary, name, label, sticky):
                    assert canary is not None
                    chosen, _ = await self.live.resolve(f"{name}@{canary.version}", name, self.default)
                    # A label target, as the primary is: validate and the review keep a protected one approved.
                    resolved = replace(chosen, label=label, canary=True)
        return resolved

    def resolve(self, ref: str) -> Resolved:
        """The version `ref` names, for reads that show prompts (no policy: showing is not serving).
        Blocking: call it from a worker thread (FastAPI's plain `def` routes, Gradio's plain handlers)."""
        name = parse_ref(ref).name
        return self.live.resolve_blocking(ref, name, self.default)[0]

    async def posted(self, prompt: Prompt, user: User | None) -> Resolved | None:
        """The reviewed version (label target or approved version) whose content `prompt` is, or None when
        none is and `user` may run unreviewed prompts; NotServed otherwise (the seed `/prompt` door)."""
        catalog = await self.live.current()
        found = catalog.reviewed.get(content_key(prompt))
        if found is None:
            self.policy.check_posted(user.roles if user else None)
        return found

    def prepare(self, resolved: Resolved, message: str, history: Sequence[Any] = (),
                overrides: Mapping[str, Any] | None = None, *, after: Sequence[Any] = (),
                contract: Contract | None = None) -> Prepared:
        """Render the resolved prompt with the caller's message and history (`promptops.chat.prepare`).

        Raises EmptyPrompt, PromptInvalid (overrides), and MaxTokensOverCap when the request's or the
        prompt's `max_tokens` is over the model's cap (see gateway/limits.py)."""
        which = "draft" if resolved.version is None else f"v{resolved.version.number}"
        source = f"{self.settings.prompts_dir}/{resolved.prompt.name}.json ({which})"
        with tracing.span("render", resolved.prompt.name):
            prepared = chat.prepare(resolved, message, history, overrides, after=after, contract=contract,
                                    default_model=self.settings.default_model, source=source)
            self.check_max_tokens(prepared, overrides or {}, len(history) + len(after))
        return prepared

    def prepare_prompt(self, prompt: Prompt, message: str | None = None, history: Sequence[Any] = (),
                       overrides: Mapping[str, Any] | None = None) -> Prepared:
        """Render a prompt that is no version (the seed endpoint's posted one); None keeps its `user` field."""
        prepared = chat.prepare(prompt, message, history, overrides, default_model=self.settings.default_model,
                                source="the posted prompt")
        self.check_max_tokens(prepared, overrides or {})
        return prepared

    def max_tokens_cap(self, model: str) -> int:
        """`max_tokens_cap` when set, else the model's context length from its model.json, else 2048."""
        cap = self._caps.get(model)
        if cap is None:
            cap = self.settings.max_tokens_cap or default_cap(model)
            self._caps[model] = cap
        return cap

    def check_max_tokens(self, prepared: Prepared, overrides: Mapping[str, Any], history_turns: int = 0) -> None:
        """Refuse (never clamp) a `max_tokens` over the cap, naming who asked: the caller or the prompt file;
        then more than `max_history_turns` past turns (HistoryTooLong), and a prompt that cannot fit the model's
        context with the answer it asks for, counted with the model's own tokenizer (ContextTooLong): 422s,
        before Triton. `history_turns`: how many past turns the caller sent (0: not counted)."""
        asked, model, source = prepared.sampling.get("max_tokens"), prepared.model, prepared.source
        if isinstance(asked, int) and asked > (cap := self.max_tokens_cap(model)):
            if "max_tokens" in overrides:
                raise MaxTokensOverCap(f"max_tokens {asked} is over this gateway's cap of {cap} for {model}",
                                       fix=f"ask for at most {cap} tokens (the cap is PROMPTOPS_MAX_TOKENS)")
            raise MaxTokensOverCap(f"{source} sets max_tokens {asked}, over this gateway's cap of {cap} for {model}",
                                   fix=f"lower config.max_tokens in {source} to at most {cap}, send a smaller "
                                       "max_tokens with the request, or raise PROMPTOPS_MAX_TOKENS")
        check_history_turns(history_turns, self.settings.max_history_turns)
        tokens.check_fits(model, prepared.text, asked if isinstance(asked, int) else None)

    async def generate(self, prepared: Prepared, endpoint: str, caller: str | None = None, *,
                       logprobs: bool = False) -> AsyncIterator[str | Answer]:
        """`promptops.chat.generate` (text deltas, then the `Answer` with the model's counts), recording
        metrics when the stream ends, fails or is cancelled.

        With a `caller` (gateway/limits.py), the request holds one of its slots until then: TooManyRequests
        is raised at the first step when it has none left. Triton's deadline is `request_timeout_s` for the
        whole answer: past it, InferenceTimeout (504, or an `error` event mid-stream) and the Triton request
        is cancelled. Once the server drains (`begin_drain`), Draining (503 with Retry-After) at the first step.
        While it holds a slot it counts in `promptops_requests_in_flight`; its wait in the Gate's line is
        recorded in `promptops_queue_wait_seconds`."""
        if self.draining:
            raise draining()
        self.limits.enter(caller)
        waiting = time.perf_counter()
        try:
            await self.gate.enter()
        except BaseException:
            self.limits.leave(caller)
            raise
        finally:
            self.metrics.queue_wait.observe(time.perf_counter() - waiting)
        self.metrics.in_flight.inc()
        started = time.perf_counter()
        ttft_s: float | None = None
        answer: Answer | None = None
        error: str | None = None
        trace = tracing.generation(prepared)  # None unless traces are exported; its spans end in `finally`
        try:
            async with aclosing(chat.generate(self.client, prepared, logprobs=logprobs,
                                              metadata=trace.metadata if trace else None)) as events:
                async for event in events:
                    if isinstance(event, Answer):
                        answer = event
                    elif ttft_s is None:
                        ttft_s = time.perf_counter() - started
                        if trace is not None:
                            trace.first_token()
                    yield event
        except PromptOpsError as exc:
            error = type_of(exc)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            error = "cancelled"  # the client went away: the Triton request is cancelled too
            raise
        finally:
            if trace is not None:
                trace.end(answer, error)
            self.metrics.in_flight.dec()
            self.gate.leave()
            self.limits.leave(caller)
            latency_s = answer.total_s if answer else time.perf_counter() - started
            self.metrics.observe(prepared.name, prepared.version, prepared.label or "", endpoint,
                                 latency_s=latency_s, ttft_s=answer.ttft_s if answer else ttft_s,
                                 prompt_tokens=answer.prompt_tokens if answer else 0,
                                 completion_tokens=answer.completion_tokens if answer else 0, error=error)
            self._remember(prepared, endpoint, answer, error, latency_s, answer.ttft_s if answer else ttft_s)

    def _remember(self, prepared: Prepared, endpoint: str, answer: Answer | None, error: str | None,
                  latency_s: float, ttft_s: float | None) -> None:
        """The request's record (canary comparisons, feedback) and, where capture is on, its inputs for replay:
        both queued to writer threads, never written here."""
        if self.state is not None:
            from promptops.state.records import RequestRecord

            self.state.record(RequestRecord(
                id=prepared.request_id, at=time.time(), prompt=prepared.name, version=prepared.number,
                label=prepared.label,
                canary=prepared.canary, endpoint=endpoint, ok=error is None and answer is not None, error=error,
                latency_ms=latency_s * 1000, ttft_ms=None if ttft_s is None else ttft_s * 1000,
                prompt_tokens=answer.prompt_tokens if answer else None,
                completion_tokens=answer.completion_tokens if answer else None, replica=self.replica))
        if self.capture is not None and answer is not None and self.capture.wants(prepared.name, prepared.request_id):
            from promptops.capture import row

            variables = {k: v for k, v in prepared.variables.items() if k != "user"}
            self.capture.record(row(prepared, answer, request_id=prepared.request_id,
                                    message=prepared.variables.get("user"), history=prepared.history,
                                    variables=variables, canary=prepared.canary, latency_ms=latency_s * 1000))

    def begin_drain(self) -> None:
        """Stop taking generations (gateway/drain.py): /readyz answers 503 and new generations Draining (503,
        Retry-After), those waiting in the Gate's line included; the ones in flight run to their end."""
        self.draining = True
        self.gate.close()

    async def complete(self, prepared: Prepared, endpoint: str, caller: str | None = None, *,
                       logprobs: bool = False) -> Answer:
        """The whole answer (streamed internally, so time to first token is measured too)."""
        answer: Answer | None = None
        async for event in self.generate(prepared, endpoint, caller, logprobs=logprobs):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None  # the pipeline always ends with an Answer
        return answer

    async def refresh(self) -> tuple[bool, str | None]:
        """Fetch the read-only clone (or re-read the repository served in place): (anything changed, head).

        A clone reports a change when the fetch moved the branch or any approval tag (a label move
        is a commit on the branch). The repository served in place is re-read on every request
        anyway; refreshing it drops the caches and reports whether its branch moved since the last
        refresh. Failures are recorded in `last_refresh` and raised.
        """
        async with self._refreshing:  # the periodic task and the webhook never fetch at once
            try:
                changed, head = await asyncio.to_thread(self._refresh)
            except PromptOpsError as exc:  # the catalog stays as it was: what was served is still served
                self.last_refresh = {"ok": False, "at": time.time(), "error": exc.message}
                raise
            except Exception as exc:  # not ours to expect (a git library error): recorded all the same
                self.last_refresh = {"ok": False, "at": time.time(), "error": f"{type(exc).__name__}: {exc}"}
                raise
            self.last_refresh = {"ok": True, "at": time.time(), "changed": changed, "commit": head}
            return changed, head

    def _refresh(self) -> tuple[bool, str | None]:
        if self.settings.read_only:
            changed = remote.fetch(self.store.repo, self.settings.store_ref)
            if changed:
                self.store.refresh()
            self.live.build()
            return changed, self.store.head_commit()
        self.store.refresh()
        self.live.build()
        head = self.store.head_commit()
        changed, self._head_seen = head != self._head_seen, head
        return changed, head


async def start_stream(service: Service, prepared: Prepared, endpoint: str, caller: str | None, scope: Scope, *,
                       logprobs: bool = False) -> tuple[Events, str | Answer]:
    """Start generating for an HTTP route and wait for the first event (a delta, or the Answer of an empty
    answer), so a failure before it gets a real HTTP status (a caller over its concurrency limit included:
    429). The wait is recorded in `scope` for the Server-Timing header (gateway/auth.py)."""
    events = service.generate(prepared, endpoint, caller, logprobs=logprobs)
    started = time.perf_counter()
    first = await anext(events)
    scope[UPSTREAM] = scope[TTFT] = time.perf_counter() - started
    return events, first


async def complete(service: Service, prepared: Prepared, endpoint: str, caller: str | None, scope: Scope, *,
                   logprobs: bool = False) -> Answer:
    """The whole answer for an HTTP route; the model's time is recorded in `scope` for the Server-Timing header."""
    answer = await service.complete(prepared, endpoint, caller, logprobs=logprobs)
    scope[UPSTREAM], scope[TTFT] = answer.total_s, answer.ttft_s
    return answer


try:  # orjson (a gradio dependency) encodes ~5x faster; the stdlib is the fallback
    from orjson import dumps
except ImportError:  # pragma: no cover
    def dumps(data: Any) -> bytes:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; JSON data is on a single line (no raw newlines), so one `data:` field suffices."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


class Last(bytes):
    """The final frame(s) of an `EventStream`: sent together with the end of the body, in one write."""


class EventStream(Response):
    """A `text/event-stream` answer from an async iterator of frames (bytes; `Last` for the closing ones).

    Starlette's StreamingResponse, cheaper per request on the generation hot path (benchmarks/gateway.py):

    - the client going away (`http.disconnect`) cancels the answer, and with it the Triton request, through
      one plain asyncio task watching `receive` (StreamingResponse uses an anyio task group and cancel scope
      under ASGI spec < 2.4, which uvicorn reports: several times the cost);
    - `Last` frames go out with the end of the chunked body: one write and one ASGI message fewer.
    """

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], headers: Mapping[str, str] | None = None) -> None:
        self.frames = frames
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()  # lands at the stream's current await (it only runs while the stream waits)

        # A disconnect after a complete answer is never seen: the watcher is cancelled before it runs again.
        watcher = asyncio.create_task(watch())
        try:
            await self._stream(send)
        except asyncio.CancelledError:
            if not gone or task.uncancel() > 0:  # a cancellation from outside still propagates
                raise
        finally:
            watcher.cancel()

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        held = b""
        async for frame in self.frames:
            if isinstance(frame, Last):
                held += frame
            else:
                await send({"type": "http.response.body", "body": held + frame if held else frame,
                            "more_body": True})
                held = b""
        await send({"type": "http.response.body", "body": held, "more_body": False})


__all__ = ["Answer", "EventStream", "Events", "Last", "Prepared", "Service", "complete", "dumps", "headers", "sse",
           "start_stream", "sticky_key", "to_turns", "TurnModel"]
