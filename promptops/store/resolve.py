"""Turning `NAME@SELECTOR` into one version: numbers, keywords, labels, SHAs, tags and branches."""

from __future__ import annotations

import bisect
import os
from typing import TYPE_CHECKING, Literal

from promptops.errors import NotApproved, PromptNotFound, RefError, VersionNotFound
from promptops.store.history import Line
from promptops.store.labels import Labels
from promptops.store.model import Resolved, Version
from promptops.store.refs import parse_ref

if TYPE_CHECKING:
    from promptops.store import PromptStore

Default = Literal["approved", "head", "draft"]
SERVING_LABEL = "production"


class Resolver:
    """Applies the reference rules against one store; memoised per (ref, head, tags of that prompt)."""

    def __init__(self, store: PromptStore) -> None:
        self.store = store
        self._memo: dict[tuple[object, ...], tuple[tuple[object, ...], Resolved]] = {}

    def forget(self) -> None:
        self._memo.clear()

    def resolve(self, ref: str, default: Default, serve_drafts: bool, at: str | None = None) -> Resolved:
        store = self.store
        head = store.history.head() if at is None else at
        memo_key = (ref, default, serve_drafts)
        hit = self._memo.get(memo_key)
        if hit is not None and hit[0] == (head, *store.approvals.key(hit[1].name)):
            return hit[1]
        parsed = parse_ref(ref)
        fresh = (head, *store.approvals.key(parsed.name))
        kind = parsed.kind if parsed.selector is not None else default
        if kind == "draft":
            if default != "draft" and not serve_drafts:
                raise RefError(f"'{parsed.name}@draft' is the working-tree file, which is not served",
                               fix=f"use {parsed.name}@head or {parsed.name}@N, or enable serving drafts")
            return store.draft(parsed.name)
        resolved = self._committed(parsed.name, kind, parsed.selector, head, bare=parsed.selector is None)
        if len(self._memo) > 4096:
            self._memo.clear()
        self._memo[memo_key] = (fresh, resolved)
        return resolved

    def _committed(self, name: str, kind: str, selector: int | str | None, head: str | None, *,
                   bare: bool) -> Resolved:
        store = self.store
        versions = store.versions_at(name, head)
        line = store.line(name, head)
        if not versions:
            raise self.not_found(name)
        label = None
        if kind == "number":
            assert isinstance(selector, int)
            version = self.number(name, selector, versions)
        elif kind in ("head", "approved"):
            if not line.alive:
                raise self.deleted(name, line, head)
            if kind == "head":
                version = versions[-1]
            else:
                labels = store.labels_at(head)
                if bare and labels.target(name, SERVING_LABEL) is not None:
                    label = SERVING_LABEL
                    version = self.labelled(name, label, labels, versions)
                else:
                    version = self.newest_approved(name, versions)
        else:
            assert isinstance(selector, str)
            labels = store.labels_at(head)
            if selector in labels.of(name):
                label = selector
                version = self.labelled(name, selector, labels, versions)
            else:
                version = self.version_at(name, selector, kind, versions, line, head)
        return Resolved(name, store.load(version), version, False, version.commit, version.approved, label)

    @staticmethod
    def number(name: str, number: int, versions: list[Version]) -> Version:
        if number > len(versions):
            raise VersionNotFound(f"prompt '{name}' has no version {number} (the newest is {len(versions)})",
                                  fix=f"list versions with `promptops log {name}`")
        return versions[number - 1]

    @staticmethod
    def newest_approved(name: str, versions: list[Version]) -> Version:
        approved = [v for v in versions if v.approved]
        if not approved:
            raise NotApproved(f"prompt '{name}' has no approved version", fix=f"promptops approve {name}")
        return approved[-1]

    def labelled(self, name: str, label: str, labels: Labels, versions: list[Version]) -> Version:
        """The version `label` points at; a protected label never serves an unapproved version."""
        number = labels.target(name, label)
        assert number is not None
        file = self.store.labels_relpath
        if number > len(versions):
            raise VersionNotFound(f"label {label} of '{name}' points to v{number}, but the newest is "
                                  f"v{len(versions)} ({file})", fix=f"fix {file}; `promptops validate` checks it")
        version = versions[number - 1]
        if label in labels.protected and not version.approved:
            state = "its approval was revoked" if version.revoked else "it is not approved"
            raise NotApproved(f"protected label {label} of '{name}' points to v{number}, but {state}",
                              fix=f"approve it, or move the label: `promptops rollback {name} {label}`")
        return version

    def not_found(self, name: str) -> PromptNotFound:
        store = self.store
        relpath = store.relpath(name)
        if os.path.exists(os.path.join(store.repo, relpath)):
            return PromptNotFound(f"prompt '{name}' has no committed versions",
                                  fix=f"commit {relpath} first (`git add {relpath} && git commit`)")
        return PromptNotFound(f"no prompt named '{name}' in {store.prompts_dir}/",
                              fix="list prompts with `promptops status`")

    def deleted(self, name: str, line: Line, head: str | None) -> PromptNotFound:
        commit = self.store.snapshot(head).commits[line.event_index[-1]][0]
        return PromptNotFound(f"prompt '{name}' was deleted in commit {commit[:7]}",
                              fix=f"restore {self.store.relpath(name)} or ask for an explicit version: {name}@N")

    def _commit_of(self, name: str, selector: str, kind: str) -> str:
        result = self.store.git.attempt("rev-parse", "--verify", "--end-of-options", f"{selector}^{{commit}}")
        if result.returncode == 0:
            return result.stdout.decode().strip()
        if b"ambiguous" in result.stderr:
            raise RefError(f"short SHA '{selector}' in '{name}@{selector}' is ambiguous",
                           fix="use more hex digits of the commit SHA")
        what = "commit" if kind == "sha" else "label, tag, branch or commit"
        raise VersionNotFound(f"no {what} '{selector}' in this repository (in '{name}@{selector}')",
                              fix=f"list versions with `promptops log {name}`, labels with `promptops labels {name}`, "
                                  "or tags with `git tag --list`")

    def version_at(self, name: str, selector: str, kind: str, versions: list[Version], line: Line,
                   head: str | None) -> Version:
        """The version of `name` current at the commit a SHA, tag or branch names."""
        store = self.store
        commit = self._commit_of(name, selector, kind)
        snap = store.snapshot(head)
        index = snap.index().get(commit)
        if index is None:
            # Not on the serving history (another branch, a merged side branch): match the content.
            blob = store.git.blob_at(commit, store.relpath(name))
            matches = [v for v in versions if v.blob == blob]
            if not matches:
                raise VersionNotFound(
                    f"'{selector}' is not on the history of {store.history.branch or 'HEAD'} and its "
                    f"{store.relpath(name)} matches no version of '{name}'",
                    fix=f"merge it first, or pick a version from `promptops log {name}`")
            return matches[-1]
        at = bisect.bisect_right(line.event_index, index) - 1
        if at < 0 or line.event_number[at] == 0:
            state = "did not exist yet" if at < 0 else "was deleted"
            raise VersionNotFound(f"prompt '{name}' {state} at '{selector}' ({commit[:7]})",
                                  fix=f"pick a version from `promptops log {name}`")
        return versions[line.event_number[at] - 1]
