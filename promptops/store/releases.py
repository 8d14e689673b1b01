"""Moving labels: promote, rollback, canaries, and the label history read from the labels file's own commits.

Every step writes the labels file through the same function, so every rule holds whichever
edge asked: valid label name, an existing committed version, protected labels (and their
canaries) only on approved versions, nothing uncommitted overwritten when committing. Each
step is one commit whose trailers say what moved (`Prompt:`, `Label:`, `Version:` the label's
own version after it, `Previous:`, `Canary:` / `Previous-canary:` while one runs, `Moved-by:`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from promptops.errors import LabelRefused, ProtectedLabel, RefError
from promptops.store.git import Git
from promptops.store.labels import LABEL_RULE, Canary, Labels, check_weight, is_label, parse, percent
from promptops.store.model import Version
from promptops.store.saves import IndexLock, commit_file

if TYPE_CHECKING:
    from promptops.store import PromptStore


@dataclass(frozen=True)
class LabelChange:
    """What a promote or rollback did: the label's own version before and after (`old`, `new`), the version the
    step was about (`version`: the canary's when one starts), the canary before and after, and the commit if
    one was made."""

    name: str
    label: str
    old: int | None
    new: int
    version: Version
    commit: str | None
    path: str
    old_canary: Canary | None = None
    new_canary: Canary | None = None

    def describe(self) -> str:
        """One line: "support: production v3 -> v4", "support: production v3, canary v4 at 10% (was 0%)",
        "support: production v3 -> v4 (canary finished)", "support: production v3 (canary v4 ended)"."""
        head = f"{self.name}: {self.label}"
        before = f"v{self.old}" if self.old is not None else "(unset)"
        was, now = self.old_canary, self.new_canary
        if now is not None:
            earlier = ("unchanged" if was == now else "0%" if was is None
                       else percent(was.weight) if was.version == now.version else str(was))
            return f"{head} v{self.new}, canary {now} (was {earlier})"
        if was is None:
            return f"{head} {before} -> v{self.new}"
        if was.version == self.new:
            return f"{head} {before} -> v{self.new} (canary finished)"
        if self.old == self.new:
            return f"{head} v{self.new} (canary v{was.version} ended)"
        return f"{head} {before} -> v{self.new} (canary v{was.version} dropped)"


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


def _current(store: PromptStore, head: str | None, commit: bool) -> Labels:
    """The labels a step starts from: as committed (refusing uncommitted edits it would overwrite), or the
    working-tree file."""
    if not commit:
        return _working(store)[0]
    committed = store.labels_at(head)
    if _on_checkout(store):
        working = _working(store)[0]
        if (working.prompts, working.protected, working.canaries) != \
                (committed.prompts, committed.protected, committed.canaries):
            raise LabelRefused(f"{store.labels_relpath} has uncommitted changes",
                               fix="commit or discard them first, or promote without --commit")
    return committed


def _check_approved(store: PromptStore, version: Version, label: str, head: str | None, *, canary: bool) -> None:
    fresh = store.versions_at(version.name, head)[version.number - 1]
    if not fresh.approved:
        state = "its approval was revoked" if fresh.revoked else "it is not approved"
        take = "be its canary" if canary else "take it"
        raise ProtectedLabel(f"{label} is a protected label and {version.name} v{version.number} cannot {take}: "
                             f"{state}",
                             fix=f"approve it first (`promptops approve {version.name} --version "
                                 f"{version.number}`) or promote an approved version")


def promote(store: PromptStore, ref: str, label: str, *, commit: bool, canary: float | None = None,
            author: tuple[str, str] | None = None, message: str | None = None) -> LabelChange:
    """Point `label` of the prompt at the version `ref` names (bare name: the newest committed version).

    With `canary` (a percentage, 0 < canary < 100) the version becomes the label's canary instead,
    served to that share of sticky keys; the label's own version does not change. Without it, a
    running canary ends: promoting the canary's version finishes it (that version serves everyone),
    promoting another drops it.
    """
    check_label(label)
    problem = check_weight(canary) if canary is not None else None
    if problem:
        raise LabelRefused(problem, fix="e.g. 10 serves the version to one sticky key in ten")
    resolved = store.resolve(ref, default="head")
    version = resolved.version
    assert version is not None  # default "head" never resolves to a draft
    name, number = version.name, version.number
    with store.locked():
        head = store.history.head()
        current = _current(store, head, commit)
        if label in current.protected:
            _check_approved(store, version, label, head, canary=canary is not None)
        primary, running = current.target(name, label), current.canary(name, label)
        if canary is not None:
            updated, subject = _with_canary(current, name, label, number, canary)
        else:
            updated = current.without_canary(name, label).moved(name, label, number)
            subject = _promote_subject(name, label, number, primary, running)
        new = updated.target(name, label)
        assert new is not None
        change = LabelChange(name, label, primary, new, version, None, store.labels_relpath, running,
                             updated.canary(name, label))
        return _write(store, current, updated, change, head, commit, author, message or subject)


def _with_canary(current: Labels, name: str, label: str, number: int, weight: float) -> tuple[Labels, str]:
    primary, running = current.target(name, label), current.canary(name, label)
    if primary is None:
        raise LabelRefused(f"{label} of '{name}' points to no version yet, so a canary has nothing to be "
                           "compared with", fix=f"promote a version first: `promptops promote {name}@N {label}`")
    if number == primary:
        raise LabelRefused(f"{name} v{number} is the version {label} already serves; a canary is another version",
                           fix=f"start a canary of a newer version (`promptops promote {name}@N {label} "
                               f"--canary {weight:g}`)")
    now = Canary(number, float(weight))
    if running is None:
        subject = f"Start canary v{number} of {name} {label} at {percent(weight)}"
    elif running.version == number:
        subject = f"Set canary v{number} of {name} {label} to {percent(weight)} (was {percent(running.weight)})"
    else:
        subject = f"Start canary v{number} of {name} {label} at {percent(weight)} (replacing {running})"
    return current.with_canary(name, label, now.version, now.weight), subject


def _promote_subject(name: str, label: str, number: int, primary: int | None, running: Canary | None) -> str:
    if running is None:
        return f"Promote {name} v{number} to {label}"
    if running.version == number:
        return f"Finish canary v{number} of {name} {label}: v{number} serves everyone"
    if primary == number:
        return f"End canary v{running.version} of {name} {label} (back on v{number})"
    return f"Promote {name} v{number} to {label}, dropping canary {running}"


def _write(store: PromptStore, current: Labels, updated: Labels, change: LabelChange, head: str | None,
           commit: bool, author: tuple[str, str] | None, subject: str) -> LabelChange:
    """Write `updated` (a commit with trailers, or the working-tree file); nothing when nothing changes."""
    if (updated.prompts, updated.canaries) == (current.prompts, current.canaries):
        return change  # nothing to move: no empty commit, no rewrite
    data = updated.dump()
    sha = None
    if commit:
        who, email = author or store.git.identity("the label move")
        trailers = [f"Prompt: {change.name}", f"Label: {change.label}", f"Version: {change.new}",
                    f"Previous: {f'v{change.old}' if change.old is not None else 'unset'}"]
        trailers += [f"Canary: {change.new_canary}"] if change.new_canary else []
        trailers += [f"Previous-canary: {change.old_canary}"] if change.old_canary else []
        body = subject + "\n\n" + "\n".join([*trailers, f"Moved-by: {who} <{email}>"]) + "\n"
        sha = _commit(store, store.git, data, head, who, email, body)
    else:
        from promptops.files import atomic_write

        atomic_write(Path(store.repo, store.labels_relpath), data)
    store.forget_labels()
    return replace(change, commit=sha)


def _commit(store: PromptStore, git: Git, data: bytes, head: str | None, who: str, email: str, body: str) -> str:
    ref = store.history.refname or (git.checked_out() or "HEAD")
    # Checked out: the index is locked first, so a move the index cannot follow is not committed (see saves).
    with IndexLock(git, store.repo) if _on_checkout(store) else contextlib.nullcontext() as index:
        commit_file(git, store.history.gitdir, ref, store.labels_relpath, data, head, author=who, email=email,
                    message=body, index=index)
    return store.history.head() or ""


def rollback(store: PromptStore, name: str, label: str = "production", *, commit: bool,
             author: tuple[str, str] | None = None) -> LabelChange:
    """End the label's canary, or move the label back to the version it pointed to before its last move (per
    the labels file's history).

    A running canary is ended first (the label's own version then serves everyone), as one step. An
    uncommitted move in the working tree is undone next; otherwise the label goes back one committed
    move. Rolling back twice returns to where you started (like `cd -`).
    """
    check_label(label)
    ended = _end_canary(store, name, label, commit=commit, author=author)
    if ended is not None:
        return ended
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


def _end_canary(store: PromptStore, name: str, label: str, *, commit: bool,
                author: tuple[str, str] | None) -> LabelChange | None:
    """End the canary of `label` (the label's own version stays); None when none runs."""
    with store.locked():
        head = store.history.head()
        current = _current(store, head, commit)
        running, primary = current.canary(name, label), current.target(name, label)
        if running is None or primary is None:
            return None
        version = store.resolve(f"{name}@{primary}", default="head", at=head).version
        assert version is not None
        change = LabelChange(name, label, primary, primary, version, None, store.labels_relpath, running, None)
        return _write(store, current, current.without_canary(name, label), change, head, commit, author,
                      f"End canary v{running.version} of {name} {label} (back on v{primary})")
