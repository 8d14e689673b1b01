"""Release labels: `production`, `staging`, ... each pointing to one version of one prompt.

Labels live in one small file in the repository, ``labels.json`` next to the
prompts directory (checked by ``schemas/labels.schema.json``)::

    {"protected": ["production"], "labels": {"support": {"production": 2, "staging": 3}}}

so moving a label is a commit: reviewed in a pull request, protected by CODEOWNERS,
audited by `git log labels.json`, shipped with every clone. A *protected* label
(default: ``production``) may point only to an approved, unrevoked version.

A label may also run a *canary*: a second version served to a share of the callers
while it is tried (``promptops.split`` decides who)::

    {"labels": {"support": {"production": {"version": 3, "canary": {"version": 4, "weight": 10}}}}}

``version`` stays the label's version (what `NAME@LABEL` and every pin-free reader see);
the canary is another version, approved too on a protected label, served to ``weight``
percent of sticky keys (0 < weight < 100). A label without a canary is written as a plain
number, so the file only grows while a canary runs.

This module parses and checks the file and formats it; the store reads it from
git objects (serving) or the working tree (authoring).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from promptops.errors import Problem
from promptops.store.model import Version
from promptops.store.workspace import LABELS_FILE, labels_path  # noqa: F401 (re-exported)

RESERVED = ("head", "approved", "draft", "latest")
DEFAULT_PROTECTED: tuple[str, ...] = ("production",)
LABEL_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_SHA = re.compile(r"[0-9a-f]{7,40}")
LABEL_RULE = ("a lowercase letter, then up to 39 of a-z, 0-9, '_' and '-'; not head, approved, draft or latest; "
              "not 7-40 hex digits (that reads as a commit)")


def is_label(text: str) -> bool:
    """True when `text` may name a label."""
    return bool(LABEL_PATTERN.fullmatch(text)) and text not in RESERVED and not _SHA.fullmatch(text)


def percent(weight: float) -> str:
    """A weight as written in messages and commit trailers: 10 -> "10%", 12.5 -> "12.5%"."""
    return f"{weight:g}%"


def check_weight(weight: float) -> str | None:
    """Why `weight` cannot be a canary's weight, or None when it can (0 < weight < 100)."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 100:
        return f"a canary weight is a percentage above 0 and below 100, got {weight!r}"
    return None


@dataclass(frozen=True)
class Canary:
    """A version a label serves to `weight` percent of sticky keys while it is tried (the rest get the label's
    own version)."""

    version: int
    weight: float

    def __str__(self) -> str:
        return f"v{self.version} at {percent(self.weight)}"


@dataclass(frozen=True)
class Labels:
    """A parsed labels file: the protected labels, per prompt label -> version number (the label's own,
    "primary" version), and the canaries running on some of those labels."""

    prompts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    document: Mapping[str, Any] = field(default_factory=dict)
    canaries: Mapping[str, Mapping[str, Canary]] = field(default_factory=dict)

    def of(self, name: str) -> Mapping[str, int]:
        """label -> version number for one prompt."""
        return self.prompts.get(name, {})

    def target(self, name: str, label: str) -> int | None:
        """The label's own version (a canary, if one runs, is `canary`)."""
        return self.prompts.get(name, {}).get(label)

    def canary(self, name: str, label: str) -> Canary | None:
        """The canary running on `label` of `name`, None when none does."""
        return self.canaries.get(name, {}).get(label)

    def labels_of(self, name: str, number: int) -> tuple[str, ...]:
        """The labels pointing at version `number` of `name`, sorted (protected ones first)."""
        found = [label for label, target in self.of(name).items() if target == number]
        return tuple(sorted(found, key=lambda label: (label not in self.protected, label)))

    def moved(self, name: str, label: str, number: int | None) -> Labels:
        """A copy with `label` of `name` set to `number` (None removes it, and its canary).

        A canary of that very version is over (the label serves it to everyone now) and is dropped;
        a canary of another version keeps running against the new primary.
        """
        prompts = {k: dict(v) for k, v in self.prompts.items()}
        canaries = {k: dict(v) for k, v in self.canaries.items()}
        current = prompts.setdefault(name, {})
        running = canaries.get(name, {}).get(label)
        if number is None:
            current.pop(label, None)
        else:
            current[label] = number
        if number is None or (running is not None and running.version == number):
            canaries.get(name, {}).pop(label, None)
        return self._replaced(prompts, canaries)

    def with_canary(self, name: str, label: str, version: int, weight: float) -> Labels:
        """A copy where `label` of `name` serves `version` to `weight` percent of sticky keys.

        ValueError when the label has no version, `version` is that version, or the weight is not
        in (0, 100): the store refuses those before asking (promptops.store.releases).
        """
        primary = self.target(name, label)
        if primary is None:
            raise ValueError(f"{label} of {name} has no version to run a canary against")
        if primary == version:
            raise ValueError(f"v{version} is {label}'s own version: it cannot be its canary too")
        problem = check_weight(weight)
        if problem:
            raise ValueError(problem)
        canaries = {k: dict(v) for k, v in self.canaries.items()}
        canaries.setdefault(name, {})[label] = Canary(version, float(weight))
        return self._replaced({k: dict(v) for k, v in self.prompts.items()}, canaries)

    def without_canary(self, name: str, label: str) -> Labels:
        """A copy with no canary on `label` of `name` (the label serves its own version to everyone)."""
        canaries = {k: dict(v) for k, v in self.canaries.items()}
        canaries.get(name, {}).pop(label, None)
        return self._replaced({k: dict(v) for k, v in self.prompts.items()}, canaries)

    def _replaced(self, prompts: dict[str, dict[str, int]], canaries: dict[str, dict[str, Canary]]) -> Labels:
        prompts = {name: targets for name, targets in prompts.items() if targets}
        canaries = {name: running for name, running in canaries.items() if running}
        labels = Labels(prompts, self.protected, {}, canaries)
        document = {**self.document, "labels": labels._entries()}
        if "protected" not in document:
            document["protected"] = list(self.protected)
        return Labels(prompts, self.protected, document, canaries)

    def _entries(self) -> dict[str, dict[str, Any]]:
        """prompt -> label -> the file's entry: a number, or {"version", "canary"} while a canary runs."""
        def entry(name: str, label: str, number: int) -> Any:
            running = self.canary(name, label)
            if running is None:
                return number
            weight = int(running.weight) if float(running.weight).is_integer() else running.weight
            return {"version": number, "canary": {"version": running.version, "weight": weight}}

        return {name: {label: entry(name, label, number) for label, number in sorted(targets.items())}
                for name, targets in sorted(self.prompts.items())}

    def dump(self) -> bytes:
        """The file's bytes, keys in a stable order (so a label move is a one-line diff)."""
        document: dict[str, Any] = {}
        if "$schema" in self.document:
            document["$schema"] = self.document["$schema"]
        document["protected"] = list(self.protected)
        document["labels"] = self._entries()
        return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


EMPTY = Labels()


def schema() -> dict[str, Any]:
    """The labels JSON Schema, parsed (from `schemas/`, or the copy packaged with promptops)."""
    from promptops.prompt.schema import packaged_schema

    return packaged_schema("labels")


def _structure_problems(document: Any, file: str, text: str) -> list[Problem]:
    from promptops.prompt.schema import explaining_validator, json_path, line_of

    problems = []
    errors = explaining_validator("labels").iter_errors(document)
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        parts = list(error.absolute_path)
        path = json_path(parts)
        if "propertyNames" in error.absolute_schema_path:
            key = str(error.instance)
            is_prompt = len(parts) == 1
            kind = "prompt name" if is_prompt else "label name"
            fix = ("use a prompt name from prompts/ (a-z, 0-9, '.', '_', '-')" if is_prompt
                   else f"a label is {LABEL_RULE}")
            problems.append(Problem(file, f"invalid {kind} {key!r}", json_path([*parts, key]),
                                    line_of(text, [*parts, key]), fix=fix, code="label-name"))
        elif parts[:1] == ["protected"] and len(parts) == 2:
            problems.append(Problem(file, f"invalid label name {error.instance!r} in protected", path,
                                    line_of(text, parts[:1]), fix=f"a label is {LABEL_RULE}", code="label-name"))
        elif error.validator == "additionalProperties" and not parts:
            extras = sorted(set(document) - set(schema()["properties"]))
            problems.append(Problem(file, f"unknown key {extras[0]!r}" if extras else error.message, path,
                                    line_of(text, extras[:1]), fix="allowed keys: $schema, protected, labels",
                                    code="unknown-key"))
        elif error.validator in ("type", "minimum") and (len(parts) == 3 or parts[3:] in (["version"],
                                                                                        ["canary", "version"])):
            problems.append(Problem(file, f"{path} must be a version number (an integer from 1), "
                                          f"got {json.dumps(error.instance)[:40]}", path, line_of(text, parts),
                                    fix=f"write the version, e.g. \"{parts[-1]}\": 3 (see `promptops log {parts[1]}`)",
                                    code="schema-type"))
        elif parts[3:] == ["canary", "weight"]:
            problems.append(Problem(file, f"{path} must be a percentage above 0 and below 100, "
                                          f"got {json.dumps(error.instance)[:40]}", path, line_of(text, parts),
                                    fix="the share of sticky keys the canary serves, e.g. \"weight\": 10; to end "
                                        f"the canary, `promptops rollback {parts[1]} {parts[2]}`",
                                    code="label-canary"))
        elif error.validator == "additionalProperties" and len(parts) in (3, 4):
            allowed = ("version", "canary") if len(parts) == 3 else ("version", "weight")
            extras = sorted(set(error.instance) - set(allowed))
            problems.append(Problem(file, f"unknown key {extras[0]!r} in {path}" if extras else error.message,
                                    path, line_of(text, [*parts, *extras[:1]]),
                                    fix=f"allowed keys: {', '.join(allowed)}", code="unknown-key"))
        else:
            problems.append(Problem(file, f"{path}: {error.message}", path, line_of(text, parts),
                                    code=f"schema-{error.validator}"))
    return problems


def parse(data: bytes | None, file: str = LABELS_FILE) -> tuple[Labels | None, list[Problem]]:
    """Parse and structurally check a labels file (absent: no labels). Returns (labels or None, problems)."""
    from promptops.prompt.schema import fast_validator, parse_json

    if data is None:
        return EMPTY, []
    document, text, problems = parse_json(data, file, what="the labels file")
    if document is None:
        return None, problems
    if not fast_validator("labels").is_valid(document):
        return None, _structure_problems(document, file, text)
    prompts: dict[str, dict[str, int]] = {}
    canaries: dict[str, dict[str, Canary]] = {}
    for name, labels in document["labels"].items():
        prompts[name] = {}
        for label, entry in labels.items():
            # int(): JSON Schema's "integer" accepts 2.0, and a version number indexes lists
            if isinstance(entry, dict):
                prompts[name][label] = int(entry["version"])
                if "canary" in entry:
                    canary = entry["canary"]
                    canaries.setdefault(name, {})[label] = Canary(int(canary["version"]), float(canary["weight"]))
            else:
                prompts[name][label] = int(entry)
    return Labels(prompts, tuple(document.get("protected", DEFAULT_PROTECTED)), document, canaries), []


def check_policy(labels: Labels, file: str, text: str, versions: Callable[[str], list[Version]]) -> list[Problem]:
    """Every label names an existing prompt and version; protected labels point only to approved versions; a
    canary is another existing version, approved too on a protected label."""
    from promptops.prompt.schema import json_path, line_of

    problems = []
    for name, targets in sorted(labels.prompts.items()):
        found = versions(name)
        for label, number in sorted(targets.items()):
            parts = ["labels", name, label]
            where = (json_path(parts), line_of(text, parts))
            if not found:
                problems.append(Problem(file, f"label {label!r} names prompt {name!r}, which has no committed version",
                                        *where, fix="commit the prompt first, or remove the label",
                                        code="label-prompt"))
                break
            if number > len(found):
                problems.append(Problem(file, f"{name} has no version {number} (the newest is {len(found)})", *where,
                                        fix=f"pick a version from `promptops log {name}`", code="label-version"))
                continue
            version = found[number - 1]
            if label in labels.protected and not version.approved:
                state = "its approval was revoked" if version.revoked else "it is not approved"
                move = f"point {label} at an approved version (`promptops rollback {name} {label}`)"
                fix = (f"{move}; a revocation is final" if version.revoked
                       else f"approve it (`promptops approve {name} --version {number}`) or {move}")
                problems.append(Problem(file, f"protected label {label!r} points to {name} v{number}, but {state}",
                                        *where, fix=fix, code="label-unapproved"))
            canary = labels.canary(name, label)
            if canary is not None:
                problems += _canary_problems(labels, file, text, name, label, number, canary, found)
    return problems


def _canary_problems(labels: Labels, file: str, text: str, name: str, label: str, primary: int, canary: Canary,
                     found: list[Version]) -> list[Problem]:
    """A canary names an existing version other than the label's own; on a protected label, an approved one."""
    from promptops.prompt.schema import json_path, line_of

    parts = ["labels", name, label, "canary", "version"]
    where = (json_path(parts), line_of(text, parts))
    end = f"`promptops rollback {name} {label}` ends the canary"
    if canary.version > len(found):
        return [Problem(file, f"{name} has no version {canary.version} (the newest is {len(found)})", *where,
                        fix=f"pick a version from `promptops log {name}`, or {end}", code="label-version")]
    if canary.version == primary:
        return [Problem(file, f"the canary of {label} is v{primary}, the version {label} already serves", *where,
                        fix=f"write \"{label}\": {primary} (`promptops promote {name}@{primary} {label}` does)",
                        code="label-canary")]
    version = found[canary.version - 1]
    if label in labels.protected and not version.approved:
        state = "its approval was revoked" if version.revoked else "it is not approved"
        fix = (f"{end}; a revocation is final" if version.revoked
               else f"approve it (`promptops approve {name} --version {canary.version}`), or {end}")
        return [Problem(file, f"protected label {label!r} runs a canary of {name} v{canary.version}, but {state}",
                        *where, fix=fix, code="label-unapproved")]
    return []
