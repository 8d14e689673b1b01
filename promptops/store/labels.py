"""Release labels: `production`, `staging`, ... each pointing to one version of one prompt.

Labels live in one small file in the repository, ``labels.json`` next to the
prompts directory (checked by ``schemas/labels.schema.json``)::

    {"protected": ["production"], "labels": {"support": {"production": 2, "staging": 3}}}

so moving a label is a commit: reviewed in a pull request, protected by CODEOWNERS,
audited by `git log labels.json`, shipped with every clone. A *protected* label
(default: ``production``) may point only to an approved, unrevoked version.

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


@dataclass(frozen=True)
class Labels:
    """A parsed labels file: the protected labels and, per prompt, label -> version number."""

    prompts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    document: Mapping[str, Any] = field(default_factory=dict)

    def of(self, name: str) -> Mapping[str, int]:
        """label -> version number for one prompt."""
        return self.prompts.get(name, {})

    def target(self, name: str, label: str) -> int | None:
        return self.prompts.get(name, {}).get(label)

    def labels_of(self, name: str, number: int) -> tuple[str, ...]:
        """The labels pointing at version `number` of `name`, sorted (protected ones first)."""
        found = [label for label, target in self.of(name).items() if target == number]
        return tuple(sorted(found, key=lambda label: (label not in self.protected, label)))

    def moved(self, name: str, label: str, number: int | None) -> Labels:
        """A copy with `label` of `name` set to `number` (None removes it)."""
        prompts = {k: dict(v) for k, v in self.prompts.items()}
        current = prompts.setdefault(name, {})
        if number is None:
            current.pop(label, None)
        else:
            current[label] = number
        if not current:
            del prompts[name]
        document = {**self.document, "labels": prompts}
        if "protected" not in document:
            document["protected"] = list(self.protected)
        return Labels(prompts, self.protected, document)

    def dump(self) -> bytes:
        """The file's bytes, keys in a stable order (so a label move is a one-line diff)."""
        document: dict[str, Any] = {}
        if "$schema" in self.document:
            document["$schema"] = self.document["$schema"]
        document["protected"] = list(self.protected)
        document["labels"] = {name: dict(sorted(labels.items())) for name, labels in sorted(self.prompts.items())}
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
        elif error.validator in ("type", "minimum") and len(parts) == 3:
            problems.append(Problem(file, f"{path} must be a version number (an integer from 1), "
                                          f"got {json.dumps(error.instance)[:40]}", path, line_of(text, parts),
                                    fix=f"write the version, e.g. \"{parts[2]}\": 3 (see `promptops log {parts[1]}`)",
                                    code="schema-type"))
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
    prompts = {name: dict(labels) for name, labels in document["labels"].items()}
    return Labels(prompts, tuple(document.get("protected", DEFAULT_PROTECTED)), document), []


def check_policy(labels: Labels, file: str, text: str, versions: Callable[[str], list[Version]]) -> list[Problem]:
    """Every label names an existing prompt and version; protected labels point only to approved versions."""
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
    return problems
