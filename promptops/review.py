"""Pull-request review: what changed in each prompt and label, whether it is valid, and how the answers changed.

`build_review` gathers the facts (store + diff + validation, and with a client the
test cases run on both versions); the `to_*` functions only format them. A label move
(`support: production v2 -> v3`) is reviewed like a changed prompt: its old and new
target versions are diffed and, with a client, run on the new target's test cases.
A prompt with `models` is run on each of them, and the report compares base and head per model.

Contract changes (promptops.prompt.compat) are listed per prompt and per label move. A breaking one to
a prompt that a protected label points at (in base or in head), or in a protected label's move, fails
the review unless the pull request documents it: a `Breaking-Change: <reason>` trailer in a commit of
the reviewed range, or `allow_breaking` (`promptops review --allow-breaking "<reason>"`).

A canary a label starts, re-weights, changes or ends (`support production: v3, canary v4 at 10% (was 0%)`)
is reviewed like a label move between the versions whose share of callers changes hands (primary ->
canary; old canary -> new; canary -> primary when it ends without being promoted); a canary of an
unapproved version on a protected label blocks the review like a blocked move.

`replay` (`promptops review --outputs --replay FILE`): captured requests (promptops.capture) are
replayed on the base and the head version of each changed prompt they were captured for, and the
report shows each answer that changed; a row that does not render under head is reported with the
reason, not run. `sample` takes a deterministic (seeded) sample of that many rows.
"""

from __future__ import annotations

import dataclasses
import difflib
import html
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptops import chat
from promptops.chat import Streamer
from promptops.errors import Problem, PromptInvalid, PromptOpsError
from promptops.evaluation.assertions import JUDGE_PROMPT, Tools
from promptops.evaluation.datasets import Case, DatasetError, known_variables, read_file
from promptops.evaluation.runner import (
    EMBEDDING_MODEL,
    Target,
    commit_opener,
    embedder,
    judge_for,
    models_for,
    run_tests,
    with_cases_of,
)
from promptops.evaluation.runs import Attempt, CaseRecord, RunRecord
from promptops.prompt.compat import ContractChange
from promptops.prompt.compat import summary as contract_summary
from promptops.prompt.diff import PromptDiff, contract_lines, contract_markdown, diff_changes, diff_prompts
from promptops.prompt.diff import to_json as diff_json
from promptops.prompt.diff import to_markdown as diff_markdown
from promptops.prompt.diff import to_text as diff_text
from promptops.prompt.model import Prompt
from promptops.prompt.schema import check_bytes, json_path
from promptops.store import Change, LabelMove, PromptStore
from promptops.store.changes import commit_of
from promptops.store.labels import EMPTY, Canary, Labels, check_policy, parse, percent
from promptops.store.model import Version

MARKER = "<!-- promptops-review -->"
TRAILER = "Breaking-Change"
BREAKING_FIX = (f"keep the contract compatible, or document the break: add a `{TRAILER}: <reason>` trailer to a "
                "commit of this pull request, or label it `breaking-change` (CI then runs "
                "`promptops review --allow-breaking \"<reason>\"`)")
GITHUB_COMMENT_LIMIT = 65_536
ANSWER_LIMIT = 1_200
REPLAY_SEED = 20  # `--sample N` draws the same rows from the same file every time


@dataclass
class CaseComparison:
    """One test case run on the base and the head version of a prompt, on one model."""

    case: str
    base: CaseRecord | None
    head: CaseRecord | None
    model: str = ""

    @property
    def answer_changed(self) -> bool:
        return self.base is not None and self.head is not None and _answer(self.base) != _answer(self.head)

    @property
    def newly_failing(self) -> bool:
        return self.head is not None and not self.head.passed and (self.base is None or self.base.passed)

    @property
    def newly_passing(self) -> bool:
        return self.head is not None and self.head.passed and self.base is not None and not self.base.passed


class _Findings:
    """What a reviewed prompt or label move shares: its problems, of which errors fail the review, and its
    contract changes, whose breaking ones fail it where a protected label is concerned."""

    problems: list[Problem]
    diff: PromptDiff

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def protected_labels(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def breaking(self) -> list[ContractChange]:
        return self.diff.breaking

    @property
    def breaks_release(self) -> bool:
        """Breaking contract changes where a protected label is concerned."""
        return bool(self.breaking and self.protected_labels)


@dataclass(frozen=True)
class Override:
    """A documented breaking change: where it is documented (`commit 1a2b3c4`, `--allow-breaking`) and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class CanaryMove:
    """A label whose canary starts, changes (weight or version) or ends between base and head.

    `old` and `new` are the versions whose share of callers changes hands, the sides it is reviewed on:
    the label's own version and the canary when one starts or is re-weighted, the old and the new
    canary when it changes version, the canary and the label's own version when it ends.
    """

    name: str
    label: str
    primary: int  # the label's own version at head
    was: Canary | None
    now: Canary | None
    protected: bool

    @property
    def old(self) -> int:
        if self.was is not None and (self.now is None or self.was.version != self.now.version):
            return self.was.version  # ended (its share goes back to the primary), or another version now
        return self.primary  # started or re-weighted: the share moves from the primary to the canary

    @property
    def new(self) -> int:
        return self.now.version if self.now is not None else self.primary

    def describe(self) -> str:
        """`production: v3, canary v4 at 10% (was 0%)`."""
        head = f"{self.label}: v{self.primary}, canary"
        if self.now is None:
            assert self.was is not None
            return f"{head} v{self.was.version} ended (was {percent(self.was.weight)})"
        if self.was is None or self.was.version == self.now.version:
            before = percent(self.was.weight if self.was else 0)
            return f"{head} v{self.now.version} at {percent(self.now.weight)} (was {before})"
        return f"{head} v{self.now.version} at {percent(self.now.weight)} (was {self.was})"

    def __str__(self) -> str:
        return f"{self.name} {self.describe()}"


def _canary_moves(old: Labels, new: Labels) -> list[CanaryMove]:
    """Every canary started, re-weighted, changed or ended between two labels files; a canary that ended
    because its label now serves its version to everyone (promoted) is the label's move, not listed here."""
    moves = []
    for name in sorted({*old.canaries, *new.canaries}):
        for label in sorted({*old.canaries.get(name, {}), *new.canaries.get(name, {})}):
            was, now, primary = old.canary(name, label), new.canary(name, label), new.target(name, label)
            if was == now or primary is None or (now is None and was is not None and was.version == primary):
                continue
            moves.append(CanaryMove(name, label, primary, was, now, label in new.protected))
    return moves


@dataclass
class ReplayRow:
    """One captured request replayed on the base and the head version of a prompt (on one model).

    `error`: why the row does not render under head (then it is not run); `base`/`head` otherwise.
    """

    case: Case
    model: str = ""
    base: CaseRecord | None = None
    head: CaseRecord | None = None
    error: str | None = None

    @property
    def request_id(self) -> str | None:
        return (self.case.captured or {}).get("request_id")

    @property
    def changed(self) -> bool:
        """Both sides ran and the answer (or the error) differs."""
        return self.error is None and _outcome(self.base) != _outcome(self.head)


@dataclass(frozen=True)
class ReplayStats:
    """What `--replay` read: rows in the file, rows of prompts this review changes (before `--sample`),
    rows replayed, and rows left out: of prompts not changed, of changed prompts with no two versions
    to compare (added, removed, invalid at head), and rows that say no prompt."""

    file: str
    rows: int
    candidates: int
    replayed: int
    skipped: int
    unreplayable: int
    anonymous: int
    sample: int | None


@dataclass
class PromptReview(_Findings):
    """The review of one changed prompt."""

    diff: PromptDiff
    problems: list[Problem] = field(default_factory=list)
    cases: list[CaseComparison] = field(default_factory=list)
    protected: tuple[str, ...] = ()  # the protected labels pointing at this prompt in base or in head
    replay: list[ReplayRow] = field(default_factory=list)  # captured requests replayed on base and head

    @property
    def protected_labels(self) -> tuple[str, ...]:
        return self.protected


@dataclass
class LabelReview(_Findings):
    """One label that points at another version at head than at base, e.g. `support: production v2 -> v3`,
    or whose canary changed (`support production: v3, canary v4 at 10% (was 0%)`: a CanaryMove).

    `diff` compares the old and the new target version; `problems` are the labels file's
    findings at this label (a protected label on an unapproved version, or an unapproved canary,
    blocks the move).
    """

    move: LabelMove | CanaryMove
    diff: PromptDiff
    problems: list[Problem] = field(default_factory=list)
    cases: list[CaseComparison] = field(default_factory=list)

    @property
    def protected_labels(self) -> tuple[str, ...]:
        return (self.move.label,) if self.move.protected else ()


@dataclass
class Review:
    """Every changed prompt and every moved label between two commits."""

    base: str
    head: str
    prompts: list[PromptReview]
    outputs: bool = False
    labels: list[LabelReview] = field(default_factory=list)
    label_problems: list[Problem] = field(default_factory=list)  # labels-file findings that block no move
    overrides: list[Override] = field(default_factory=list)  # documented breaking changes
    replay: ReplayStats | None = None  # `--replay`: what was read from the captured file

    @property
    def invalid(self) -> int:
        return sum(1 for p in self.prompts if p.errors)

    @property
    def blocked(self) -> int:
        """Label moves the labels file's rules refuse (protected label on an unapproved version, ...)."""
        return sum(1 for m in self.labels if m.errors)

    @property
    def labels_invalid(self) -> bool:
        return any(p.severity == "error" for p in self.label_problems)

    def _cases(self) -> list[CaseComparison]:
        return [c for item in [*self.prompts, *self.labels] for c in item.cases]

    @property
    def newly_failing(self) -> int:
        return sum(c.newly_failing for c in self._cases())

    @property
    def answers_changed(self) -> int:
        return sum(c.answer_changed for c in self._cases())

    def _replayed(self) -> list[ReplayRow]:
        return [r for p in self.prompts for r in p.replay]

    @property
    def replay_counts(self) -> tuple[int, int, int]:
        """(replayed answers that changed, replayed answers, rows that do not render under head)."""
        rows = self._replayed()
        ran = [r for r in rows if r.error is None]
        return sum(r.changed for r in ran), len(ran), len(rows) - len(ran)

    def _items(self) -> list[PromptReview | LabelReview]:
        return [*self.prompts, *self.labels]

    @property
    def breaking(self) -> int:
        """Breaking contract changes, in changed prompts and in label moves."""
        return sum(len(item.breaking) for item in self._items())

    @property
    def breaking_blocked(self) -> bool:
        """A breaking contract change where a protected label is concerned, and no override documents it."""
        return any(item.breaks_release for item in self._items()) and not self.overrides

    @property
    def failed(self) -> bool:
        """Validation errors at head, blocked label moves, undocumented breaking contract changes to protected
        prompts, or tests that passed on base and fail on head."""
        return bool(self.invalid or self.blocked or self.labels_invalid or self.breaking_blocked
                    or self.newly_failing)

    def summary(self) -> str:
        parts = [f"{len(self.prompts)} prompt{'s' * (len(self.prompts) != 1)} changed"]
        if self.invalid:
            parts.append(f"{self.invalid} invalid")
        if self.labels:
            parts.append(f"{len(self.labels)} label move{'s' * (len(self.labels) != 1)}")
        if self.blocked:
            parts.append(f"{self.blocked} blocked")
        if self.labels_invalid:
            parts.append("labels file invalid")
        if self.breaking:
            parts.append(f"{self.breaking} breaking contract change{'s' * (self.breaking != 1)}")
        if any(item.breaks_release for item in self._items()):
            parts.append("breaking change allowed" if self.overrides else "breaking change not allowed")
        if self.outputs:
            parts.append(f"{self.newly_failing} test{'s' * (self.newly_failing != 1)} newly failing")
            parts.append(f"{self.answers_changed} answer{'s' * (self.answers_changed != 1)} changed")
        if self.replay is not None:
            changed, ran, broken = self.replay_counts
            parts.append(f"{changed} of {ran} replayed answer{'s' * (ran != 1)} changed")
            if broken:
                parts.append(f"{broken} replayed input{'s' * (broken != 1)} "
                             f"do{'es' * (broken == 1)} not render under head")
        return " · ".join(parts)

    def head_results(self) -> list[RunRecord]:
        """The head versions' (and new label targets') results, one run record per prompt and model."""
        runs: dict[tuple[str, str, str], RunRecord] = {}
        for item in [*self.prompts, *self.labels]:
            name, side = item.diff.name, _sides(item)[1]
            for case in (c for c in item.cases if c.head is not None):
                key = (name, side, case.model)
                runs.setdefault(key, RunRecord(name, side, case.model)).cases.append(case.head)  # type: ignore[arg-type]
        return list(runs.values())


def _first(record: CaseRecord | None) -> Attempt | None:
    return record.attempts[0] if record is not None and record.attempts else None


def _outcome(record: CaseRecord | None) -> tuple[str, str]:
    """What one side of a replayed row came to: ("answer", text) or ("error", why)."""
    attempt = _first(record)
    if attempt is None:
        return ("error", "not run")
    return ("error", attempt.error) if attempt.error is not None else ("answer", attempt.answer)


def _answer(record: CaseRecord | None) -> str:
    """The answer that stands for a case (its first attempt's)."""
    attempt = _first(record)
    return attempt.answer if attempt else ""


def _validate_head(change: Change, prompts_dir: str) -> list[Problem]:
    if change.new_bytes is None:
        return []
    return check_bytes(change.new_bytes, change.name, f"{prompts_dir}/{change.name}.json")[1]


@dataclass(frozen=True)
class _Runner:
    """What running test cases needs: the client, the tools of assertions, the head commit's files."""

    client: Streamer
    tools: Tools
    opener: Any
    default_model: str
    concurrency: int

    async def compare(self, new: Prompt, old: Prompt | None, sides: tuple[str, str]) -> list[CaseComparison]:
        """Run `new`'s test cases on `new` and on `old` on each of `new`'s models; `sides` labels (old, new).

        Both versions get the same cases (read at head), in the same order, so they pair by position.
        """
        old_side, new_side = sides
        models = models_for(Target(new), (), self.default_model)
        targets = [Target(new, new_side, opener=self.opener, models=models)]
        if old is not None:
            targets.append(Target(with_cases_of(old, new), old_side, opener=self.opener, models=models))
        runs = await run_tests(self.client, targets, self.default_model, concurrency=self.concurrency,
                               tools=self.tools)
        heads, bases = runs[:len(models)], runs[len(models):]
        out = []
        for index, head in enumerate(heads):
            base_cases: list[CaseRecord | None] = list(bases[index].cases) if bases else [None] * len(head.cases)
            out += [CaseComparison(case.name, base, case, head.model)
                    for case, base in zip(head.cases, base_cases, strict=True)]
        return out


def _blocked(problem: Problem, move: LabelMove | CanaryMove, target: Version | None) -> Problem:
    """Say a protected label's refused move (or canary) in review terms: why, and what to do first."""
    if problem.code != "label-unapproved" or target is None:
        return problem
    name, label, n = move.name, move.label, target.number
    canary = isinstance(move, CanaryMove)
    what = f"{name} v{n}, its canary," if canary else f"{name} v{n}"
    if target.revoked:
        first = (f"run an approved version as the canary of {label}" if canary
                 else f"point {label} at an approved version")
        return dataclasses.replace(
            problem, message=f"{label} is a protected label and the approval of {what} was revoked",
            fix=f"{first}; a revocation is final, so commit a fixed version and approve that")
    return dataclasses.replace(problem, message=f"{label} is a protected label and {what} is not approved",
                               fix=f"approve v{n} first: `promptops approve {name} --version {n}`")


def _label_moves(store: PromptStore, base: str,
                 head: str) -> tuple[str, list[LabelMove | CanaryMove], list[Problem]]:
    """(head commit, label moves then canary moves, labels-file problems at head); only a labels file the PR
    changed is checked."""
    head_commit = commit_of(store, head)
    old_bytes, new_bytes = store.git.read_optional(
        [f"{commit_of(store, base)}:{store.labels_relpath}", f"{head_commit}:{store.labels_relpath}"])
    if old_bytes == new_bytes:
        return head_commit, [], []
    labels, problems = parse(new_bytes, store.labels_relpath)
    if labels is None:
        return head_commit, [], problems
    text = (new_bytes or b"").decode(errors="replace")
    problems = check_policy(labels, store.labels_relpath, text, lambda name: store.versions_at(name, head_commit))
    moves: list[LabelMove | CanaryMove]
    try:
        moves = list(store.label_moves(base, head))
        old = store.labels_at(commit_of(store, base))
    except PromptInvalid:  # the base's labels file is broken (this PR mends it): every label at head is new
        moves = [LabelMove(name, label, None, n, label in labels.protected)
                 for name, targets in sorted(labels.prompts.items()) for label, n in sorted(targets.items())]
        old = EMPTY
    return head_commit, moves + _canary_moves(old, labels), problems


def _blocks(problem: Problem, move: LabelMove | CanaryMove) -> bool:
    """The labels file's finding that refuses this move or canary (other findings make the file invalid)."""
    at = ["labels", move.name, move.label] + (["canary", "version"] if isinstance(move, CanaryMove) else [])
    return problem.code == "label-unapproved" and problem.json_path == json_path(at)


def _load(store: PromptStore, version: Version | None) -> tuple[Prompt | None, list[Problem]]:
    if version is None:
        return None, []
    try:
        return store.load(version), []
    except PromptInvalid as error:
        return None, error.problems


async def _review_label(store: PromptStore, move: LabelMove | CanaryMove, head_commit: str, problems: list[Problem],
                        runner: _Runner | None, default_model: str) -> LabelReview:
    """Diff the label's old and new target (numbered on head's history); run the new target's tests on both."""
    versions = store.versions_at(move.name, head_commit)
    old, new = (versions[n - 1] if n is not None and 0 < n <= len(versions) else None for n in (move.old, move.new))
    (old_prompt, _), (new_prompt, invalid) = _load(store, old), _load(store, new)
    old_side, new_side = (f"v{n}" if n is not None else "unset" for n in (move.old, move.new))
    item = LabelReview(move, diff_prompts(move.name, old_prompt, new_prompt, old_label=old_side, new_label=new_side,
                                          default_model=default_model),
                       [_blocked(p, move, new) for p in problems if _blocks(p, move)] + invalid)
    if runner is not None and new_prompt is not None and new_prompt.tests:
        item.cases = await runner.compare(new_prompt, old_prompt, (old_side, new_side))
    return item


def _judge_at(store: PromptStore, commit: str) -> Any:
    """Loads the judge prompt as committed at `commit` (the version the pull request would ship)."""
    def load() -> Prompt:
        rel = f"{store.prompts_dir}/{JUDGE_PROMPT}.json"
        data = store.git.read_optional([f"{commit}:{rel}"])[0]
        if data is None:
            raise PromptOpsError(f"no judge prompt {rel} at {commit[:7]}",
                                 fix="add prompts/judge.json (see docs/evaluation.md)")
        prompt, problems = check_bytes(data, JUDGE_PROMPT, rel)
        if prompt is None:
            raise PromptInvalid(problems)
        return prompt

    return load


def _protection(store: PromptStore, base: str, head: str) -> Callable[[str], tuple[str, ...]]:
    """name -> the protected labels pointing at that prompt in base or in head (a side whose labels file is
    invalid counts for nothing: the review reports the file)."""
    sides: list[Labels] = []
    for rev in (base, head):
        try:
            sides.append(store.labels_at(commit_of(store, rev)))
        except PromptInvalid:
            continue
    return lambda name: tuple(sorted({label for labels in sides for label in labels.of(name)
                                      if label in labels.protected}))


def _overrides(store: PromptStore, base: str, head: str, allow_breaking: str | None) -> list[Override]:
    """The documented breaking changes: `allow_breaking`, and each `Breaking-Change: <reason>` trailer of the
    commits in base..head (git's own trailer parsing: the message's last paragraph; an empty reason counts
    for nothing)."""
    found = [Override("--allow-breaking", allow_breaking.strip())] if allow_breaking and allow_breaking.strip() else []
    out = store.git.run("log", "-z", f"--format=%h%n%(trailers:key={TRAILER},valueonly,unfold)",
                        f"{commit_of(store, base)}..{commit_of(store, head)}", "--")
    for record in out.decode(errors="replace").split("\0"):
        sha, _, values = record.strip("\n").partition("\n")
        found += [Override(f"commit {sha}", reason.strip()) for reason in values.splitlines() if reason.strip()]
    return found


def _replay_rows(path: Path, names: set[str], changed: set[str], sample: int | None,
                 seed: int = REPLAY_SEED) -> tuple[dict[str, list[Case]], ReplayStats]:
    """The rows of `path` captured for the prompts `names`, by prompt in file order: all of them, or a seeded
    sample of `sample` (reservoir sampling: the file is read once, `sample` rows are held). `changed`: every
    prompt the review changes (their other rows are counted apart from those of unchanged prompts)."""
    rng = random.Random(seed)
    kept: list[tuple[int, str, Case]] = []
    rows = candidates = skipped = unreplayable = anonymous = 0
    for case in read_file(path):
        rows += 1
        prompt = (case.captured or {}).get("prompt")
        if not isinstance(prompt, str):
            anonymous += 1
        elif prompt not in names:
            unreplayable += prompt in changed
            skipped += prompt not in changed
        else:
            candidates += 1
            if sample is None or len(kept) < sample:
                kept.append((candidates, prompt, case))
            elif (slot := rng.randrange(candidates)) < sample:
                kept[slot] = (candidates, prompt, case)
    by_prompt: dict[str, list[Case]] = {}
    for _, prompt, case in sorted(kept, key=lambda k: k[0]):
        by_prompt.setdefault(prompt, []).append(case)
    return by_prompt, ReplayStats(str(path), rows, candidates, len(kept), skipped, unreplayable, anonymous, sample)


def _does_not_render(prompt: Prompt, case: Case, default_model: str) -> str | None:
    """Why a captured row cannot be put to `prompt` (a variable it sets that the prompt no longer has, or
    an error rendering it), or None."""
    unknown = sorted(set(case.vars) - known_variables(prompt))
    if unknown:
        return f"it sets {{{unknown[0]}}}, which is no placeholder or field of {prompt.name} at head"
    try:
        chat.prepare(prompt, None, case.history, variables=case.vars, default_model=default_model, version="head")
    except PromptOpsError as exc:
        return exc.message
    return None


async def _replay(runner: _Runner, new: Prompt, old: Prompt, cases: list[Case]) -> list[ReplayRow]:
    """Each captured row run on `old` and `new` through the test runner (its input as a case without
    assertions); a row that does not render under `new` is reported, not run."""
    rows, runnable = [], []
    for case in cases:
        error = _does_not_render(new, case, runner.default_model)
        if error is None:
            runnable.append(case)
        else:
            rows.append(ReplayRow(case, error=error))
    if runnable:
        tests = [{"name": c.source, "vars": dict(c.vars), "history": [dict(t) for t in c.history]} for c in runnable]
        by_source = {c.source: c for c in runnable}
        replayed = Prompt(new.name, {**new.document, "tests": tests}, new.config)
        rows += [ReplayRow(by_source[c.case], c.model, c.base, c.head)
                 for c in await runner.compare(replayed, old, ("base", "head"))]
    order = {c.source: i for i, c in enumerate(cases)}
    return sorted(rows, key=lambda r: order[r.case.source])


async def build_review(store: PromptStore, base: str, head: str, *, client: Streamer | None = None,
                       default_model: str = "smollm2-135m", concurrency: int = 2,
                       embedding_model: str = EMBEDDING_MODEL, tools: Tools | None = None,
                       allow_breaking: str | None = None, replay: Path | None = None,
                       sample: int | None = None) -> Review:
    """Diff, validate and (with a client) run the test cases of every prompt changed and label moved.

    The head version's test cases (its datasets read at head) are run on both versions, on each of
    the head's models, so a changed prompt is judged by the same questions before and after; a moved
    label is judged by its new target's test cases. Without `tools`, `similar` embeds on
    `embedding_model` and `llm-rubric` runs the judge prompt as committed at head.

    Breaking contract changes are documented by `allow_breaking` (a reason) or by `Breaking-Change:`
    trailers in base..head; either lets them pass where a protected label is concerned.

    With a client, `replay` names a file of captured requests (promptops.capture) to replay on base and
    head of each changed prompt they were captured for (`sample`: a seeded sample of that many rows).
    """
    if replay is not None and client is None:
        raise PromptOpsError("replaying captured requests needs the model", fix="run `promptops review --outputs`")
    changes = store.changes(base, head)
    diffs = {d.name: d for d in diff_changes(changes, base_label=base, head_label=head, default_model=default_model)}
    review = Review(base, head, [], outputs=client is not None)
    runner = None
    if client is not None:
        head_commit = commit_of(store, head)
        if tools is None:
            embed = embedder(client, embedding_model) if hasattr(client, "embed") else None  # type: ignore[arg-type]
            tools = Tools(store.repo, store.prompts_dir, embed=embed,
                          judge=judge_for(client, _judge_at(store, head_commit), default_model))
        runner = _Runner(client, tools, commit_opener(store.git, head_commit), default_model, concurrency)
    protected = _protection(store, base, head)
    replayable: dict[str, tuple[PromptReview, Prompt, Prompt]] = {}
    for change in changes:
        item = PromptReview(diffs[change.name], _validate_head(change, store.prompts_dir),
                            protected=protected(change.name))
        review.prompts.append(item)
        if change.new is not None and change.old is not None and not item.errors:
            replayable[change.name] = (item, change.new, change.old)
        if runner is None or change.new is None or item.errors or not change.new.tests:
            continue
        try:
            item.cases = await runner.compare(change.new, change.old, ("base", "head"))
        except PromptOpsError as exc:  # a dataset missing or broken at head: the head is invalid
            problem = exc.problem if isinstance(exc, DatasetError) else Problem(
                f"{store.prompts_dir}/{change.name}.json", exc.message, "$.tests", fix=exc.fix, code="test-cases")
            item.problems.append(problem)
    head_commit, moves, problems = _label_moves(store, base, head)
    for move in moves:
        review.labels.append(await _review_label(store, move, head_commit, problems, runner, default_model))
    review.label_problems = [p for p in problems if not any(_blocks(p, m) for m in moves)]
    if review.breaking:
        review.overrides = _overrides(store, base, head, allow_breaking)
    if replay is not None and runner is not None:
        by_prompt, review.replay = _replay_rows(replay, set(replayable), {c.name for c in changes}, sample)
        for name, cases in by_prompt.items():
            item, new, old = replayable[name]
            item.replay = await _replay(runner, new, old, cases)
    return review


def _clip(text: str, limit: int = ANSWER_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… (truncated: {len(text) - limit:,} more characters)"


def _verdict(result: CaseRecord | None) -> str:
    if result is None:
        return "—"
    verdict = "error" if result.errored else ("pass" if result.passed else "fail")
    return f"{verdict} ({result.passes}/{len(result.attempts)})" if len(result.attempts) > 1 else verdict


def _tokens(result: CaseRecord | None) -> str:
    """The model's token counts of one run (the first attempt), `prompt + answer`; — when it did not answer."""
    attempt = _first(result)
    if attempt is None or attempt.prompt_tokens is None:
        return "—"
    return f"{attempt.prompt_tokens} + {attempt.completion_tokens}"


def _reasons(result: CaseRecord) -> str:
    """Why a case failed: its error, else the failed assertions of its first failed attempt."""
    attempt = next((a for a in result.attempts if not a.passed), None)
    if attempt is None:
        return ""
    return attempt.error or "; ".join(a.reason for a in attempt.assertions if not a.passed and a.weight > 0)


def _several_models(item: PromptReview | LabelReview) -> bool:
    return len({c.model for c in item.cases}) > 1


def _answer_diff(case: CaseComparison, sides: tuple[str, str] = ("base", "head")) -> str:
    return _unified(_answer(case.base), _answer(case.head), sides)


def _unified(old: str, new: str, sides: tuple[str, str] = ("base", "head")) -> str:
    return "\n".join(difflib.unified_diff(_clip(old).splitlines(), _clip(new).splitlines(),
                                           f"{sides[0]} answer", f"{sides[1]} answer", lineterm=""))


def _fence(body: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{lang}\n{body}\n{ticks}"


def _sides(item: PromptReview | LabelReview) -> tuple[str, str]:
    return ("base", "head") if isinstance(item, PromptReview) else (item.diff.old_label, item.diff.new_label)


def _title(item: PromptReview | LabelReview) -> str:
    return f"`{item.diff.name}`" if isinstance(item, PromptReview) else f"`{item.move}`"


def _config_line(diff: PromptDiff) -> str:
    def shown(value: Any) -> str:
        return "(unset)" if value is None else json.dumps(value, ensure_ascii=False)

    return "config: " + ", ".join(f"{c.key} {shown(c.old)} -> {shown(c.new)}" for c in diff.config)


def _label_notes(item: LabelReview) -> list[str]:
    """A config line (when both targets exist) and a note when the rendered prompt is the same."""
    move, diff = item.move, item.diff
    notes = [_config_line(diff)] if diff.config and move.old is not None and move.new is not None else []
    if diff.status == "unchanged":
        notes.append(f"{diff.old_label} and {diff.new_label} have the same content")
    elif diff.rendered is None and diff.status == "modified":
        notes.append("same rendered prompt")
    return notes


def _label_markdown(item: LabelReview) -> list[str]:
    diff = item.diff
    lines = [f"#### `{item.move}`{' (protected)' if item.move.protected else ''}", ""]
    for note in _label_notes(item):
        lines += [f"`{note}`" if note.startswith("config:") else f"{note[0].upper()}{note[1:]}.", ""]
    if diff.rendered:
        lines += ["<details>", f"<summary>rendered prompt ({diff.old_label} → {diff.new_label})</summary>", "",
                  _fence(_clip(diff.rendered.diff), "diff"), "", "</details>", ""]
    return lines


def _answers_markdown(item: PromptReview | LabelReview) -> list[str]:
    old, new = _sides(item)
    several = _several_models(item)
    model_head, model_rule = ("model | ", "---|") if several else ("", "")
    lines = [f"#### Model answers: {_title(item)}", "",
             f"| case | {model_head}{old} | {new} | answer | tokens (prompt + answer) |",
             f"|---|{model_rule}---|---|---|---|"]
    for case in item.cases:
        flag = " :warning: newly failing" if case.newly_failing else (" :tada: fixed" if case.newly_passing else "")
        model = f"{case.model} | " if several else ""
        lines.append(f"| {case.case} | {model}{_verdict(case.base)} | {_verdict(case.head)}{flag} | "
                     f"{'changed' if case.answer_changed else 'same'} | "
                     f"{_tokens(case.base)} → {_tokens(case.head)} |")
    lines.append("")
    for case in item.cases:
        body = [f"**{old}**: {_verdict(case.base)} → **{new}**: {_verdict(case.head)}", ""]
        for side, result in ((new, case.head), (old, case.base)):
            if result and not result.passed:
                body.append(f"- {side}: {_reasons(result) or 'pass rate under its minimum'}")
        body += ["", _fence(_answer_diff(case, (old, new)) or _clip(_answer(case.head)), "diff"), ""]
        title = f"{case.case} on {case.model}" if several else case.case
        lines += ["<details>", f"<summary>{title}</summary>", "", *body, "</details>", ""]
    return lines


def _breaking_why(item: PromptReview | LabelReview) -> str:
    """Why an item's breaking contract changes concern a protected label."""
    n = len(item.breaking)
    changes = f"{n} breaking contract change{'s' * (n != 1)}"
    if isinstance(item, LabelReview):
        return f"{item.move} brings {changes} (from {item.diff.old_label} to {item.diff.new_label})"
    labels = item.protected_labels
    return f"{item.diff.name} has {changes}, and {', '.join(labels)} point{'s' * (len(labels) == 1)} at it"


def _released(review: Review) -> list[PromptReview | LabelReview]:
    return [item for item in [*review.prompts, *review.labels] if item.breaks_release]


def _contract_markdown(review: Review) -> list[str]:
    """The "Contract changes" section: one table per prompt or label move whose contract changed."""
    items = [item for item in [*review.prompts, *review.labels] if item.diff.contract]
    if not items:
        return []
    lines = ["", "### Contract changes", ""]
    for item in items:
        labels = item.protected_labels
        protected = f" (protected: {', '.join(labels)})" if labels else ""
        lines += [f"#### {_title(item)}{protected}: {contract_summary(item.diff.contract)}", ""]
        if item.breaking and not labels:
            lines += ["No protected label points at this prompt: the break is reported and does not fail "
                      "the review.", ""]
        lines += contract_markdown(item.diff.contract, title=False)
    return lines


def _input(case: Case) -> str:
    """A replayed row's input on one line: the user's message, its other variables, the turns before it."""
    parts = [json.dumps(case.vars.get("user", ""), ensure_ascii=False)]
    others = [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in case.vars.items() if k != "user"]
    if others:
        parts.append(f"with {', '.join(others)}")
    if case.history:
        parts.append(f"after {len(case.history)} turn{'s' * (len(case.history) != 1)}")
    return " ".join(parts)


def _side(record: CaseRecord | None) -> str:
    kind, text = _outcome(record)
    return text if kind == "answer" else f"(error: {text})"


def _row_title(row: ReplayRow, several: bool) -> str:
    request = f" (request {row.request_id})" if row.request_id else ""
    return f"{row.case.source}{request}{f' [{row.model}]' if several and row.model else ''}"


def _replay_line(review: Review) -> str:
    stats = review.replay
    assert stats is not None
    changed, ran, broken = review.replay_counts
    sampled = (f" (a sample of {stats.replayed} of {stats.candidates})"
               if stats.sample is not None and stats.candidates > stats.replayed else "")
    left = [f"{n} {why}" for n, why in ((stats.skipped, "of prompts not changed here"),
                                        (stats.unreplayable, "of prompts new, removed or invalid at head"),
                                        (stats.anonymous, "that name no prompt")) if n]
    rows = f"{stats.replayed} captured request{'s' * (stats.replayed != 1)}"
    not_rendering = f", {broken} do{'es' * (broken == 1)} not render under head" if broken else ""
    return (f"Replayed {rows} from {stats.file}{sampled} on base and head: {changed} of {ran} replayed "
            f"answer{'s' * (ran != 1)} changed{not_rendering}"
            + (f"; rows left out: {', '.join(left)}" if left else "") + ".")


def _replay_markdown(review: Review) -> list[str]:
    """The "Replayed requests" section: per prompt, the rows that do not render under head and each changed
    answer (input, base answer, head answer diffed); unchanged rows are only counted."""
    if review.replay is None:
        return []
    lines = ["", "### Replayed requests", "", _replay_line(review)]
    for item in (p for p in review.prompts if p.replay):
        ran = [r for r in item.replay if r.error is None]
        several = len({r.model for r in ran}) > 1
        lines += ["", f"#### Replayed: `{item.diff.name}`: {sum(r.changed for r in ran)} of {len(ran)} replayed "
                      f"answer{'s' * (len(ran) != 1)} changed", ""]
        for row in (r for r in item.replay if r.error is not None):
            lines += [f"> :warning: `{row.case.source}` does not render under head: {row.error} "
                      f"(input: {_clip(_input(row.case), 200)})", ""]
        for row in (r for r in ran if r.changed):
            lines += ["<details>", f"<summary>{html.escape(_row_title(row, several))}</summary>", "",
                      _fence(_clip(_input(row.case))), "",
                      _fence(_unified(_side(row.base), _side(row.head)), "diff"), "", "</details>", ""]
    return lines


def to_markdown(review: Review, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """A PR comment with a hidden marker (so a workflow can update its own comment), within GitHub's size limit."""
    lines = [MARKER, f"## promptops review: `{review.base}` → `{review.head}`", "", f"**{review.summary()}**", ""]
    for problem in [e for p in review.prompts for e in p.errors] + review.label_problems:
        if problem.severity == "error":
            lines.append(f"> :x: **invalid** `{problem.file}` {problem.json_path}: {problem.message}")
    for item in review.labels:
        for problem in item.errors:
            fix = f" — fix: {problem.fix}" if problem.fix else ""
            lines.append(f"> :x: **blocked** `{item.move}`: {problem.message}{fix}")
    if review.breaking_blocked:
        lines += [f"> :x: **breaking** {_breaking_why(item)} — fix: {BREAKING_FIX}" for item in _released(review)]
    lines += [f"> :warning: **breaking change allowed** ({o.source}): {o.reason}" for o in review.overrides]
    if review.labels:
        lines += ["", "### Label moves", ""]
        for item in review.labels:
            lines += _label_markdown(item)
    lines += _contract_markdown(review)
    lines += ["", diff_markdown([p.diff for p in review.prompts], contract=False), ""]
    for item in (i for i in [*review.prompts, *review.labels] if i.cases):
        lines += _answers_markdown(item)
    lines += _replay_markdown(review)
    text = "\n".join(lines).rstrip() + "\n"
    if len(text) > limit:
        note = (f"\n\n… report truncated to fit GitHub's {limit:,}-character limit; "
                "the full report is in the job artifacts.\n")
        text = text[: limit - len(note)] + note
    return text


def to_text(review: Review, color: bool = False) -> str:
    """A terminal report."""
    lines = [review.summary(), ""]
    for item in review.prompts:
        lines += [f"Error: {p}" for p in item.errors]
    lines += [f"Error: {p}" for p in review.label_problems if p.severity == "error"]
    for label in review.labels:
        lines += [f"Error: {label.move} is blocked: {p.message}" + (f"\n  fix: {p.fix}" if p.fix else "")
                  for p in label.errors]
    if review.breaking_blocked:
        lines += [f"Error: {_breaking_why(item)}\n  fix: {BREAKING_FIX}" for item in _released(review)]
    lines += [f"Breaking change allowed ({o.source}): {o.reason}" for o in review.overrides]
    if review.labels:
        lines.append("label moves:")
        for label in review.labels:
            lines.append(f"  {label.move}{' (protected)' if label.move.protected else ''}")
            lines += [f"    {note}" for note in _label_notes(label)]
            lines += [f"  {line}" for line in contract_lines(label.diff.contract, color)]
            if label.diff.rendered:
                lines += [f"    {line}" for line in _clip(label.diff.rendered.diff).splitlines()]
        lines.append("")
    lines.append(diff_text([p.diff for p in review.prompts], color=color))
    for item in (i for i in [*review.prompts, *review.labels] if i.cases):
        lines.append(f"answers for {item.diff.name if isinstance(item, PromptReview) else item.move}:")
        several = _several_models(item)
        for case in item.cases:
            lines.append(f"  {case.case}{f' [{case.model}]' if several else ''}: "
                         f"{_verdict(case.base)} -> {_verdict(case.head)}"
                         f"{' (newly failing)' if case.newly_failing else ''}"
                         f"{' (answer changed)' if case.answer_changed else ''}")
    if review.replay is not None:
        lines.append(_replay_line(review))
    for item in (p for p in review.prompts if p.replay):
        ran = [r for r in item.replay if r.error is None]
        several = len({r.model for r in ran}) > 1
        lines.append(f"replayed {item.diff.name}: {sum(r.changed for r in ran)} of {len(ran)} answers changed")
        for row in item.replay:
            if row.error is not None:
                lines.append(f"  {row.case.source}: does not render under head: {row.error}")
                lines.append(f"    input: {_clip(_input(row.case), 200)}")
            elif row.changed:
                lines += [f"  {_row_title(row, several)}: {_clip(_input(row.case), 200)}",
                          f"    base: {_clip(_side(row.base), 400)}", f"    head: {_clip(_side(row.head), 400)}"]
    return "\n".join(lines).rstrip() + "\n"


def _result_dict(result: CaseRecord | None) -> dict[str, Any] | None:
    """A case's verdict, pass rate and score; answer, counts and assertions are its first attempt's."""
    attempt = _first(result)
    if result is None or attempt is None:
        return None
    return {"passed": result.passed, "pass_rate": result.pass_rate, "attempts": len(result.attempts),
            "score": result.score, "output": attempt.answer, "error": attempt.error,
            "latency_ms": round(attempt.latency_ms, 1), "prompt_tokens": attempt.prompt_tokens,
            "completion_tokens": attempt.completion_tokens, "finish_reason": attempt.finish_reason,
            "assertions": [{"type": a.type, "passed": a.passed, "score": a.score, "message": a.reason}
                           for a in attempt.assertions]}


def _cases_json(cases: list[CaseComparison]) -> list[dict[str, Any]]:
    return [{"case": c.case, "model": c.model, "base": _result_dict(c.base), "head": _result_dict(c.head),
             "answer_changed": c.answer_changed, "newly_failing": c.newly_failing} for c in cases]


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "json_path": problem.json_path, "message": problem.message,
            "fix": problem.fix}


def _canary_json(move: LabelMove | CanaryMove) -> dict[str, Any] | None:
    """A canary move's label version and canary before and after (None for a plain label move)."""
    if not isinstance(move, CanaryMove):
        return None

    def shown(canary: Canary | None) -> dict[str, Any] | None:
        return None if canary is None else {"version": canary.version, "weight": canary.weight}

    return {"primary": move.primary, "was": shown(move.was), "now": shown(move.now)}


def _replay_json(rows: list[ReplayRow]) -> list[dict[str, Any]]:
    return [{"source": r.case.source, "request_id": r.request_id, "model": r.model, "vars": dict(r.case.vars),
             "history": [dict(t) for t in r.case.history], "changed": r.changed, "error": r.error,
             "captured_answer": (r.case.captured or {}).get("answer"),
             "base": _result_dict(r.base), "head": _result_dict(r.head)} for r in rows]


def _replay_stats(review: Review) -> dict[str, Any] | None:
    if review.replay is None:
        return None
    changed, ran, broken = review.replay_counts
    return {**dataclasses.asdict(review.replay), "answers": ran, "changed": changed, "not_rendering": broken}


def to_json(review: Review) -> str:
    """Machine-readable report with stable keys (`base`/`head` of a label move's case: its old/new target)."""
    diffs = json.loads(diff_json([p.diff for p in review.prompts]))
    label_diffs = json.loads(diff_json([m.diff for m in review.labels]))
    return json.dumps({
        "base": review.base, "head": review.head, "summary": review.summary(), "failed": review.failed,
        "invalid": review.invalid, "newly_failing": review.newly_failing, "answers_changed": review.answers_changed,
        "blocked": review.blocked, "labels_invalid": review.labels_invalid,
        "breaking": review.breaking, "breaking_blocked": review.breaking_blocked,
        "overrides": [{"source": o.source, "reason": o.reason} for o in review.overrides],
        "label_problems": [_problem_json(p) for p in review.label_problems],
        "prompts": [{"name": p.diff.name, "status": p.diff.status, "diff": d, "protected": list(p.protected),
                     "errors": [{"json_path": e.json_path, "message": e.message} for e in p.errors],
                     "cases": _cases_json(p.cases), "replay": _replay_json(p.replay)}
                    for p, d in zip(review.prompts, diffs["prompts"], strict=True)],
        "labels": [{"name": m.move.name, "label": m.move.label, "old": m.move.old, "new": m.move.new,
                    "protected": m.move.protected, "move": str(m.move), "blocked": bool(m.errors),
                    "canary": _canary_json(m.move),
                    "errors": [_problem_json(e) for e in m.errors], "diff": d, "cases": _cases_json(m.cases)}
                   for m, d in zip(review.labels, label_diffs["prompts"], strict=True)],
        "replay": _replay_stats(review),
    }, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_report(review: Review, format_: str, color: bool = False) -> str:
    """The report in `markdown`, `json` or `text`."""
    return {"markdown": to_markdown, "json": to_json}.get(format_, lambda r: to_text(r, color))(review)


__all__: Sequence[str] = ("MARKER", "TRAILER", "CanaryMove", "Override", "Review", "PromptReview", "LabelReview",
                          "CaseComparison", "ReplayRow", "ReplayStats", "build_review", "to_markdown", "to_text",
                          "to_json", "render_report")
