"""Pull-request review: what changed in each prompt, whether it is valid, and how the answers changed.

`build_review` gathers the facts (store + diff + validation, and with a client the
test cases run on both versions); the `to_*` functions only format them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from promptops.diff import PromptDiff, diff_changes
from promptops.diff import to_json as diff_json
from promptops.diff import to_markdown as diff_markdown
from promptops.diff import to_text as diff_text
from promptops.errors import Problem
from promptops.schema import check_bytes
from promptops.store import Change, PromptStore
from promptops.testing import CaseResult, Target, TextStreamer, run_tests

MARKER = "<!-- promptops-review -->"
GITHUB_COMMENT_LIMIT = 65_536
ANSWER_LIMIT = 1_200


@dataclass
class CaseComparison:
    """One test case run on the base and the head version of a prompt."""

    case: str
    base: CaseResult | None
    head: CaseResult | None

    @property
    def answer_changed(self) -> bool:
        return self.base is not None and self.head is not None and self.base.output != self.head.output

    @property
    def newly_failing(self) -> bool:
        return self.head is not None and not self.head.passed and (self.base is None or self.base.passed)

    @property
    def newly_passing(self) -> bool:
        return self.head is not None and self.head.passed and self.base is not None and not self.base.passed


@dataclass
class PromptReview:
    """The review of one changed prompt."""

    diff: PromptDiff
    problems: list[Problem] = field(default_factory=list)
    cases: list[CaseComparison] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


@dataclass
class Review:
    """Every changed prompt between two commits."""

    base: str
    head: str
    prompts: list[PromptReview]
    outputs: bool = False

    @property
    def invalid(self) -> int:
        return sum(1 for p in self.prompts if p.errors)

    @property
    def newly_failing(self) -> int:
        return sum(c.newly_failing for p in self.prompts for c in p.cases)

    @property
    def answers_changed(self) -> int:
        return sum(c.answer_changed for p in self.prompts for c in p.cases)

    @property
    def failed(self) -> bool:
        """Validation errors at head or tests that passed on base and fail on head."""
        return bool(self.invalid or self.newly_failing)

    def summary(self) -> str:
        parts = [f"{len(self.prompts)} prompt{'s' * (len(self.prompts) != 1)} changed"]
        if self.invalid:
            parts.append(f"{self.invalid} invalid")
        if self.outputs:
            parts.append(f"{self.newly_failing} test{'s' * (self.newly_failing != 1)} newly failing")
            parts.append(f"{self.answers_changed} answer{'s' * (self.answers_changed != 1)} changed")
        return " · ".join(parts)

    def head_results(self) -> list[CaseResult]:
        return [c.head for p in self.prompts for c in p.cases if c.head is not None]


def _validate_head(change: Change, prompts_dir: str) -> list[Problem]:
    if change.new_bytes is None:
        return []
    return check_bytes(change.new_bytes, change.name, f"{prompts_dir}/{change.name}.json")[1]


async def build_review(store: PromptStore, base: str, head: str, *, client: TextStreamer | None = None,
                       default_model: str = "smollm2-135m", concurrency: int = 2) -> Review:
    """Diff, validate and (with a client) run the test cases of every prompt changed from base to head.

    The head version's test cases are run on both versions, so a changed prompt is judged by the
    same questions before and after.
    """
    changes = store.changes(base, head)
    diffs = {d.name: d for d in diff_changes(changes, base_label=base, head_label=head)}
    review = Review(base, head, [], outputs=client is not None)
    for change in changes:
        item = PromptReview(diffs[change.name], _validate_head(change, store.prompts_dir))
        review.prompts.append(item)
        if client is None or change.new is None or item.errors or not change.new.tests:
            continue
        targets = [Target(change.new, "head")]
        if change.old is not None:
            from promptops.prompt import Prompt

            targets.append(Target(Prompt(change.old.name, {**change.old.document, "tests": change.new.tests},
                                         change.old.config), "base"))
        results = await run_tests(client, targets, default_model, concurrency=concurrency)
        by_side = {(r.version, r.case): r for r in results}
        item.cases = [CaseComparison(str(case["name"]), by_side.get(("base", str(case["name"]))),
                                     by_side.get(("head", str(case["name"])))) for case in change.new.tests]
    return review


def _clip(text: str, limit: int = ANSWER_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… (truncated: {len(text) - limit:,} more characters)"


def _verdict(result: CaseResult | None) -> str:
    if result is None:
        return "—"
    return "error" if result.error else ("pass" if result.passed else "fail")


def _answer_diff(case: CaseComparison) -> str:
    base = _clip(case.base.output if case.base else "").splitlines()
    head = _clip(case.head.output if case.head else "").splitlines()
    return "\n".join(difflib.unified_diff(base, head, "base answer", "head answer", lineterm=""))


def _fence(body: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{lang}\n{body}\n{ticks}"


def to_markdown(review: Review, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """A PR comment with a hidden marker (so a workflow can update its own comment), within GitHub's size limit."""
    lines = [MARKER, f"## promptops review: `{review.base}` → `{review.head}`", "", f"**{review.summary()}**", ""]
    for item in review.prompts:
        for problem in item.errors:
            lines.append(f"> :x: **invalid** `{problem.file}` {problem.json_path}: {problem.message}")
    lines += ["", diff_markdown([p.diff for p in review.prompts]), ""]
    for item in (p for p in review.prompts if p.cases):
        lines += [f"#### Model answers: `{item.diff.name}`", "", "| case | base | head | answer |", "|---|---|---|---|"]
        for case in item.cases:
            flag = " :warning: newly failing" if case.newly_failing else (" :tada: fixed" if case.newly_passing else "")
            lines.append(f"| {case.case} | {_verdict(case.base)} | {_verdict(case.head)}{flag} | "
                         f"{'changed' if case.answer_changed else 'same'} |")
        lines.append("")
        for case in item.cases:
            body = [f"**base**: {_verdict(case.base)} → **head**: {_verdict(case.head)}", ""]
            for side, result in (("head", case.head), ("base", case.base)):
                failed = [a.message for a in result.assertions if not a.passed] if result else []
                if result and (failed or result.error):
                    body.append(f"- {side}: {result.error or '; '.join(failed)}")
            body += ["", _fence(_answer_diff(case) or _clip(case.head.output if case.head else ""), "diff"), ""]
            lines += ["<details>", f"<summary>{case.case}</summary>", "", *body, "</details>", ""]
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
    lines.append(diff_text([p.diff for p in review.prompts], color=color))
    for item in (p for p in review.prompts if p.cases):
        lines.append(f"answers for {item.diff.name}:")
        for case in item.cases:
            lines.append(f"  {case.case}: {_verdict(case.base)} -> {_verdict(case.head)}"
                         f"{' (newly failing)' if case.newly_failing else ''}"
                         f"{' (answer changed)' if case.answer_changed else ''}")
    return "\n".join(lines).rstrip() + "\n"


def _result_dict(result: CaseResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"passed": result.passed, "output": result.output, "error": result.error,
            "latency_ms": round(result.latency_ms, 1),
            "assertions": [{"type": a.type, "passed": a.passed, "message": a.message} for a in result.assertions]}


def to_json(review: Review) -> str:
    """Machine-readable report with stable keys."""
    diffs = json.loads(diff_json([p.diff for p in review.prompts]))
    return json.dumps({
        "base": review.base, "head": review.head, "summary": review.summary(), "failed": review.failed,
        "invalid": review.invalid, "newly_failing": review.newly_failing, "answers_changed": review.answers_changed,
        "prompts": [{"name": p.diff.name, "status": p.diff.status, "diff": d,
                     "errors": [{"json_path": e.json_path, "message": e.message} for e in p.errors],
                     "cases": [{"case": c.case, "base": _result_dict(c.base), "head": _result_dict(c.head),
                                "answer_changed": c.answer_changed, "newly_failing": c.newly_failing}
                               for c in p.cases]}
                    for p, d in zip(review.prompts, diffs["prompts"], strict=True)],
    }, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_report(review: Review, format_: str, color: bool = False) -> str:
    """The report in `markdown`, `json` or `text`."""
    return {"markdown": to_markdown, "json": to_json}.get(format_, lambda r: to_text(r, color))(review)


__all__: Sequence[str] = ("MARKER", "Review", "PromptReview", "CaseComparison", "build_review", "to_markdown",
                          "to_text", "to_json", "render_report")
