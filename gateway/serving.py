"""What every edge of the gateway does to answer a chat: resolve, render, generate, measure.

The HTTP routes, the OpenAI-compatible routes and the Gradio UI all go through
:class:`Service`, so the serving rules (approved by default, pins, drafts) and the
metrics are the same whichever door a request came in by.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import MaxTokensOverCap, type_of
from gateway.limits import CallerLimits, default_cap
from gateway.metrics import Metrics
from gateway.settings import GatewaySettings
from promptops import remote
from promptops.errors import EmptyPrompt, PromptInvalid, PromptOpsError
from promptops.inference import InferenceClient
from promptops.prompt import Prompt, dump_document
from promptops.render import Turn, render
from promptops.schema import check_bytes, encode_text
from promptops.store import PromptStore, Resolved

ROLES = ("user", "assistant", "system")


@dataclass(frozen=True)
class Prepared:
    """A request ready for the model: which prompt version, the rendered text, model and sampling."""

    name: str
    version: str  # "3", or "draft" for the working-tree file, or "inline" for the seed endpoint
    commit: str
    model: str
    text: str
    sampling: Mapping[str, Any]
    approved: bool = False
    label: str | None = None  # the release label that chose the version (`production` for a bare name)

    @property
    def headers(self) -> dict[str, str]:
        """The `X-Prompt-*` / `X-Model` headers of every chat answer (`X-Prompt-Label` when a label chose)."""
        headers = {"X-Prompt-Name": self.name, "X-Prompt-Version": self.version,
                   "X-Prompt-Commit": self.commit, "X-Model": self.model}
        if self.label is not None:
            headers["X-Prompt-Label"] = self.label
        return headers

    def describe(self) -> dict[str, Any]:
        """Which prompt version and model answered, for final events and JSON answers."""
        return {"prompt": self.name, "version": self.version, "commit": self.commit or None,
                "approved": self.approved, "label": self.label, "model": self.model}


@dataclass
class Stats:
    """Filled in while a generation runs; complete once its iterator is exhausted."""

    started: float = field(default_factory=time.perf_counter)
    ttft_s: float | None = None
    latency_s: float | None = None
    tokens: int = 0
    prompt_tokens: int = 0

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.tokens,
                "total_tokens": self.prompt_tokens + self.tokens}

    def timing(self) -> dict[str, float | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {"ttft_ms": ms(self.ttft_s), "total_ms": ms(self.latency_s)}


def to_turns(history: Sequence[Mapping[str, Any]] | Sequence[Turn]) -> list[Turn]:
    """`[{role, content}]` as core Turns; unknown roles are refused (they would be rendered verbatim)."""
    turns = []
    for item in history:
        role, content = (item.role, item.content) if isinstance(item, Turn) else (item["role"], item["content"])
        if role not in ROLES:
            raise PromptOpsError(f"unknown chat role {role!r}", fix=f"use one of {', '.join(ROLES)}")
        turns.append(Turn(role, content if isinstance(content, str) else str(content)))
    return turns


def with_overrides(prompt: Prompt, overrides: Mapping[str, Any]) -> Mapping[str, Any]:
    """The prompt's sampling config with `overrides` applied, validated by the core's schema."""
    if not overrides:
        return prompt.config
    document = dict(prompt.document)
    document["config"] = {**dict(document.get("config", {})), **overrides}
    file = f"{prompt.name} (overrides)"
    checked, problems = check_bytes(encode_text(dump_document(document), file), prompt.name, file)
    if checked is None:
        raise PromptInvalid(problems)
    return checked.config


class Service:
    """One store, one Triton client, one metrics registry: shared by every route and the UI."""

    def __init__(self, settings: GatewaySettings, store: PromptStore, client: InferenceClient,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.metrics = metrics
        self.last_refresh: dict[str, Any] | None = None  # shown by GET /v1/store
        self.limits = CallerLimits(settings.max_concurrent_per_caller)
        self._caps: dict[str, int] = {}  # model -> max_tokens cap (read once per model)
        self._refreshing = asyncio.Lock()
        self._head_seen = store.head_commit()

    def resolve(self, ref: str, *, serve_drafts: bool | None = None) -> Resolved:
        """Apply the serving rules: a bare name is its `production` label's version, else the newest
        approved one (the newest committed one with serve_drafts); `@LABEL` is that label's version;
        explicit pins (`@N`, `@sha`, `@tag`, `@head`) serve that version; `@draft` only with serve_drafts."""
        drafts = self.settings.serve_drafts if serve_drafts is None else serve_drafts
        return self.store.resolve(ref, default="head" if drafts else "approved", serve_drafts=drafts)

    def prepare(self, resolved: Resolved, message: str, history: Sequence[Any] = (),
                overrides: Mapping[str, Any] | None = None) -> Prepared:
        """Render the resolved prompt with the caller's message and history."""
        prompt = resolved.prompt
        version = "draft" if resolved.version is None else str(resolved.version.number)
        return self.prepare_prompt(prompt, message, history, overrides, version=version,
                                   commit=resolved.commit or "", approved=resolved.approved, label=resolved.label)

    def prepare_prompt(self, prompt: Prompt, message: str | None, history: Sequence[Any] = (),
                       overrides: Mapping[str, Any] | None = None, *, version: str = "inline",
                       commit: str = "", approved: bool = False, label: str | None = None) -> Prepared:
        """Render any valid prompt (the seed endpoint's inline prompts included).

        Raises EmptyPrompt when nothing but whitespace was rendered, and MaxTokensOverCap when the
        request's or the prompt's `max_tokens` is over the model's cap (see gateway/limits.py)."""
        variables = {} if message is None else {"user": message}
        text = render(prompt, variables, to_turns(history))
        which = "draft" if version == "draft" else f"v{version}"
        source = ("the posted prompt" if version == "inline"
                  else f"{self.settings.prompts_dir}/{prompt.name}.json ({which})")
        if not text.strip():
            raise EmptyPrompt(f"{source} rendered to an empty prompt: there is nothing to send to the model",
                              fix="send a non-empty message, or give the template text of its own")
        model = prompt.model or self.settings.default_model
        sampling = with_overrides(prompt, overrides or {})
        self.check_max_tokens(sampling, overrides or {}, model, source)
        return Prepared(name=prompt.name, version=version, commit=commit, model=model, text=text,
                        sampling=sampling, approved=approved, label=label)

    def max_tokens_cap(self, model: str) -> int:
        """`max_tokens_cap` when set, else the model's context length from its model.json, else 2048."""
        cap = self._caps.get(model)
        if cap is None:
            cap = self.settings.max_tokens_cap or default_cap(model)
            self._caps[model] = cap
        return cap

    def check_max_tokens(self, sampling: Mapping[str, Any], overrides: Mapping[str, Any], model: str,
                         source: str) -> None:
        """Refuse (never clamp) a `max_tokens` over the cap, naming who asked: the caller or the prompt file."""
        asked = sampling.get("max_tokens")
        if not isinstance(asked, int) or asked <= (cap := self.max_tokens_cap(model)):
            return
        if "max_tokens" in overrides:
            raise MaxTokensOverCap(f"max_tokens {asked} is over this gateway's cap of {cap} for {model}",
                                   fix=f"ask for at most {cap} tokens (the cap is PROMPTOPS_MAX_TOKENS)")
        raise MaxTokensOverCap(f"{source} sets max_tokens {asked}, over this gateway's cap of {cap} for {model}",
                               fix=f"lower config.max_tokens in {source} to at most {cap}, send a smaller "
                                   "max_tokens with the request, or raise PROMPTOPS_MAX_TOKENS")

    async def generate(self, prepared: Prepared, endpoint: str, stats: Stats,
                       caller: str | None = None) -> AsyncIterator[str]:
        """Stream text deltas from Triton, recording metrics when the stream ends, fails or is cancelled.

        With a `caller` (gateway/limits.py), the request holds one of its slots until then: TooManyRequests
        is raised at the first step when it has none left. Triton's deadline is `request_timeout_s` for the
        whole answer: past it, InferenceTimeout (504, or an `error` event mid-stream) and the Triton request
        is cancelled."""
        self.limits.enter(caller)
        stats.prompt_tokens = len(prepared.text.split())
        error: str | None = None
        try:
            async for delta in self.client.stream(prepared.model, prepared.text, prepared.sampling):
                if stats.ttft_s is None:
                    stats.ttft_s = time.perf_counter() - stats.started
                stats.tokens += 1
                yield delta
        except PromptOpsError as exc:
            error = type_of(exc)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            error = "cancelled"  # the client went away: the Triton request is cancelled too
            raise
        finally:
            self.limits.leave(caller)
            stats.latency_s = time.perf_counter() - stats.started
            self.metrics.observe(prepared.name, prepared.version, prepared.label or "", endpoint,
                                 latency_s=stats.latency_s, ttft_s=stats.ttft_s, tokens=stats.tokens, error=error)

    async def complete(self, prepared: Prepared, endpoint: str, stats: Stats, caller: str | None = None) -> str:
        """The whole answer (streamed internally, so time to first token is measured too)."""
        return "".join([delta async for delta in self.generate(prepared, endpoint, stats, caller)])

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
            except PromptOpsError as exc:
                self.last_refresh = {"ok": False, "at": time.time(), "error": exc.message}
                raise
            self.last_refresh = {"ok": True, "at": time.time(), "changed": changed, "commit": head}
            return changed, head

    def _refresh(self) -> tuple[bool, str | None]:
        if self.settings.read_only:
            changed = remote.fetch(self.store.repo, self.settings.store_ref)
            if changed:
                self.store.refresh()
            return changed, self.store.head_commit()
        self.store.refresh()
        head = self.store.head_commit()
        changed, self._head_seen = head != self._head_seen, head
        return changed, head


try:  # orjson (a gradio dependency) encodes ~5x faster; the stdlib is the fallback
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover
    def _dumps(data: Any) -> bytes:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; JSON data is on a single line (no raw newlines), so one `data:` field suffices."""
    return b"event: " + event.encode() + b"\ndata: " + _dumps(data) + b"\n\n"
