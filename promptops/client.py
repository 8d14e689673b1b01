"""The app SDK: fetch approved prompt versions and render them in the app, as the gateway would.

Not to be confused with `promptops.triton.client`, the gRPC client the gateway uses to talk to Triton:
this module is what an application imports to get its prompts.

    prompts = Prompts(url="https://prompts.example.com", token=..., snapshot="prompts.snapshot.json")
    version = prompts.get("support@production")
    messages = version.messages("Where is my order?", order="A-17")
    answer = openai_client.chat.completions.create(model=..., **version.request("Where is my order?"))

`version.response_format`, `version.tools` and `version.tool_choice` are the prompt's output contract
in OpenAI's shape; `version.request(...)` bundles them with the messages and the sampling config, and
`version.contract.read(text)` parses and validates the answer.

- `Prompts(url=..., token=...)` reads `GET /v1/prompts/{name}?ref=...` with a Bearer token;
  `Prompts(repo=...)` resolves in a local clone through `promptops.store.PromptStore` (bare name:
  the approved version, as the gateway serves it).
- Answers are cached `ttl_s` seconds. An expired entry is returned at once and refreshed in a
  background thread (stale-while-revalidate), asking with `If-None-Match` and the last `ETag`: the
  gateway answers 304 with no body while the version is the same.
- When the gateway cannot be reached and nothing is cached, the bundled snapshot (`promptops export`)
  is used with a `PromptOpsWarning`; with no snapshot either, `get` raises a PromptOpsError. It never
  serves nothing silently.

Rendering is the server's own code (`promptops.prompt.render`). `PromptVersion.messages` gives what
an OpenAI-compatible server takes: a chat prompt's messages (`chat_messages`: the model server applies
its chat template), and for a template prompt the whole rendered text as one user message, because
that text is what the gateway's OpenAI route sends the model as the prompt (history included through
`{history}`).

The standard library's urllib does the HTTP (the base install declares no HTTP client), imported on the
first request with asyncio on the first async call, so `import promptops.client` costs only the prompt
format; nothing here imports a web or CLI framework, and the store is imported only for `repo=`.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptops.errors import PromptOpsError
from promptops.prompt.model import Prompt, normalise_config
from promptops.prompt.render import Turn, chat_messages, render

if TYPE_CHECKING:
    from promptops.prompt.outputs import Contract
    from promptops.store import PromptStore, Resolved

SNAPSHOT_FORMAT = "promptops-snapshot/1"
# Sampling keys an OpenAI-compatible server takes under the same name (`PromptVersion.request`).
OPENAI_SAMPLING = ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty")


class PromptOpsWarning(UserWarning):
    """A prompt was served from a fallback (the bundled snapshot) rather than the gateway."""


class GatewayUnreachable(PromptOpsError):
    """The gateway did not answer (connection refused, timeout, 5xx)."""


@dataclass(frozen=True)
class PromptVersion:
    """One prompt version as served: its facts, sampling config and document, rendered by the server's code."""

    name: str
    version: int | None
    commit: str | None
    label: str | None
    approved: bool
    config: Mapping[str, Any]
    document: Mapping[str, Any] = field(repr=False)

    @property
    def prompt(self) -> Prompt:
        return Prompt(self.name, self.document, self.config)

    @property
    def contract(self) -> Contract:
        """The output contract (promptops.prompt.outputs): what to send and how to read the answer."""
        return self.prompt.contract

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The OpenAI `response_format` to send with the messages (None: free text)."""
        fmt = self.document.get("response_format")
        return dict(fmt) if isinstance(fmt, Mapping) else None

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The OpenAI `tools` to send with the messages (empty: none)."""
        return [tool.openai() for tool in self.contract.tools]

    @property
    def tool_choice(self) -> str | Mapping[str, Any] | None:
        """The OpenAI `tool_choice` to send (None when the prompt has no tools)."""
        return self.contract.tool_choice if self.contract.tools else None

    def request(self, user: str, history: Sequence[Mapping[str, str]] = (), **variables: str) -> dict[str, Any]:
        """The keyword arguments of an OpenAI `chat.completions.create` call for this version (minus `model`):
        the messages, the sampling config OpenAI knows, and the response_format and tools."""
        out: dict[str, Any] = {"messages": self.messages(user, history, **variables)}
        out.update({k: self.config[k] for k in OPENAI_SAMPLING if k in self.config})
        if self.response_format is not None:
            out["response_format"] = self.response_format
        if self.tools:
            out["tools"], out["tool_choice"] = self.tools, self.tool_choice
        return out

    def render(self, model: str | None = None, **variables: str) -> str:
        """The text the model gets (a chat prompt through its model's chat template, read locally: the prompt's
        `model`, else `model` here; a chat prompt naming none needs it, as the gateway uses its default model)."""
        return render(self.prompt, variables, default_model=model)

    def messages(self, user: str, history: Sequence[Mapping[str, str]] = (), **variables: str) -> list[dict[str, str]]:
        """The OpenAI `messages` for `user`'s message after `history` (`[{role, content}]`); see the module doc."""
        turns = [Turn(str(t["role"]), str(t["content"])) for t in history]
        values = {**variables, "user": user}
        if self.prompt.is_chat:
            return chat_messages(self.prompt, values, turns)
        return [{"role": "user", "content": render(self.prompt, values, turns)}]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PromptVersion:
        """From the gateway's `GET /v1/prompts/{name}` answer or a snapshot entry."""
        document = data["document"]
        version = data.get("version") or {}
        return cls(data["name"], version.get("version"), data.get("commit"), data.get("label"),
                   bool(data.get("approved")), normalise_config(document.get("config", {})), document)


def entry(resolved: Resolved) -> dict[str, Any]:
    """A resolved version as a snapshot stores it (the keys `PromptVersion.from_json` reads)."""
    return {"name": resolved.name, "version": None if resolved.version is None else resolved.version.to_dict(),
            "commit": resolved.commit, "approved": resolved.approved, "label": resolved.label,
            "document": dict(resolved.prompt.document)}


def build_snapshot(store: PromptStore, names: Sequence[str] = ()) -> dict[str, Any]:
    """Every served version of `names` (default: every prompt with one): the bare name and each label.

    A named prompt with nothing approved raises (NotApproved); unnamed ones are skipped and listed."""
    from promptops.errors import RefError

    prompts: dict[str, Any] = {}
    skipped: list[str] = []
    for name in names or store.names():
        try:
            prompts[name] = entry(store.resolve(name))
        except RefError:
            if names:
                raise
            skipped.append(name)
            continue
        for label in sorted(store.labels().of(name)):
            prompts[f"{name}@{label}"] = entry(store.resolve(f"{name}@{label}"))
    return {"format": SNAPSHOT_FORMAT, "prompts": prompts, "skipped": skipped}


@dataclass
class _Cached:
    version: PromptVersion
    etag: str | None
    fetched: float
    refreshing: bool = False


class Prompts:
    """Prompt versions from a gateway (`url`) or a local clone (`repo`), cached, with a snapshot fallback."""

    def __init__(self, url: str | None = None, token: str | None = None, *, repo: Path | str | None = None,
                 ttl_s: float = 60.0, snapshot: Path | str | None = None, timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if (url is None) == (repo is None):
            raise PromptOpsError("give either url or repo", fix="Prompts(url='http://127.0.0.1:7070') or "
                                                                 "Prompts(repo='path/to/clone')")
        self.url = None if url is None else url.rstrip("/")
        self.token, self.ttl_s, self.timeout_s, self.clock = token, ttl_s, timeout_s, clock
        self.snapshot = None if snapshot is None else Path(snapshot)
        self.requests = self.not_modified = 0  # HTTP requests sent, and how many the gateway answered 304
        self._store: PromptStore | None = None
        if repo is not None:
            from promptops.store import PromptStore

            self._store = PromptStore(Path(repo))
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def get(self, ref: str) -> PromptVersion:
        """The version `ref` names (`support`, `support@production`, `support@3`); see the module docstring."""
        if self._store is not None:
            return PromptVersion.from_json(entry(self._store.resolve(ref)))
        with self._lock:
            cached = self._cache.get(ref)
            if cached is not None and self.clock() - cached.fetched >= self.ttl_s and not cached.refreshing:
                cached.refreshing = True
                threading.Thread(target=self._refresh, args=(ref, cached), name="promptops-refresh",
                                 daemon=True).start()
        if cached is not None:
            return cached.version
        try:
            return self._fetch(ref, None).version
        except GatewayUnreachable as exc:
            return self._from_snapshot(ref, exc)

    def _refresh(self, ref: str, cached: _Cached) -> None:
        try:
            self._fetch(ref, cached)
        except PromptOpsError:
            pass  # keep serving the stale copy; the next `get` tries again
        finally:
            cached.refreshing = False

    def _fetch(self, ref: str, cached: _Cached | None) -> _Cached:
        import urllib.error
        import urllib.parse
        import urllib.request

        name, _, selector = ref.partition("@")
        query = f"?{urllib.parse.urlencode({'ref': selector})}" if selector else ""
        request = urllib.request.Request(f"{self.url}/v1/prompts/{urllib.parse.quote(name, safe='')}{query}")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if cached is not None and cached.etag:
            request.add_header("If-None-Match", cached.etag)
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (http(s) URL)
                fresh = _Cached(PromptVersion.from_json(json.load(response)), response.headers.get("ETag"),
                                self.clock())
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and cached is not None:
                self.not_modified += 1
                fresh = _Cached(cached.version, cached.etag, self.clock())
            elif exc.code >= 500:
                raise GatewayUnreachable(f"the gateway at {self.url} answered {exc.code}") from None
            else:
                raise _answer_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GatewayUnreachable(f"cannot reach the gateway at {self.url}: {exc}") from None
        with self._lock:
            self._cache[ref] = fresh
        return fresh

    def _from_snapshot(self, ref: str, error: GatewayUnreachable) -> PromptVersion:
        if self.snapshot is None or not self.snapshot.exists():
            where = "none was given" if self.snapshot is None else f"{self.snapshot} does not exist"
            raise PromptOpsError(f"{error.message}, nothing is cached for {ref!r} and no snapshot ({where})",
                                 fix="start the gateway or check the URL, and bundle a snapshot at build time: "
                                     "`promptops export --output prompts.snapshot.json`, then "
                                     "Prompts(..., snapshot='prompts.snapshot.json')")
        data = json.loads(self.snapshot.read_text(encoding="utf-8")).get("prompts", {})
        if ref not in data:
            raise PromptOpsError(f"{error.message}, and the snapshot {self.snapshot} has no {ref!r}",
                                 fix=f"export it: `promptops export --output {self.snapshot}`")
        warnings.warn(f"{error.message}: serving {ref!r} from the bundled snapshot {self.snapshot}",
                      PromptOpsWarning, stacklevel=3)
        return PromptVersion.from_json(data[ref])


def _answer_error(exc: Any) -> PromptOpsError:
    """The gateway's own error (its `{"error": {message, fix}}` body) of an HTTPError, as a PromptOpsError."""
    try:
        body = json.loads(exc.read()).get("error", {})
    except (ValueError, AttributeError):
        body = {}
    return PromptOpsError(body.get("message") or f"the gateway answered {exc.code}", fix=body.get("fix"))


class AsyncPrompts:
    """`Prompts` for asyncio apps: the same cache, each `get` run in a worker thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sync = Prompts(*args, **kwargs)

    async def get(self, ref: str) -> PromptVersion:
        import asyncio

        return await asyncio.to_thread(self.sync.get, ref)
