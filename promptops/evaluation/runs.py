"""Run records: every answer, score and reason of one prompt's test run, kept under `.promptops/runs/`.

A record is one JSON file, `<UTC timestamp>-<prompt>.json` (e.g. `20260301T101502123Z-support.json`),
written atomically. A case run `repeat` times keeps every attempt and passes when its pass rate
reaches its `min_pass_rate` (1.0 unless set): the rate is measured and recorded, never hidden.
For a prompt with an output contract (promptops.prompt.outputs) each attempt also records whether its
answer parsed and satisfied the contract, and the run counts them (`RunRecord.conformance`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from promptops.errors import PromptOpsError
from promptops.evaluation.assertions import AssertionResult, CaseScore
from promptops.evaluation.datasets import Case
from promptops.files import atomic_write
from promptops.prompt.names import check_name
from promptops.triton.client import Answer

RUNS_DIR = ".promptops/runs"
FORMAT = 1
_RUN_ID = re.compile(r"(?P<stamp>\d{8}T\d{9}Z)-(?P<prompt>[a-z0-9][a-z0-9._-]{0,63})")


class RunNotFound(PromptOpsError):
    """No run record with that id."""


@dataclass
class Attempt:
    """One run of one case: the answer, what it cost, and its verdict (or the error that stopped it)."""

    answer: str = ""
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    assertions: list[AssertionResult] = field(default_factory=list)
    score: float = 0.0
    passed: bool = False
    error: str | None = None
    parsed: bool | None = None  # under an output contract: the answer parsed (JSON, or matched regex/choice)
    valid: bool | None = None  # ... and satisfied the contract (schema, tools); both None without a contract

    @classmethod
    def scored(cls, answer: Answer, verdict: CaseScore, structure: tuple[bool, bool] | None = None) -> Attempt:
        """An answered attempt, from what the model said, what the assertions made of it and, under an
        output contract, whether the answer (parsed, valid)."""
        first_token_ms = None if answer.ttft_s is None else answer.ttft_s * 1000
        parsed, valid = structure if structure is not None else (None, None)
        return cls(answer.text, answer.latency_ms, first_token_ms, answer.prompt_tokens, answer.completion_tokens,
                   answer.finish_reason, list(verdict.assertions), verdict.score, verdict.passed,
                   parsed=parsed, valid=valid)

    @classmethod
    def failed(cls, error: str, latency_ms: float = 0.0) -> Attempt:
        """An attempt the model never answered (Triton down, a rendering error...)."""
        return cls(latency_ms=latency_ms, error=error)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "latency_ms": self.latency_ms, "first_token_ms": self.first_token_ms,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "finish_reason": self.finish_reason, "score": self.score, "passed": self.passed,
                "error": self.error, "parsed": self.parsed, "valid": self.valid,
                "assertions": [a.to_dict() for a in self.assertions]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(str(data.get("answer", "")), float(data.get("latency_ms", 0.0)), data.get("first_token_ms"),
                   data.get("prompt_tokens"), data.get("completion_tokens"), data.get("finish_reason"),
                   [AssertionResult.from_dict(a) for a in data.get("assertions", [])], float(data.get("score", 0.0)),
                   bool(data.get("passed", False)), data.get("error"), data.get("parsed"), data.get("valid"))


@dataclass
class CaseRecord:
    """Every attempt of one test case; it passes when its pass rate reaches `min_pass_rate`."""

    name: str
    vars: dict[str, str] = field(default_factory=dict)
    source: str = ""
    min_pass_rate: float = 1.0
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def passes(self) -> int:
        return sum(1 for a in self.attempts if a.passed)

    @property
    def pass_rate(self) -> float:
        """Passed attempts / attempts (0.0 with none)."""
        return self.passes / len(self.attempts) if self.attempts else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.attempts) and self.pass_rate >= self.min_pass_rate

    @property
    def errored(self) -> bool:
        """Every attempt ended in an error: the model never judged."""
        return bool(self.attempts) and all(a.error is not None for a in self.attempts)

    @property
    def score(self) -> float:
        """The mean score of the attempts."""
        return sum(a.score for a in self.attempts) / len(self.attempts) if self.attempts else 0.0

    @property
    def latency_ms(self) -> float:
        return sum(a.latency_ms for a in self.attempts)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "vars": self.vars, "source": self.source, "repeat": len(self.attempts),
                "min_pass_rate": self.min_pass_rate, "pass_rate": self.pass_rate, "passed": self.passed,
                "score": self.score, "attempts": [a.to_dict() for a in self.attempts]}

    @classmethod
    def of(cls, case: Case, attempts: Sequence[Attempt]) -> CaseRecord:
        """The record of a test case's attempts (the runner's one call per case)."""
        return cls(case.name, dict(case.vars), case.source, case.min_pass_rate, list(attempts))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseRecord:
        return cls(str(data["name"]), dict(data.get("vars", {})), str(data.get("source", "")),
                   float(data.get("min_pass_rate", 1.0)), [Attempt.from_dict(a) for a in data.get("attempts", [])])


@dataclass(frozen=True)
class Conformance:
    """How many answers under an output contract parsed, and how many satisfied it."""

    answers: int
    parsed: int
    valid: int

    @classmethod
    def of(cls, attempts: Sequence[Attempt]) -> Conformance | None:
        """The count over the attempts that were checked; None when none was (no contract)."""
        checked = [a for a in attempts if a.parsed is not None]
        if not checked:
            return None
        return cls(len(checked), sum(1 for a in checked if a.parsed), sum(1 for a in checked if a.valid))

    def text(self) -> str:
        """e.g. `parsed 20/20 (100%), valid 19/20 (95%)`."""
        return (f"parsed {self.parsed}/{self.answers} ({self.parsed / self.answers:.0%}), "
                f"valid {self.valid}/{self.answers} ({self.valid / self.answers:.0%})")

    def to_dict(self) -> dict[str, Any]:
        return {"answers": self.answers, "parsed": self.parsed, "valid": self.valid,
                "parse_rate": self.parsed / self.answers, "valid_rate": self.valid / self.answers}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunRecord:
    """One test run of one prompt version on one model. `id` is set when it is saved or loaded."""

    prompt: str
    version: str  # "draft", "v3", a short SHA: what was tested
    model: str
    commit: str | None = None  # the commit of that version (None for the working tree)
    label: str | None = None  # the release label it was resolved from ("production"), if any
    started_at: datetime = field(default_factory=_utc_now)
    duration_ms: float = 0.0
    cases: list[CaseRecord] = field(default_factory=list)
    id: str = ""

    @property
    def pass_rate(self) -> float:
        """Passed cases / cases (1.0 with none)."""
        return sum(1 for c in self.cases if c.passed) / len(self.cases) if self.cases else 1.0

    @property
    def attempt_pass_rate(self) -> float:
        """Passed attempts / attempts, over every case."""
        attempts = [a for c in self.cases for a in c.attempts]
        return sum(1 for a in attempts if a.passed) / len(attempts) if attempts else 1.0

    @property
    def score(self) -> float:
        """The mean case score (1.0 with none)."""
        return sum(c.score for c in self.cases) / len(self.cases) if self.cases else 1.0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    @property
    def conformance(self) -> Conformance | None:
        """How many answers parsed and satisfied the prompt's output contract (None: it has none)."""
        return Conformance.of([a for c in self.cases for a in c.attempts])

    def to_dict(self) -> dict[str, Any]:
        """The file's content; the summary figures are written for readers and recomputed on load."""
        return {"format": FORMAT, "id": self.id, "prompt": self.prompt, "version": self.version,
                "commit": self.commit, "label": self.label, "model": self.model,
                "started_at": _timestamp(self.started_at), "duration_ms": self.duration_ms,
                "summary": {"cases": len(self.cases), "passed": sum(1 for c in self.cases if c.passed),
                            "pass_rate": self.pass_rate, "attempt_pass_rate": self.attempt_pass_rate,
                            "score": self.score,
                            "structured": None if self.conformance is None else self.conformance.to_dict()},
                "cases": [c.to_dict() for c in self.cases]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown format {data.get('format')!r}")
        return cls(str(data["prompt"]), str(data["version"]), str(data["model"]), data.get("commit"),
                   data.get("label"), datetime.fromisoformat(str(data["started_at"])),
                   float(data.get("duration_ms", 0.0)), [CaseRecord.from_dict(c) for c in data["cases"]],
                   str(data.get("id", "")))


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamp(when: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y%m%dT%H%M%S") + f"{when.microsecond // 1000:03d}Z"


def runs_dir(repo: Path) -> Path:
    return repo / RUNS_DIR


def save_run(run: RunRecord, repo: Path) -> Path:
    """Write the record atomically as a new file and set `run.id`; never overwrites an earlier run.

    Two runs of one prompt in the same millisecond get ids a millisecond apart.
    """
    check_name(run.prompt)
    for bump in range(1000):
        run_id = f"{_stamp(run.started_at + timedelta(milliseconds=bump))}-{run.prompt}"
        path = runs_dir(repo) / f"{run_id}.json"
        if path.exists():
            continue
        run.id = run_id
        data = json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n"
        try:
            atomic_write(path, data.encode("utf-8"), exclusive=True)
        except FileExistsError:  # another writer took the name between the check and the link
            continue
        return path
    raise PromptOpsError(f"cannot name a run file for {run.prompt}: 1000 runs in the same second")


@dataclass(frozen=True)
class RunInfo:
    """A saved run, known from its file name alone (nothing is read)."""

    id: str
    prompt: str
    started_at: datetime
    path: Path


def list_runs(repo: Path, prompt: str | None = None) -> list[RunInfo]:
    """Saved runs, oldest first; only `prompt`'s when given."""
    folder = runs_dir(repo)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob("*.json"):
        match = _RUN_ID.fullmatch(path.stem)
        if match and (prompt is None or match["prompt"] == prompt):
            started = datetime.strptime(match["stamp"][:15], "%Y%m%dT%H%M%S").replace(
                tzinfo=UTC, microsecond=int(match["stamp"][15:18]) * 1000)
            found.append(RunInfo(path.stem, match["prompt"], started, path))
    return sorted(found, key=lambda info: info.id)


def load_run(repo: Path, run_id: str) -> RunRecord:
    """The saved run `run_id` (a file stem from list_runs)."""
    if not _RUN_ID.fullmatch(run_id):
        raise RunNotFound(f"{run_id!r} is not a run id", fix="run ids look like 20260301T101502123Z-support")
    path = runs_dir(repo) / f"{run_id}.json"
    try:
        data = json.loads(path.read_bytes())
        run = RunRecord.from_dict(data)
    except FileNotFoundError:
        raise RunNotFound(f"no run {run_id} in {RUNS_DIR}/", fix=f"see the runs saved in {RUNS_DIR}/") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PromptOpsError(f"run file {RUNS_DIR}/{run_id}.json cannot be read: {exc}",
                             fix="delete it; it is only a record") from None
    run.id = run_id
    return run


def latest_run(repo: Path, prompt: str) -> RunRecord | None:
    """The newest saved run of `prompt`, if any."""
    runs = list_runs(repo, prompt)
    return load_run(repo, runs[-1].id) if runs else None


# --- comparing two runs -----------------------------------------------------------------------------------

CHANGE_ORDER = ("broken", "worse", "fixed", "better", "added", "removed", "same")


@dataclass(frozen=True)
class CaseChange:
    """How one case fared from `base` to `head`: fixed, broken, better, worse, same, added or removed."""

    name: str
    status: str
    base: CaseRecord | None
    head: CaseRecord | None

    @property
    def answer_changed(self) -> bool:
        answers = [[a.answer for a in c.attempts] if c else None for c in (self.base, self.head)]
        return answers[0] != answers[1]


@dataclass(frozen=True)
class RunComparison:
    """Per-case changes between two runs, worst first."""

    base: RunRecord
    head: RunRecord
    changes: list[CaseChange]

    def count(self, status: str) -> int:
        return sum(1 for c in self.changes if c.status == status)

    @property
    def regressed(self) -> bool:
        """Some case broke or got worse."""
        return any(c.status in ("broken", "worse") for c in self.changes)

    def summary(self) -> str:
        """e.g. `1 broken · 2 better · 7 same`."""
        return " · ".join(f"{self.count(s)} {s}" for s in CHANGE_ORDER if self.count(s)) or "no cases"


def _keyed(run: RunRecord) -> dict[str, CaseRecord]:
    """Cases by name; a repeated name gets ` (2)`, ` (3)`... in order."""
    out: dict[str, CaseRecord] = {}
    for case in run.cases:
        key, n = case.name, 1
        while key in out:
            n += 1
            key = f"{case.name} ({n})"
        out[key] = case
    return out


def _status(base: CaseRecord, head: CaseRecord, tolerance: float) -> str:
    if base.passed != head.passed:
        return "fixed" if head.passed else "broken"
    before, after = (base.pass_rate, base.score), (head.pass_rate, head.score)
    if abs(after[0] - before[0]) <= tolerance and abs(after[1] - before[1]) <= tolerance:
        return "same"
    return "better" if after > before else "worse"


def compare_runs(base: RunRecord, head: RunRecord, *, tolerance: float = 1e-9) -> RunComparison:
    """What got better or worse per case (matched by name); score moves within `tolerance` are `same`."""
    old, new = _keyed(base), _keyed(head)
    changes = [CaseChange(name, _status(old[name], case, tolerance) if name in old else "added", old.get(name), case)
               for name, case in new.items()]
    changes += [CaseChange(name, "removed", case, None) for name, case in old.items() if name not in new]
    changes.sort(key=lambda c: CHANGE_ORDER.index(c.status))
    return RunComparison(base, head, changes)

