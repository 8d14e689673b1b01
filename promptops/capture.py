"""Capture: real requests and answers written to disk as dataset rows, to replay on a changed prompt.

The gateway hands each answered request to :meth:`Capture.record` (when capture is on for that
prompt); a row is a dataset row that `promptops test NAME --dataset FILE` and `promptops review
--outputs --replay FILE` read (promptops.evaluation.datasets)::

    {"vars": {"user": "..."}, "history": [{"role": "user", "content": "..."}, ...],
     "__captured": {"request_id", "at", "prompt", "version", "label", "canary", "answer",
                    "prompt_tokens", "completion_tokens", "latency_ms"}}

- **Never blocks the caller.** `record` puts the row on a bounded queue and returns; one daemon
  thread writes. A full queue (a slow or stuck disk) drops the row and counts it (`stats().dropped`).
- **Sampled per request id.** `rate` keeps that share of requests, decided by a hash of the request id,
  so the same id always gets the same decision (a retried or replayed request is captured or not alike).
- **Redacted before anything reaches disk.** The writer replaces e-mail addresses (`[email]`), API
  keys and tokens (`sk-...`, `ghp_...`, `Bearer ...`, AWS access keys, JWTs: `[key]`) and runs of 6 or
  more digits (card and phone numbers: `[number]`) in the texts of a row (variables, history, answer),
  then each extra pattern of PROMPTOPS_CAPTURE_REDACT (`[redacted]`). The row's metadata is not
  text a caller wrote and is kept as is.
- **Bounded on disk.** Per prompt, `NAME.jsonl` is written until it would pass a third of `max_bytes`,
  then rotated to `NAME.1.jsonl` (and that to `NAME.2.jsonl`, the oldest dropped): at most 3 files,
  `max_bytes` in all. A row larger than a file's share is dropped (`stats().too_large`).

One process writes a capture directory (each replica of a fleet has its own clone, and so its own).
This module prints nothing and imports no web framework.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from promptops.config.settings import env, find_repo_root
from promptops.errors import PromptOpsError
from promptops.files import keep_out_of_git
from promptops.prompt.names import NAME_PATTERN

if TYPE_CHECKING:
    from promptops.chat import Prepared

CAPTURES_DIR = ".promptops/captures"
KEEP_FILES = 3  # NAME.jsonl, NAME.1.jsonl, NAME.2.jsonl
QUEUE_SIZE = 10_000  # rows waiting for the writer; past it rows are dropped (and counted)
BATCH = 256  # rows written between two flushes of the open files
MIN_MAX_BYTES = 3 * 1024

# (pattern, replacement), applied in this order: keys before digit runs (a key holds digits).
DEFAULT_REDACTIONS: tuple[tuple[str, str], ...] = (
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[email]"),
    (r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", "Bearer [key]"),
    (r"\bsk-[A-Za-z0-9_-]{16,}", "[key]"),  # OpenAI, Anthropic (sk-ant-...), project keys
    (r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})", "[key]"),  # GitHub tokens
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "[key]"),  # AWS access key ids
    (r"\b(?:xox[abposr]-[A-Za-z0-9-]{10,}|hf_[A-Za-z0-9]{20,})", "[key]"),  # Slack, Hugging Face
    (r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "[key]"),  # JWTs
    (r"(?<!\d)\+?\d(?:[ -]?\d){5,}(?!\d)", "[number]"),  # cards, phones, account numbers (spaces, dashes)
)
EXTRA_REPLACEMENT = "[redacted]"


@dataclass(frozen=True)
class CaptureSettings:
    """The PROMPTOPS_CAPTURE* variables (`from_env`), or built directly in code and tests.

    `capture`: `off`, `on` (every prompt) or comma-separated prompt names. `rate`: the share of requests
    kept, 0..1. `directory`: default `<repo>/.promptops/captures`. `max_bytes`: per prompt, all its
    files together. `redact`: extra regular expressions, one, or a JSON list of them.
    """

    capture: str = env("CAPTURE", default="off")
    rate: float = env("CAPTURE_RATE", default=1.0)
    directory: Path | None = env("CAPTURE_DIR", default=None)
    max_bytes: int = env("CAPTURE_MAX_BYTES", default=50_000_000)
    redact: str = env("CAPTURE_REDACT", default="")

    def __post_init__(self) -> None:
        names = self.prompts
        bad = sorted(n for n in names or () if not NAME_PATTERN.fullmatch(n))
        if bad:
            raise PromptOpsError(f"PROMPTOPS_CAPTURE={self.capture!r}: {bad[0]!r} is not a prompt name",
                                 fix="use off, on, or comma-separated prompt names (support,faq)")
        if not 0 <= self.rate <= 1:
            raise PromptOpsError(f"PROMPTOPS_CAPTURE_RATE={self.rate!r} is not valid: use a number from 0 to 1",
                                 fix="e.g. 0.1 keeps one request in ten")
        if self.max_bytes < MIN_MAX_BYTES:
            raise PromptOpsError(f"PROMPTOPS_CAPTURE_MAX_BYTES={self.max_bytes!r} is too small",
                                 fix=f"use at least {MIN_MAX_BYTES} bytes (default 50000000)")
        self.patterns()  # a bad regular expression is an error now, not in the writer thread

    @classmethod
    def from_env(cls, repo: Path | None = None, **overrides: Any) -> CaptureSettings:
        """The settings from PROMPTOPS_CAPTURE* (`overrides` win); `directory` defaults into `repo`."""
        from promptops.config.reader import from_env

        settings = from_env(cls, **overrides)
        if settings.directory is None and repo is not None:
            return CaptureSettings(settings.capture, settings.rate, repo / CAPTURES_DIR, settings.max_bytes,
                                   settings.redact)
        return settings

    @property
    def prompts(self) -> frozenset[str] | None:
        """The prompts captured: None for every prompt (`on`), empty for none (`off`)."""
        value = self.capture.strip().lower()
        if value in ("on", "all", "1", "true", "yes"):
            return None
        if value in ("", "off", "0", "false", "no"):
            return frozenset()
        return frozenset(name.strip() for name in self.capture.split(",") if name.strip())

    @property
    def on(self) -> bool:
        return self.prompts != frozenset() and self.rate > 0

    def enabled_for(self, prompt: str) -> bool:
        """Whether requests to `prompt` are captured (before sampling)."""
        names = self.prompts
        return self.rate > 0 and (names is None or prompt in names)

    def patterns(self) -> tuple[tuple[re.Pattern[str], str], ...]:
        """The redactions in order: the defaults, then each extra pattern."""
        extra = self.redact.strip()
        if extra.startswith("["):
            try:
                listed = json.loads(extra)
            except ValueError as exc:
                raise PromptOpsError(f"PROMPTOPS_CAPTURE_REDACT is not a JSON list: {exc}",
                                     fix='write one regular expression, or a JSON list: ["ACME-\\\\d+", "secret"]'
                                     ) from None
            extras = [str(p) for p in listed if str(p)]
        else:
            extras = [extra] if extra else []
        out = [(re.compile(p), r) for p, r in DEFAULT_REDACTIONS]
        for pattern in extras:
            try:
                out.append((re.compile(pattern), EXTRA_REPLACEMENT))
            except re.error as exc:
                raise PromptOpsError(f"PROMPTOPS_CAPTURE_REDACT: {pattern!r} is not a regular expression ({exc})",
                                     fix="fix the pattern (Python `re` syntax)") from None
        return tuple(out)

    def folder(self) -> Path:
        """Where the files go: `directory`, else `.promptops/captures` of the repository here."""
        return self.directory if self.directory is not None else find_repo_root() / CAPTURES_DIR


def sampled(request_id: str, rate: float) -> bool:
    """Whether `rate` keeps this request: a hash of its id, so one id always gets the same answer."""
    if rate >= 1:
        return True
    if rate <= 0:
        return False
    digest = hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def redact(text: str, patterns: Iterable[tuple[re.Pattern[str], str]]) -> str:
    """`text` with every match of each pattern replaced, in order."""
    for pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    return text


def redact_row(row: Mapping[str, Any], patterns: Sequence[tuple[re.Pattern[str], str]]) -> dict[str, Any]:
    """A row with its texts redacted: variable values, history contents, the captured answer (and any other
    text a caller or the model wrote); the metadata (ids, prompt, version, counts) is kept."""
    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, patterns)
        if isinstance(value, Mapping):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [walk(item) for item in value]
        return value

    out = {key: (value if key == "__captured" else walk(value)) for key, value in row.items()}
    meta = row.get("__captured")
    if isinstance(meta, Mapping):
        out["__captured"] = {key: (walk(value) if key == "answer" else value) for key, value in meta.items()}
    return out


def _turn(turn: Any) -> dict[str, Any]:
    if isinstance(turn, Mapping):
        return {k: turn[k] for k in ("role", "content", "tool_calls") if k in turn}
    return {"role": turn.role, "content": turn.content}


def row(prepared: Prepared, answer: Any, *, request_id: str, message: str | None, history: Sequence[Any] = (),
        variables: Mapping[str, str] | None = None, canary: bool = False, at: float | None = None,
        latency_ms: float | None = None) -> dict[str, Any]:
    """The dataset row of one answered request (not yet redacted: the writer redacts).

    `prepared` is the request's `promptops.chat.Prepared` (prompt, version, label), `answer` its
    `promptops.triton.client.Answer` (text and the model's token counts; None when it failed), `message`
    the caller's `{user}`, `history` the past turns it sent (dicts or `Turn`s), `variables` any other
    values it set. `latency_ms` defaults to the answer's total time.
    """
    if latency_ms is None and answer is not None:
        latency_ms = answer.total_s * 1000
    values = dict(variables or {})
    if message is not None:
        values["user"] = message
    out: dict[str, Any] = {"vars": values}
    if history:
        out["history"] = [_turn(t) for t in history]
    out["__captured"] = {
        "request_id": request_id, "at": round(time.time() if at is None else at, 3), "prompt": prepared.name,
        "version": prepared.version if prepared.number is None else prepared.number, "label": prepared.label,
        "canary": canary,
        "answer": answer.text if answer is not None else None,
        "prompt_tokens": answer.prompt_tokens if answer is not None else None,
        "completion_tokens": answer.completion_tokens if answer is not None else None,
        "latency_ms": None if latency_ms is None else round(latency_ms, 1)}
    return out


@dataclass
class CaptureStats:
    """What the writer did: rows written, dropped (queue full), too large for a file, failed writes."""

    queued: int = 0
    written: int = 0
    dropped: int = 0
    too_large: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass
class _File:
    handle: IO[bytes] | None = None
    size: int = 0


_STOP = object()


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


class Capture:
    """Writes captured rows in the background; see the module docstring.

    `record(row)` returns at once (True when the row was queued). `flush()` waits until what was queued
    is written; `close()` flushes and stops the writer. Safe to call from any thread or the event loop.
    """

    def __init__(self, settings: CaptureSettings, *, queue_size: int = QUEUE_SIZE) -> None:
        self.settings = settings
        self.directory = settings.folder()
        self.stats = CaptureStats()
        self._patterns = settings.patterns()
        self._file_limit = settings.max_bytes // KEEP_FILES
        self._files: dict[str, _File] = {}
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def enabled_for(self, prompt: str) -> bool:
        """Whether requests to `prompt` are captured (before sampling)."""
        return self.settings.enabled_for(prompt)

    def wants(self, prompt: str, request_id: str) -> bool:
        """Whether this request is captured: its prompt is, and the rate keeps its id (build the row only then)."""
        return self.enabled_for(prompt) and sampled(request_id, self.settings.rate)

    def record(self, row: Mapping[str, Any]) -> bool:
        """Queue a row (`row()`'s shape) for writing, if its prompt is captured and sampled; never blocks."""
        meta = row.get("__captured") or {}
        prompt, request_id = str(meta.get("prompt", "")), str(meta.get("request_id", ""))
        if self._closed or not self.wants(prompt, request_id) or not NAME_PATTERN.fullmatch(prompt):
            return False
        self._start()
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.stats.dropped += 1
            return False
        self.stats.queued += 1
        return True

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every row queued so far is written (True), or `timeout_s` passed (False)."""
        if self._thread is None:
            return True
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout_s)
        except queue.Full:
            return False
        return marker.done.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, close the files and stop the writer (a stuck writer is left after `timeout_s`:
        it is a daemon thread)."""
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            return
        thread.join(timeout_s)

    # --- the writer thread ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="promptops-capture", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            markers = []
            for item in batch:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    self._write(item)
            self._flush_files(close=stop)
            for marker in markers:
                marker.done.set()

    def _path(self, prompt: str, index: int = 0) -> Path:
        return self.directory / (f"{prompt}.jsonl" if index == 0 else f"{prompt}.{index}.jsonl")

    def _write(self, item: Mapping[str, Any]) -> None:
        prompt = str(item["__captured"]["prompt"])
        try:
            line = (json.dumps(redact_row(item, self._patterns), ensure_ascii=False, separators=(",", ":"),
                               default=str) + "\n").encode("utf-8", "replace")
        except (TypeError, ValueError) as exc:  # a row that is not JSON: the caller's mistake, not the disk's
            self._failed(f"row of {prompt} is not JSON: {exc}")
            return
        if len(line) > self._file_limit:
            self.stats.too_large += 1
            return
        try:
            state = self._open(prompt)
            if state.size and state.size + len(line) > self._file_limit:
                state = self._rotate(prompt)
            assert state.handle is not None
            state.handle.write(line)
            state.size += len(line)
            self.stats.written += 1
        except OSError as exc:
            self._drop_file(prompt)
            self._failed(f"cannot write {self._path(prompt)}: {exc.strerror or exc}")

    def _open(self, prompt: str) -> _File:
        state = self._files.get(prompt)
        if state is None or state.handle is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            keep_out_of_git(self.directory.parent)  # .promptops/: captured inputs are never committed
            path = self._path(prompt)
            handle = open(path, "ab")  # noqa: SIM115 - kept open across batches, closed on rotate and close
            state = self._files[prompt] = _File(handle, os.fstat(handle.fileno()).st_size)
        return state

    def _rotate(self, prompt: str) -> _File:
        """NAME.jsonl -> NAME.1.jsonl -> NAME.2.jsonl (the oldest is replaced); a new NAME.jsonl."""
        self._drop_file(prompt)
        for index in range(KEEP_FILES - 1, 0, -1):
            source = self._path(prompt, index - 1)
            if source.exists():
                os.replace(source, self._path(prompt, index))
        return self._open(prompt)

    def _drop_file(self, prompt: str) -> None:
        state = self._files.pop(prompt, None)
        if state is not None and state.handle is not None:
            try:
                state.handle.close()
            except OSError:
                pass

    def _flush_files(self, close: bool = False) -> None:
        for prompt, state in list(self._files.items()):
            try:
                if state.handle is not None:
                    state.handle.flush()
            except OSError as exc:
                self._drop_file(prompt)
                self._failed(f"cannot write {self._path(prompt)}: {exc.strerror or exc}")
            if close:
                self._drop_file(prompt)

    def _failed(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message


__all__ = ["CAPTURES_DIR", "Capture", "CaptureSettings", "CaptureStats", "DEFAULT_REDACTIONS", "redact",
           "redact_row", "row", "sampled"]
