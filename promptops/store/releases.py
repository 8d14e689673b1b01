"""Moving labels: promote, rollback, and the label history read from the labels file's own commits.

Both write the labels file through the same function, so every rule holds whichever
edge asked: valid label name, an existing committed version, protected labels only on
approved versions, nothing uncommitted overwritten when committing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promptops.errors import LabelRefused, ProtectedLabel, RefError
from promptops.store.git import Git
from promptops.store.labels import LABEL_RULE, Labels, is_label, parse
from promptops.store.model import Version
from promptops.store.saves import IndexLock, commit_file

if TYPE_CHECKING:
    from promptops.store import PromptStore


@dataclass(frozen=True)
class LabelChange:
    """What a promote or rollback did: the label's old and new version, and the commit if one was made."""

    name: str
    label: str
    old: int | None
    new: int
    version: Version
    commit: str | None
    path: str

    def describe(self) -> str:
        before = f"v{self.old}" if self.old is not None else "(unset)"
        return f"{self.name}: {self.label} {before} -> v{self.new}"


def check_label(label: str) -> str:
    if not is_label(label):
        raise RefError(f"invalid label {label!r}", fix=f"a label is {LABEL_RULE}")
    return label


def _parsed(data: bytes | None, file: str) -> Labels:
    from promptops.errors import PromptInvalid

    labels, problems = parse(data, file)
    if labels is None:
        raise PromptInvalid(problems)
    return labels


def _working(store: PromptStore) -> tuple[Labels, bytes | None]:
    path = Path(store.repo, store.labels_relpath)
    data = path.read_bytes() if path.exists() else None
    return _parsed(data, store.labels_relpath), data


def _on_checkout(store: PromptStore) -> bool:
    return store.history.refname is None or store.git.checked_out() == store.history.refname


def label_history(store: PromptStore, name: str, label: str) -> list[tuple[str, int | None]]:
    """(commit, target) each time the label's target changed on the serving branch, oldest first."""
    head = store.history.head()
    if head is None:
        return []
    out = store.git.run("log", "--first-parent", "--format=%H", "--end-of-options", head, "--",
                        store.labels_relpath).decode().split()
    commits = list(reversed(out))
    contents = store.git.read_optional([f"{c}:{store.labels_relpath}" for c in commits])
    moves: list[tuple[str, int | None]] = []
    for commit, data in zip(commits, contents, strict=True):
        labels, _ = parse(data, f"{store.labels_relpath}@{commit[:7]}")
        target = labels.target(name, label) if labels is not None else None
        if labels is not None and (not moves or moves[-1][1] != target):
            moves.append((commit, target))
    return moves


def promote(store: PromptStore, ref: str, label: str, *, commit: bool, author: tuple[str, str] | None = None,
            message: str | None = None) -> LabelChange:
    """Point `label` of the prompt at the version `ref` names (bare name: the newest committed version)."""
    check_label(label)
    resolved = store.resolve(ref, default="head")
    version = resolved.version
    assert version is not None  # default "head" never resolves to a draft
    with store.locked():
        head = store.history.head()
        committed = store.labels_at(head)
        if commit:
            current = committed
            if _on_checkout(store):
                working = _working(store)[0]
                if (working.prompts, working.protected) != (committed.prompts, committed.protected):
                    raise LabelRefused(f"{store.labels_relpath} has uncommitted changes",
                                     fix="commit or discard them first, or promote without --commit")
        else:
            current = _working(store)[0]
        if label in current.protected:
            fresh = store.versions_at(version.name, head)[version.number - 1]
            if not fresh.approved:
                state = "its approval was revoked" if fresh.revoked else "it is not approved"
                raise ProtectedLabel(f"{label} is a protected label and {version.name} v{version.number} cannot "
                                  f"take it: {state}",
                                  fix=f"approve it first (`promptops approve {version.name} --version "
                                      f"{version.number}`) or promote an approved version")
        old = current.target(version.name, label)
        if old == version.number:  # nothing to move: no empty commit, no rewrite
            return LabelChange(version.name, label, old, old, version, None, store.labels_relpath)
        updated = current.moved(version.name, label, version.number)
        data = updated.dump()
        sha = None
        if commit:
            who, email = author or store.git.identity("the label move")
            before = f"v{old}" if old is not None else "unset"
            body = (message or f"Promote {version.name} v{version.number} to {label}") + (
                f"\n\nPrompt: {version.name}\nLabel: {label}\nVersion: {version.number}\nPrevious: {before}\n"
                f"Moved-by: {who} <{email}>\n")
            sha = _commit(store, store.git, data, head, who, email, body)
        else:
            from promptops.files import atomic_write

            atomic_write(Path(store.repo, store.labels_relpath), data)
        store.forget_labels()
        return LabelChange(version.name, label, old, version.number, version, sha, store.labels_relpath)


def _commit(store: PromptStore, git: Git, data: bytes, head: str | None, who: str, email: str, body: str) -> str:
    ref = store.history.refname or (git.checked_out() or "HEAD")
    # Checked out: the index is locked first, so a move the index cannot follow is not committed (see saves).
    with IndexLock(git, store.repo) if _on_checkout(store) else contextlib.nullcontext() as index:
        commit_file(git, store.history.gitdir, ref, store.labels_relpath, data, head, author=who, email=email,
                    message=body, index=index)
    return store.history.head() or ""


def rollback(store: PromptStore, name: str, label: str = "production", *, commit: bool,
             author: tuple[str, str] | None = None) -> LabelChange:
    """Move `label` back to the version it pointed to before its last move (per the labels file's history).

    An uncommitted move in the working tree is undone first; otherwise the label goes back one
    committed move. Rolling back twice returns to where you started (like `cd -`).
    """
    check_label(label)
    moves = label_history(store, name, label)
    committed = moves[-1][1] if moves else None
    current = committed if commit else _working(store)[0].target(name, label)
    if current is None:
        raise LabelRefused(f"prompt '{name}' has no {label} label to roll back",
                         fix=f"set one with `promptops promote {name}@N {label}`")
    if current != committed:
        target = committed
    else:
        target = moves[-2][1] if len(moves) >= 2 else None
    if target is None:
        raise LabelRefused(f"{label} of '{name}' has no earlier version in the history of {store.labels_relpath}",
                         fix=f"promote a version explicitly: `promptops promote {name}@N {label}`")
    return promote(store, f"{name}@{target}", label, commit=commit, author=author,
                   message=f"Roll back {name} {label} to v{target}")
