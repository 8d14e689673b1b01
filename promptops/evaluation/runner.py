"""The test runner: every case of a prompt (inline and dataset rows) on every model, scored by the catalogue.

`run_tests` streams each target's cases (`promptops.evaluation.datasets.iter_cases`), runs each one
`repeat` times on each model through the chat pipeline (`promptops.chat`: a chat prompt is rendered
with the answering model's own chat template, and the answer carries the model's token counts),
scores every attempt with `promptops.evaluation.assertions.check_all`, and returns one run record
(`promptops.evaluation.runs.RunRecord`) per target and model.

- **Models.** `models=` (the CLI's `--model`) wins; else the target's own list; else the prompt's
  `models`; else its `model`, else the default model.
- **Repeat.** A case's attempts are its own `repeat` (file or dataset row) times the run's `repeat`
  (`--repeat N` multiplies, so a case that needs 3 tries gets 3N); its `min_pass_rate` is unchanged.
- **Bounded.** At most `concurrency` attempts talk to the model at once, and at most
  `READ_AHEAD * concurrency` cases are read ahead of the answers, so a large dataset is never held
  in memory; what is kept is the run record itself (every attempt's answer and verdict).
- **Output contract.** A prompt with one (`response_format`, `tools`: promptops.prompt.outputs) is
  answered under it (the pipeline puts it in the sampling parameters); each attempt records whether
  its answer parsed and satisfied it (`Contract.read`), the run counts them (`RunRecord.conformance`),
  and `json-schema`/`tool-call` assertions check against it.
- **Models for assertions** come through `Tools`: `embedder` binds `InferenceClient.embed` to the
  embeddings model (`similar`), `judge_for` runs the judge prompt (`prompts/judge.json`) through the
  chat pipeline (`llm-rubric`).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import IO, Any, Protocol

from promptops import chat
from promptops.chat import Streamer
from promptops.errors import PromptOpsError
from promptops.evaluation.assertions import Embed, Judge, Tools, check_all, judge_with
from promptops.evaluation.datasets import Case, Opener, iter_cases
from promptops.evaluation.reports import junit_xml
from promptops.evaluation.runs import Attempt, CaseRecord, Conformance, RunRecord
from promptops.prompt.model import Prompt
from promptops.prompt.outputs import Contract
from promptops.triton.client import Embeddings

EMBEDDING_MODEL = "all-minilm-l6-v2"
"""The embeddings model of `similar` unless the caller names another (PROMPTOPS_EMBEDDING_MODEL in the CLI)."""
READ_AHEAD = 4
"""Cases read ahead per concurrent slot: enough to keep every slot busy, few enough to keep memory flat."""


class Embedder(Protocol):
    async def embed(self, model: str, texts: Sequence[str], *, timeout_s: float | None = None) -> Embeddings: ...


@dataclass(frozen=True)
class Target:
    """A prompt version to test.

    `label` names the version ("draft", "v3", a short SHA); `commit` and `release` (the release label
    it was resolved from, e.g. "production") go into the run record. `opener` reads the dataset files
    at that version's commit (None: the working tree). `models` overrides the prompt's own.
    """

    prompt: Prompt
    label: str = "draft"
    commit: str | None = None
    release: str | None = None
    opener: Opener | None = None
    models: tuple[str, ...] = ()


def models_for(target: Target, models: Sequence[str], default_model: str) -> tuple[str, ...]:
    """The models a target's cases run on: `models` (the CLI's), the target's, the prompt's `models`, its `model`."""
    listed = models or target.models or target.prompt.document.get("models") or ()
    return tuple(dict.fromkeys(listed)) or (target.prompt.model or default_model,)


def on_model(prompt: Prompt, model: str) -> Prompt:
    """The prompt answered by `model` (the pipeline renders a chat prompt with that model's chat template)."""
    return prompt if prompt.model == model else Prompt(prompt.name, {**prompt.document, "model": model},
                                                       prompt.config)


def with_cases_of(prompt: Prompt, source: Prompt) -> Prompt:
    """`prompt` with `source`'s test cases: two versions judged by the same questions."""
    return Prompt(prompt.name, {**prompt.document, "tests": source.tests}, prompt.config)


def commit_opener(git: Any, commit: str) -> Opener:
    """Reads files as committed at `commit` through a `promptops.store.git.Git` (a blob comes back whole)."""
    def open_blob(rel: str) -> IO[bytes]:
        data = git.read_optional([f"{commit}:{rel}"])[0]
        if data is None:
            raise FileNotFoundError(rel)
        return io.BytesIO(data)

    return open_blob


def embedder(client: Embedder, model: str = EMBEDDING_MODEL) -> Embed:
    """`Tools.embed` on the embeddings model `model` served by the client's Triton."""
    async def embed(texts: Sequence[str]) -> Sequence[Sequence[float]]:
        return (await client.embed(model, texts)).vectors

    return embed


def judge_for(client: Streamer, load: Callable[[], Prompt], default_model: str, *,
              model: str | None = None) -> Judge:
    """`Tools.judge`: the judge prompt `load()` gives (loaded at its first use, once) run through the chat pipeline.

    The judge answers on `model` when given, else on the model its file names, else `default_model`.
    A judge that cannot be loaded or answer fails the `llm-rubric` assertion with the reason.
    """
    loaded: list[Prompt] = []

    async def complete(variables: dict[str, str]) -> str:
        if not loaded:
            judge = load()
            loaded.append(on_model(judge, model) if model else judge)
        prepared = chat.prepare(loaded[0], None, variables=variables, default_model=default_model,
                                version="judge", source=f"the judge prompt ({loaded[0].name})")
        return (await chat.complete(client, prepared)).text

    return judge_with(complete)


def structure(contract: Contract | None, text: str) -> tuple[bool, bool] | None:
    """(parsed, valid) of an answer under `contract`: parsed is JSON that loads (a regex or choice contract:
    the text matches), valid satisfies the whole contract. None without a contract to check."""
    if contract is None or (read := contract.read(text)) is None:
        return None
    if contract.kind in ("regex", "choice") and not contract.callable_tools:
        return read.valid, read.valid
    try:
        json.loads(text)
    except ValueError:
        return False, False
    return True, read.valid


async def _attempt(client: Streamer, prepared: chat.Prepared, case: Case, facts: Mapping[str, Any],
                   tools: Tools) -> Attempt:
    try:
        answer = await chat.complete(client, prepared)
    except PromptOpsError as exc:  # InferenceError included: Triton down, unknown model, timeout
        return Attempt.failed(exc.message)
    verdict = await check_all(case.assertions, answer, facts, tools, threshold=case.threshold,
                              contract=prepared.contract)
    return Attempt.scored(answer, verdict, structure(prepared.contract, answer.text))


@dataclass
class _Run:
    """A run record being filled: cases arrive in any order and are put back in file order at the end."""

    record: RunRecord
    cases: list[tuple[int, CaseRecord]] = field(default_factory=list)
    started: float | None = None
    ended: float = 0.0


async def run_tests(client: Streamer, targets: Sequence[Target], default_model: str, *,
                    models: Sequence[str] = (), repeat: int = 1, concurrency: int = 2, tools: Tools | None = None,
                    on_case: Callable[[RunRecord, CaseRecord], None] | None = None) -> list[RunRecord]:
    """Run every case of every target on each of its models; one run record per (target, model), in order.

    See the module docstring for models, repeat and the bounds. `tools` gives the repository (dataset,
    schema and Python check files) and the models assertions need. `on_case` is called as each case
    finishes (a progress bar). A dataset row that is not a case raises DatasetError (located, with the
    fix) and cancels the run.
    """
    tools = tools or Tools()
    repo = tools.repo or Path(".")
    gate = asyncio.Semaphore(max(1, concurrency))
    window = asyncio.Semaphore(max(1, concurrency) * READ_AHEAD)
    runs: list[list[_Run]] = []

    async def one(run: _Run, index: int, case: Case, prepared: chat.Prepared | str) -> None:
        try:
            facts = {**case.as_mapping(), "model": run.record.model}

            async def attempt(number: int) -> Attempt:
                async with gate:
                    run.started = run.started or time.perf_counter()
                    if isinstance(prepared, str):
                        return Attempt.failed(prepared)
                    return await _attempt(client, prepared, case, {**facts, "attempt": number}, tools)

            attempts = await asyncio.gather(*(attempt(n) for n in range(case.repeat * max(1, repeat))))
            record = CaseRecord.of(case, attempts)
            run.cases.append((index, record))
            run.ended = time.perf_counter()
            if on_case:
                on_case(run.record, record)
        finally:
            window.release()

    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)  # finished cases keep only their record: memory stays flat on large datasets
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    try:
        for target in targets:
            chosen = models_for(target, models, default_model)
            records = [_Run(RunRecord(target.prompt.name, target.label, model, target.commit, target.release))
                       for model in chosen]
            runs.append(records)
            prompts = [on_model(target.prompt, model) for model in chosen]
            for index, case in enumerate(iter_cases(target.prompt, repo, tools.prompts_dir, opener=target.opener)):
                for run, prompt in zip(records, prompts, strict=True):
                    await window.acquire()
                    if failures:
                        raise failures[0]
                    task = asyncio.create_task(one(run, index, case, _prepare(prompt, target, case, default_model)))
                    tasks.add(task)
                    task.add_done_callback(done)
        while tasks:
            await asyncio.wait(set(tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if failures:
        raise failures[0]
    out = []
    for run in (r for records in runs for r in records):
        run.record.cases = [record for _, record in sorted(run.cases, key=lambda pair: pair[0])]
        run.record.duration_ms = (run.ended - run.started) * 1000 if run.started else 0.0
        out.append(run.record)
    return out


def _prepare(prompt: Prompt, target: Target, case: Case, default_model: str) -> chat.Prepared | str:
    """The case rendered for its model once (every attempt sends the same text), or why it cannot be."""
    try:
        return chat.prepare(prompt, None, case.history, variables=case.vars, default_model=default_model,
                            version=target.label, source=f"{prompt.name}@{target.label}")
    except PromptOpsError as exc:
        return exc.message


@dataclass(frozen=True)
class RunSummary:
    """One row of the prompts x models table: pass rates, median latency and the model's own token totals."""

    prompt: str
    version: str
    model: str
    cases: int
    passed: int
    pass_rate: float
    attempt_pass_rate: float
    score: float
    p50_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    errors: int
    structured: Conformance | None = None  # answers that parsed / satisfied the output contract (None: no contract)

    @classmethod
    def of(cls, run: RunRecord) -> RunSummary:
        attempts = [a for c in run.cases for a in c.attempts]
        answered = [a for a in attempts if a.error is None]
        p50 = median(a.latency_ms for a in answered) if answered else None
        return cls(run.prompt, run.version, run.model, len(run.cases), sum(1 for c in run.cases if c.passed),
                   run.pass_rate, run.attempt_pass_rate, run.score, p50,
                   sum(a.prompt_tokens or 0 for a in answered), sum(a.completion_tokens or 0 for a in answered),
                   sum(1 for a in attempts if a.error is not None), run.conformance)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "version": self.version, "model": self.model, "cases": self.cases,
                "passed": self.passed, "pass_rate": self.pass_rate, "attempt_pass_rate": self.attempt_pass_rate,
                "score": self.score, "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 1),
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "errors": self.errors,
                "structured": None if self.structured is None else self.structured.to_dict()}


def shown_attempt(case: CaseRecord) -> Attempt:
    """The attempt that stands for a case in one-line reports (the first failed one, else the first)."""
    return next((a for a in case.attempts if not a.passed), case.attempts[0] if case.attempts else Attempt())


def why_failed(case: CaseRecord) -> str:
    """One line: why a case did not pass (its error, failed assertions, or pass rate under its minimum)."""
    attempt = shown_attempt(case)
    reasons = attempt.error or "; ".join(a.reason for a in attempt.assertions if not a.passed and a.weight > 0)
    reasons = reasons or f"score {attempt.score:.2f} under the case's threshold"
    if len(case.attempts) > 1:
        return (f"passed {case.passes} of {len(case.attempts)} runs ({case.pass_rate:.0%}, needs "
                f"{case.min_pass_rate:.0%}); e.g. {reasons}")
    return reasons


__all__ = ["EMBEDDING_MODEL", "RunSummary", "Target", "commit_opener", "embedder", "shown_attempt", "judge_for",
           "junit_xml", "models_for", "on_model", "run_tests", "structure", "why_failed", "with_cases_of"]
