"""Semantic diff of two prompt versions, rendered as text, Markdown (PR comments) or JSON.

The output contract (`response_format`, `tools`, `tool_choice`) is compared by meaning, not as JSON: each
difference is one line marked BREAKING or compatible (promptops.prompt.compat says which is which).

Pure: no git, no files, no printing. Callers pass prompts (or raw bytes via `diff_changes`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptops.errors import PromptOpsError
from promptops.prompt.compat import ContractChange, contract_changes
from promptops.prompt.compat import summary as contract_summary
from promptops.prompt.model import Prompt
from promptops.prompt.render import render

if TYPE_CHECKING:
    from promptops.prompt.render import ChatTemplateSource
    from promptops.store import Change

_MISSING = None
_GREEN, _RED, _CYAN, _BOLD, _RESET = "\033[32m", "\033[31m", "\033[36m", "\033[1m", "\033[0m"


@dataclass(frozen=True)
class ConfigChange:
    """One config key whose (normalised) value differs; None where the key is absent."""

    key: str
    old: Any
    new: Any


@dataclass(frozen=True)
class TextDiff:
    """A unified diff of one text field (or of the rendered prompt)."""

    field: str
    diff: str


@dataclass(frozen=True)
class PromptDiff:
    """Everything that differs between two versions of one prompt."""

    name: str
    status: str  # "added" | "removed" | "modified" | "unchanged"
    old_label: str
    new_label: str
    config: list[ConfigChange] = field(default_factory=list)
    text: list[TextDiff] = field(default_factory=list)
    rendered: TextDiff | None = None
    tests_changed: bool = False
    problems: list[str] = field(default_factory=list)
    contract: list[ContractChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"

    @property
    def breaking(self) -> list[ContractChange]:
        """The contract changes that break applications reading the answers."""
        return [c for c in self.contract if c.breaking]


def _unified(old: str | None, new: str | None, label: str, old_label: str, new_label: str) -> str:
    lines = difflib.unified_diff((old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
                                 f"{label} ({old_label})", f"{label} ({new_label})", lineterm="")
    return "\n".join(line.rstrip("\n") for line in lines)


def _texts(prompt: Prompt | None) -> dict[str, str]:
    if prompt is None:
        return {}
    texts = {"description": prompt.description, "model": prompt.model or "", "template": prompt.template}
    if prompt.is_chat:
        texts["messages"] = "".join("[history]\n" if m.get("history") else f"[{m.get('role')}]\n{m.get('content')}\n"
                                    for m in prompt.messages)
    if "turn_template" in prompt.document:
        texts["turn_template"] = prompt.turn_template
    texts.update({f"fields.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in prompt.fields.items()})
    return {k: v for k, v in texts.items() if v != ""}


def rendered_text(prompt: Prompt | None, *, chat_template: ChatTemplateSource | None = None,
                  default_model: str | None = None) -> str | None:
    """The prompt rendered with its own fields and the first test case's `vars` (or the render error).

    A chat prompt goes through its model's chat template (`chat_template`/`default_model`: see `render`).
    """
    if prompt is None:
        return None
    tests = prompt.tests
    variables = tests[0].get("vars", {}) if tests and isinstance(tests[0], dict) else {}
    try:
        return render(prompt, {k: str(v) for k, v in variables.items()}, chat_template=chat_template,
                      default_model=default_model)
    except PromptOpsError as error:
        return f"<cannot render: {error.message}>"


def diff_prompts(name: str, old: Prompt | None, new: Prompt | None, *, old_label: str = "old",
                 new_label: str = "new", chat_template: ChatTemplateSource | None = None,
                 default_model: str | None = None) -> PromptDiff:
    """Compare two versions of a prompt; either may be None (added or removed).

    Chat prompts are rendered through their model's chat template (see `render`).
    """
    status = "added" if old is None else "removed" if new is None else "modified"
    old_config = dict(old.config) if old else {}
    new_config = dict(new.config) if new else {}
    config = [ConfigChange(k, old_config.get(k, _MISSING), new_config.get(k, _MISSING))
              for k in sorted(old_config.keys() | new_config.keys()) if old_config.get(k) != new_config.get(k)]
    old_texts, new_texts = _texts(old), _texts(new)
    order = list(dict.fromkeys([*old_texts, *new_texts]))
    text = [TextDiff(k, _unified(old_texts.get(k), new_texts.get(k), k, old_label, new_label))
            for k in order if old_texts.get(k) != new_texts.get(k)]
    text = [t for t in text if t.diff]
    before, after = (rendered_text(p, chat_template=chat_template, default_model=default_model) for p in (old, new))
    rendered_diff = _unified(before, after, "rendered", old_label, new_label)
    rendered = TextDiff("rendered", rendered_diff) if rendered_diff else None
    tests_changed = (old.tests if old else []) != (new.tests if new else [])
    contract = contract_changes(old.document if old else None, new.document if new else None)
    if status == "modified" and not (config or text or rendered or tests_changed) and old.document == new.document:
        status = "unchanged"
    return PromptDiff(name, status, old_label, new_label, config, text, rendered, tests_changed, contract=contract)


def diff_changes(changes: Sequence[Change], *, base_label: str = "base", head_label: str = "head",
                 chat_template: ChatTemplateSource | None = None, default_model: str | None = None) -> list[PromptDiff]:
    """Diffs for store changes; a side whose bytes do not validate is reported as a problem, not a crash."""
    from promptops.prompt.schema import check_bytes

    diffs = []
    for change in changes:
        problems = []
        for side, data, prompt in (("base", change.old_bytes, change.old), ("head", change.new_bytes, change.new)):
            if data is not None and prompt is None:
                found = [p for p in check_bytes(data, change.name, f"{change.name}.json")[1] if p.severity == "error"]
                problems.append(f"invalid at {side}: {found[0] if found else 'cannot be loaded'}")
        diff = diff_prompts(change.name, change.old, change.new, old_label=base_label, new_label=head_label,
                            chat_template=chat_template, default_model=default_model)
        status = change.status if diff.status != "unchanged" or problems else diff.status
        diffs.append(dataclasses.replace(diff, status=status, problems=problems))
    return diffs


def _value(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value, ensure_ascii=False)


def _colour(diff: str, color: bool) -> str:
    if not color:
        return diff
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            out.append(f"{_BOLD}{line}{_RESET}")
        elif line.startswith("+"):
            out.append(f"{_GREEN}{line}{_RESET}")
        elif line.startswith("-"):
            out.append(f"{_RED}{line}{_RESET}")
        elif line.startswith("@@"):
            out.append(f"{_CYAN}{line}{_RESET}")
        else:
            out.append(line)
    return "\n".join(out)


def contract_lines(changes: Sequence[ContractChange], color: bool = False) -> list[str]:
    """`contract: 1 breaking, 1 compatible` and one indented line per change (none when nothing changed)."""
    if not changes:
        return []
    lines = [f"  contract: {contract_summary(changes)}"]
    for c in changes:
        verdict = f"{c.verdict:<10}"
        if color:
            verdict = f"{_RED if c.breaking else _GREEN}{verdict}{_RESET}"
        lines.append(f"    {verdict}  {c.path}: {c.message}")
    return lines


def to_text(diffs: Sequence[PromptDiff], color: bool = False) -> str:
    """A terminal report: one section per prompt (ANSI colours when `color`)."""
    if not any(d.changed for d in diffs):
        return "No prompt changes.\n"
    parts = []
    for d in (d for d in diffs if d.changed):
        title = f"{d.name}: {d.status} ({d.old_label} -> {d.new_label})"
        parts.append(f"{_BOLD}{title}{_RESET}" if color else title)
        parts += [f"  problem: {p}" for p in d.problems]
        if d.config:
            parts.append("  config:")
            parts += [f"    {c.key}: {_value(c.old)} -> {_value(c.new)}" for c in d.config]
        parts += contract_lines(d.contract, color)
        parts += [_colour(t.diff, color) for t in d.text]
        if d.rendered:
            parts.append(_colour(d.rendered.diff, color))
        if d.tests_changed:
            parts.append("  tests changed")
        parts.append("")
    return "\n".join(parts)


def _fence(body: str) -> str:
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}diff\n{body}\n{ticks}"


def _cell(value: Any) -> str:
    return _value(value).replace("|", "\\|").replace("\n", " ")


def _details(summary: str, body: str) -> list[str]:
    return ["<details>", f"<summary>{summary}</summary>", "", body, "", "</details>"]


def contract_markdown(changes: Sequence[ContractChange], *, title: bool = True) -> list[str]:
    """A table of contract changes, breaking ones marked (not collapsed: a reviewer must see them), under a
    `**Contract changes** (1 breaking, 0 compatible)` line unless `title` is False."""
    if not changes:
        return []
    rows = [f"| {':boom: **BREAKING**' if c.breaking else 'compatible'} | `{c.path}` | "
            f"{c.message.replace('|', chr(92) + '|')} |" for c in changes]
    heading = [f"**Contract changes** ({contract_summary(changes)})", ""] if title else []
    return [*heading, "| | where | change |", "|---|---|---|", *rows, ""]


def to_markdown(diffs: Sequence[PromptDiff], *, contract: bool = True) -> str:
    """A PR comment: a summary line, then one collapsible section per changed part of each prompt.

    `contract=False` leaves out the contract tables (the review report has its own section)."""
    changed = [d for d in diffs if d.changed]
    if not changed:
        return "### Prompt changes\n\nNo prompt changes.\n"
    lines = ["### Prompt changes", "", ", ".join(f"`{d.name}` ({d.status})" for d in changed), ""]
    for d in changed:
        lines += [f"#### `{d.name}`: {d.status} ({d.old_label} → {d.new_label})", ""]
        lines += [f"> :warning: {p}" for p in d.problems] + ([""] if d.problems else [])
        if contract:
            lines += contract_markdown(d.contract)
        elif d.contract:
            lines += [f"Contract: {contract_summary(d.contract)} (see *Contract changes*).", ""]
        if d.config:
            table = "| key | old | new |\n|---|---|---|\n" + "\n".join(
                f"| `{c.key}` | {_cell(c.old)} | {_cell(c.new)} |" for c in d.config)
            lines += _details(f"config ({len(d.config)} changed)", table)
        for t in d.text:
            lines += _details(f"<code>{t.field}</code>", _fence(t.diff))
        if d.rendered:
            lines += _details("rendered prompt", _fence(d.rendered.diff))
        if d.tests_changed:
            lines += ["", "Tests changed."]
        lines.append("")
    return "\n".join(lines)


def to_json(diffs: Sequence[PromptDiff]) -> str:
    """Machine-readable diffs with stable, sorted keys."""
    return json.dumps({"changed": any(d.changed for d in diffs), "prompts": [{
        "name": d.name, "status": d.status, "old": d.old_label, "new": d.new_label,
        "config": [{"key": c.key, "old": c.old, "new": c.new} for c in d.config],
        "text": [{"field": t.field, "diff": t.diff} for t in d.text],
        "rendered": d.rendered.diff if d.rendered else None,
        "tests_changed": d.tests_changed, "problems": d.problems,
        "contract": [{"path": c.path, "kind": c.kind, "breaking": c.breaking, "message": c.message}
                     for c in d.contract]} for d in diffs]},
        indent=2, sort_keys=True, ensure_ascii=False) + "\n"
