"""What a server serves: an immutable view of every prompt's versions, approvals and labels at one commit.

Readers answer from a :class:`Catalog` and never touch the repository lock: a write (or a
refresh) builds the next catalog in a worker thread and the server swaps it in when it is done,
so a writer waiting for the lock, a CLI holding it for minutes, or a slow `git` never changes
what readers see or how fast.

A catalog is built only from a head that validates: its labels file and every prompt file alive
at that commit. When the newest commit does not (a broken `labels.json` merged anyway), the
server keeps the catalog of the last head that did and reports the problems
(:func:`build_last_good`); the next valid commit is picked up without a restart.

The refs callers use most (a bare name, `NAME@LABEL`, `NAME@N` of every canary, `NAME@head`) are
resolved when the catalog is built; any other is resolved once, in a worker thread, against the catalog's head,
and remembered. Failures are remembered too, so a wrong pin costs no thread hop the second time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptops.errors import Problem, PromptInvalid, PromptOpsError
from promptops.store.labels import EMPTY, Canary, Labels
from promptops.store.model import Resolved, Version
from promptops.store.resolve import SERVING_LABEL, Default

if TYPE_CHECKING:
    from promptops.prompt.model import Prompt
    from promptops.store import PromptStore

MAX_REMEMBERED = 4096  # resolved refs kept per catalog; past it, answers are still right, only slower
WALK_BACK = 20  # commits tried, newest first, when a server starts on a head that does not validate
# What does not change what the model is sent: left out when matching posted prompts to versions.
_NOT_SENT = ("user", "description", "tests", "$schema")


def content_key(prompt: Prompt) -> str:
    """The prompt as the model gets it (normalised config, template or messages, fields, model), minus
    `user` and documentation: equal keys render the same request for the same message."""
    document = {k: v for k, v in prompt.document.items() if k not in _NOT_SENT}
    document["config"] = dict(prompt.config)
    return json.dumps(document, sort_keys=True, ensure_ascii=False, default=str)


@dataclass
class Catalog:
    """Every version, approval and label at `head`; resolved refs and reviewed content, remembered."""

    head: str | None
    key: tuple[Any, ...]  # PromptStore.state_key() taken before reading: a change meanwhile makes it stale
    tag_keys: Mapping[str, tuple[Any, ...]]  # approvals.key(name) per prompt, taken before reading
    versions: Mapping[str, tuple[Version, ...]]
    reviewed: Mapping[str, Resolved]  # content_key -> the label target or approved version with that content
    built_at: float = field(default_factory=time.time)
    _answers: dict[tuple[str, str, bool], Resolved | PromptOpsError] = field(default_factory=dict)
    labels: Labels = EMPTY  # the labels file at `head`

    def remembered(self, ref: str, default: Default, drafts: bool) -> Resolved | None:
        """A remembered answer for `ref` (raising a remembered failure again); None: not asked yet."""
        found = self._answers.get((ref, default, drafts))
        if isinstance(found, PromptOpsError):
            raise copy.copy(found)  # a fresh instance: raising one object twice chains its tracebacks
        return found

    def remember(self, ref: str, default: Default, drafts: bool, answer: Resolved | PromptOpsError) -> None:
        if len(self._answers) < MAX_REMEMBERED and not (isinstance(answer, Resolved) and answer.draft):
            self._answers[(ref, default, drafts)] = answer

    def approved(self, name: str) -> list[Version]:
        """The approved versions of `name` at this head, oldest first."""
        return [v for v in self.versions.get(name, ()) if v.approved]

    def canary(self, name: str, label: str) -> Canary | None:
        """The canary `label` of `name` runs at this head, if it may be served: None when none runs, or when it
        names no version, the label's own version, or (protected label) a version not approved or revoked
        (then the label's own version serves everyone). Its version is resolved already: `NAME@N` is warm."""
        found = self.labels.canary(name, label)
        line = self.versions.get(name, ())
        if found is None or not 0 < found.version <= len(line) or found.version == self.labels.target(name, label):
            return None
        if label in self.labels.protected and not line[found.version - 1].approved:
            return None
        return found


def _resolve(store: PromptStore, catalog: Catalog, ref: str, default: Default, drafts: bool) -> Resolved:
    """`ref` as of the catalog's head, remembered in the catalog (a failure too: raised again next time)."""
    try:
        answer = store.resolve(ref, default=default, serve_drafts=drafts, at=catalog.head)
    except PromptOpsError as exc:
        catalog.remember(ref, default, drafts, exc)
        raise
    catalog.remember(ref, default, drafts, answer)
    return answer


def resolve(store: PromptStore, catalog: Catalog, ref: str, default: Default, drafts: bool) -> Resolved:
    """`ref` as of the catalog's head (blocking: run it in a worker thread), remembered in the catalog."""
    found = catalog.remembered(ref, default, drafts)
    return found if found is not None else _resolve(store, catalog, ref, default, drafts)


def build(store: PromptStore, at: str | None = None, *, drafts: bool = False) -> Catalog:
    """The catalog of `at` (default: the serving branch's newest commit); PromptInvalid when its labels
    file or any prompt alive there does not validate (every problem listed)."""
    key = store.state_key()
    head = store.head_commit() if at is None else at
    names = store.snapshot(head).names() if head else []
    tag_keys = {name: store.approvals.key(name) for name in names}
    labels = store.labels_at(head)  # PromptInvalid: nothing else can be trusted without it
    versions = {name: tuple(store.versions_at(name, head)) for name in names}
    newest = [found[-1] for found in versions.values() if found]
    problems = store.preload(newest)  # every prompt alive at head must validate
    if problems:
        raise PromptInvalid(problems)
    store.preload([v for found in versions.values() for v in found if v.approved or v.labels])
    catalog = Catalog(head, key, tag_keys, versions, {}, labels=labels)
    default: Default = "head" if drafts else "approved"
    for name in names:
        canaries = sorted({f"{name}@{c.version}" for c in labels.canaries.get(name, {}).values()})
        for ref in (name, *(f"{name}@{label}" for label in labels.of(name)), *canaries, f"{name}@head"):
            with contextlib.suppress(PromptOpsError):  # remembered: a request for it gets the same error
                _resolve(store, catalog, ref, default, drafts)
    catalog.reviewed = _reviewed(store, versions, labels.of)
    return catalog


def _reviewed(store: PromptStore, versions: Mapping[str, tuple[Version, ...]],
              labels_of: Any) -> dict[str, Resolved]:
    """content_key -> version, for every approved version and label target: the production label's
    target first, then other labels', then the newest approved version with that content."""
    found: dict[str, Resolved] = {}
    for name, line in versions.items():
        targets = sorted(labels_of(name).items(), key=lambda item: item[0] != SERVING_LABEL)
        candidates = [(line[n - 1], label) for label, n in targets if 0 < n <= len(line)]
        candidates += [(v, None) for v in reversed(line) if v.approved]
        for version, label in candidates:
            if label is not None and not version.approved and label == SERVING_LABEL:
                continue  # a protected label never serves an unapproved version (the resolver refuses it)
            prompt = store.load(version)
            found.setdefault(content_key(prompt), Resolved(name, prompt, version, False, version.commit,
                                                           version.approved, label))
    return found


def build_last_good(store: PromptStore, *, drafts: bool = False) -> tuple[Catalog | None, list[Problem]]:
    """The catalog of the newest commit that validates, walking back at most WALK_BACK first-parent
    commits, and the problems of the newest one (empty when it validates)."""
    head = store.head_commit()
    try:
        return build(store, head, drafts=drafts), []
    except PromptInvalid as exc:
        problems = exc.problems
    commits = store.snapshot(head).commits if head else []
    for row in list(reversed(commits))[1:WALK_BACK + 1]:
        try:
            return build(store, row[0], drafts=drafts), problems
        except PromptInvalid:
            continue
    return None, problems
