"""Git-backed prompt versions, references, approvals, labels and saves, behind one facade.

The concepts live in their own modules; :class:`PromptStore` wires them to one
repository and one lock:

==============  ===============================================================
``git``         the one way to run git (the binary, mapped errors)
``history``     version numbering from one first-parent `git log` pass, cached by commit
``approvals``   approval and revocation tags
``labels``      the labels file: parse, check, format
``releases``    promote and rollback (label moves), label history
``resolve``     `NAME@SELECTOR` -> a version
``saves``       committing one file without touching anything else
``changes``     what changed between two commits (prompts and labels)
==============  ===============================================================

Content is read from git objects, never from the working tree (except for
``@draft`` and the labels file an author is editing). A warm ``resolve()`` re-reads
only the branch ref and stats two tag paths, so it costs microseconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptops.errors import Conflict, Problem, PromptInvalid, Refused, StoreBusy, StoreError, VersionNotFound
from promptops.prompt.model import Prompt
from promptops.prompt.names import check_name
from promptops.prompt.schema import encode_text, load_prompt_bytes
from promptops.store import changes as _changes
from promptops.store import releases
from promptops.store.approvals import Approvals, Signature
from promptops.store.git import Git, reftable_key, uses_reftable
from promptops.store.history import History, Line, Snapshot, blob_sha, is_valid_name, stat_key
from promptops.store.labels import EMPTY, Labels, check_policy, labels_path, parse
from promptops.store.model import Change, LabelEvent, LabelMove, PromptStatus, Resolved, Version
from promptops.store.refs import parse_ref
from promptops.store.releases import LabelChange
from promptops.store.resolve import SERVING_LABEL, Default, Resolver
from promptops.store.saves import IndexLock, check_identity, commit_file

if TYPE_CHECKING:
    from promptops.config.settings import Settings


SIGNERS_FILE = "allowed_signers"
DEFAULT_LOCK_TIMEOUT_S = 30.0  # a writer waits this long for another writer, then StoreBusy (503 / exit 1)
LOCK_POLL_S = 0.02
MAX_PROMPTS_CACHED = 4096


class PromptStore:
    """Prompt versions, approvals and labels on one branch of a git repository (default: HEAD's branch)."""

    def __init__(self, repo: Path, prompts_dir: str = "prompts", branch: str | None = None, *,
                 signed_approvals: bool = False, four_eyes: bool = False,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> None:
        self.repo = Path(repo)
        if not (self.repo / ".git").exists():
            raise StoreError(f"not a git repository: {self.repo}", fix="run `git init` or pass --repo")
        self.prompts_dir = self._check_dir(prompts_dir)
        self.labels_relpath = labels_path(self.prompts_dir)
        self.signers_relpath = posixpath.join(posixpath.dirname(self.labels_relpath), SIGNERS_FILE)
        self.signed_approvals = signed_approvals
        self.four_eyes = four_eyes
        self.git = Git(self.repo)
        self.history = History(self.repo, self.git, self.prompts_dir, branch, self.labels_relpath)
        self.approvals = Approvals(self.git, self.history.common)
        self.resolver = Resolver(self)
        self._lock: threading.RLock = threading.RLock()
        self._versions: dict[tuple[Any, ...], list[Version]] = {}
        self._prompts: dict[tuple[str, str], Prompt] = {}
        self._labels: dict[str | None, Labels] = {}
        self._signers: dict[str | None, bytes | None] = {}
        self._head_ref: tuple[Any, str | None] | None = None
        self._reftable = uses_reftable(self.history.common)
        self.lock_timeout_s = lock_timeout_s

    @property
    def branch(self) -> str | None:
        return self.history.branch

    @property
    def cache_lock(self) -> threading.RLock:
        """The in-memory lock of this facade's caches (a writer takes it only once it holds the file lock)."""
        return self._lock

    def twin(self) -> PromptStore:
        """Another facade on the same repository and branch, with caches and an in-memory lock of its own:
        what a server reads through, so that no writer of this process ever holds what readers need."""
        return PromptStore(self.repo, self.prompts_dir, self.history.branch, signed_approvals=self.signed_approvals,
                           four_eyes=self.four_eyes, lock_timeout_s=self.lock_timeout_s)

    @staticmethod
    def _check_dir(prompts_dir: str) -> str:
        parts = prompts_dir.strip("/").split("/")
        if not prompts_dir or any(p in ("", ".", "..") or p.startswith("-") for p in parts):
            raise StoreError(f"invalid prompts directory {prompts_dir!r}",
                             fix="use a relative path inside the repository, e.g. prompts")
        return "/".join(parts)

    @contextlib.contextmanager
    def locked(self, timeout_s: float | None = None) -> Iterator[None]:
        """Serialise writers across threads and processes with a file lock inside .git.

        The file lock is taken first and the in-memory lock only once it is held: a writer waiting
        for another process (a CLI `approve`) never holds what this process's readers need. Past
        `timeout_s` (default: `lock_timeout_s`) the wait ends in StoreBusy, never in a hang.
        """
        path = os.path.join(self.history.common, "promptops.lock")
        limit = self.lock_timeout_s if timeout_s is None else timeout_s
        try:
            handle = open(path, "a+b")  # noqa: SIM115 -- closed below, after the flock is released
        except OSError as exc:
            raise StoreError(f"cannot open the repository lock {path}: {exc.strerror}",
                             fix="run promptops as a user who may write to the repository's .git folder") from exc
        with handle:
            deadline = time.monotonic() + limit
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreBusy(f"another writer has held the repository lock ({path}) for over "
                                        f"{limit:g} s", fix="retry when its save, approval or label move is "
                                        "done (a running `promptops approve`/`promote` holds it)") from None
                    time.sleep(LOCK_POLL_S)
            try:
                with self._lock:
                    yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def state_key(self) -> tuple[Any, ...]:
        """Changes whenever the serving branch moves or an approval tag appears: stats only, no git, no lock.

        A prompt's own tags are `approvals.key(name)`; this covers the branch (its ref file, HEAD,
        packed-refs, a reftable) and a first tag of a new prompt (the tags folder itself).
        """
        common = self.history.common
        head = stat_key(os.path.join(self.history.gitdir, "HEAD"))
        refname = self.history.refname
        if refname is None:
            cached = self._head_ref
            if cached is None or cached[0] != head:
                cached = self._head_ref = (head, self._read_head_ref())
            refname = cached[1]
        if self._reftable:  # every ref update rewrites the stacks' tables.list (a linked worktree has its own)
            return (reftable_key(self.history.gitdir, common),)
        return (head, stat_key(os.path.join(common, refname)) if refname else None,
                stat_key(os.path.join(common, "packed-refs")),
                stat_key(os.path.join(common, "refs", "tags", "prompts")))

    def _read_head_ref(self) -> str | None:
        try:
            with open(os.path.join(self.history.gitdir, "HEAD"), "rb") as handle:
                data = handle.read().strip().decode(errors="replace")
        except OSError:
            return None
        return data[4:].strip() if data.startswith("ref:") else None

    def head_commit(self) -> str | None:
        """The serving branch's newest commit (None in a repository without commits)."""
        with self._lock:
            return self.history.head()

    def refresh(self) -> None:
        """Forget every cached answer (the next call re-reads refs, tags, labels and history)."""
        with self._lock:
            self.history.forget()
            self.approvals.forget()
            self._versions.clear()
            self._labels.clear()
            self._signers.clear()
            self.resolver.forget()

    def forget_labels(self) -> None:
        with self._lock:
            self._labels.clear()
            self._versions.clear()
            self.resolver.forget()

    # -- versions -----------------------------------------------------------------------------------

    def snapshot(self, head: str | None) -> Snapshot:
        """The history ending at `head`; answers derived from an older one are dropped when it changes."""
        snap, rebuilt = self.history.at(head)
        if rebuilt:
            self._versions.clear()
            self.resolver.forget()
        return snap

    def line(self, name: str, head: str | None) -> Line:
        return self.snapshot(head).line(name)

    def versions_at(self, name: str, head: str | None) -> list[Version]:
        """Every version of `name` on the history ending at `head`, with approvals and labels."""
        key = (head, name, self.approvals.key(name))  # taken first: a tag made meanwhile makes it stale
        marks = self.approvals.of(name)
        line = self.line(name, head)
        found = self._versions.get(key)
        if found is not None:
            return found
        commits = self.snapshot(head).commits
        labels = self.labels_at(head)
        found = []
        for number, index, blob in line.versions:
            sha, author, email, date, subject = commits[index]
            tagged = marks.approved.get(number) == sha
            revoked = tagged and marks.revoked.get(number) == sha
            approved = tagged and not revoked
            if approved and self.signed_approvals:
                approved = self.approvals.signature(marks.objects[number], self.signers_at(head)).state == "good"
            found.append(Version(name, number, sha, blob, author, email, date, subject, approved,
                                 f"prompts/{name}/v{number}" if tagged else None, revoked,
                                 labels.labels_of(name, number)))
        self._versions[key] = found
        return found

    def versions(self, name: str) -> list[Version]:
        """Every version of `name` on the serving branch, oldest first (v1 first)."""
        check_name(name)
        with self._lock:
            return list(self.versions_at(name, self.history.head()))

    def names(self) -> list[str]:
        """Prompts present in the serving branch's newest commit, sorted."""
        with self._lock:
            return self.snapshot(self.history.head()).names()

    def relpath(self, name: str) -> str:
        """The prompt's path as git knows it."""
        return f"{self.prompts_dir}/{check_name(name)}.json"

    def load(self, version: Version) -> Prompt:
        """The prompt as committed in `version` (read from the git object, validated)."""
        key = (version.name, version.blob)
        prompt = self._prompts.get(key)
        if prompt is None:
            data = self.git.read_blobs([version.blob])[version.blob]
            prompt = load_prompt_bytes(data, version.name, f"{self.relpath(version.name)}@{version.short}")
            if len(self._prompts) > MAX_PROMPTS_CACHED:
                self._prompts.clear()
            self._prompts[key] = prompt
        return prompt

    def preload(self, versions: list[Version]) -> list[Problem]:
        """Load many versions with one `git cat-file` (see `load`); the problems of those that do not validate."""
        missing = sorted({v.blob for v in versions if (v.name, v.blob) not in self._prompts})
        blobs = self.git.read_blobs(missing) if missing else {}
        problems: list[Problem] = []
        for version in versions:
            key = (version.name, version.blob)
            if key in self._prompts or version.blob not in blobs:
                continue
            try:
                self._prompts[key] = load_prompt_bytes(blobs[version.blob], version.name,
                                                       f"{self.relpath(version.name)}@{version.short}")
            except PromptInvalid as exc:
                problems += exc.problems
        return problems

    def draft(self, name: str) -> Resolved:
        """The working-tree file of `name`, validated."""
        from promptops.store.workspace import Workspace

        prompt = Workspace(self.repo, self.prompts_dir).load(name)
        return Resolved(name, prompt, None, True, None, False)

    def resolve(self, ref: str, *, default: Default = "approved", serve_drafts: bool = False,
                at: str | None = None) -> Resolved:
        """Resolve `NAME` or `NAME@SELECTOR` (see promptops.refs) to a prompt and its version.

        A bare name means `default`; "approved" is the `production` label when the prompt has
        one, else the newest approved version. `NAME@LABEL` is the version that label points at.
        `@draft` (the working-tree file) is allowed only when default is "draft" (CLI authors) or
        `serve_drafts` is set. `at` resolves as of that commit of the serving branch instead of
        its newest (the gateway's last good head while the newest does not validate).
        """
        with self._lock:
            return self.resolver.resolve(ref, default, serve_drafts, at)

    # -- labels -------------------------------------------------------------------------------------

    def labels_at(self, commit: str | None) -> Labels:
        """The labels file as committed at `commit` (no file: no labels); invalid -> PromptInvalid."""
        found = self._labels.get(commit)
        if found is None:
            snap = self.snapshot(commit) if commit is not None and commit == self.history.head() else None
            if snap is not None:
                data = snap.labels
            else:
                data = self.git.read_optional([f"{commit}:{self.labels_relpath}"])[0] if commit else None
            labels, problems = parse(data, f"{self.labels_relpath}@{(commit or '')[:7]}")
            if labels is None:
                raise PromptInvalid(problems)
            if len(self._labels) > 8:
                self._labels.clear()
            found = self._labels[commit] = labels
        return found

    def signers_at(self, commit: str | None) -> bytes | None:
        """The allowed-signers file committed at `commit` (who may sign approvals), None when absent."""
        if commit not in self._signers:
            self._signers[commit] = self.git.read_optional([f"{commit}:{self.signers_relpath}"])[0] if commit else None
        return self._signers[commit]

    def signature(self, version: Version) -> Signature | None:
        """The approval tag's signature state against the serving head's allowed signers (None: no tag)."""
        with self._lock:
            obj = self.approvals.of(version.name).objects.get(version.number)
            if obj is None or version.tag is None:
                return None
            return self.approvals.signature(obj, self.signers_at(self.history.head()))

    def labels(self) -> Labels:
        """The labels the serving branch's newest commit holds."""
        with self._lock:
            return self.labels_at(self.history.head())

    def check_labels(self, data: bytes | None, file: str) -> list[Problem]:
        """Every problem of a labels file's bytes: syntax, schema, names, unknown prompts and versions, policy."""
        labels, problems = parse(data, file)
        if labels is None or data is None:
            return problems
        with self._lock:
            return check_policy(labels, file, data.decode("utf-8"), self.versions)

    def label_history(self, name: str, label: str) -> list[tuple[str, int | None]]:
        """(commit, version) each time `label` of `name` moved on the serving branch, oldest first."""
        with self._lock:
            return releases.label_history(self, check_name(name), label)

    def label_events(self, name: str, label: str) -> list[LabelEvent]:
        """`label_history` with each move's author and date, from the cached first-parent history."""
        with self._lock:
            snap = self.snapshot(self.history.head())
            where = snap.index()
            events = []
            for commit, version in releases.label_history(self, check_name(name), label):
                _, author, _, date, _ = snap.commits[where[commit]] if commit in where else ("", "", "", "", "")
                events.append(LabelEvent(commit, version, author, date))
            return events

    def promote(self, ref: str, label: str, *, commit: bool = False, canary: float | None = None,
                author: tuple[str, str] | None = None, message: str | None = None) -> LabelChange:
        """Point `label` at the version `ref` names, in the working-tree labels file or (commit) as a commit.

        With `canary` (a percentage, 0 < canary < 100) the version becomes the label's canary, served to
        that share of sticky keys, and the label's own version stays; without it a running canary ends
        (finished when `ref` is the canary's version, dropped otherwise). See promptops.store.releases.
        """
        return releases.promote(self, ref, label, commit=commit, canary=canary, author=author, message=message)

    def rollback(self, name: str, label: str = "production", *, commit: bool = False,
                 author: tuple[str, str] | None = None) -> LabelChange:
        """End the label's canary when one runs (its own version stays), else move `label` back to the version
        it pointed to before its last move."""
        return releases.rollback(self, check_name(name), label, commit=commit, author=author)

    # -- approvals ----------------------------------------------------------------------------------

    def _pick(self, name: str, version: int | None, head: str | None) -> Version:
        versions = self.versions_at(name, head)
        if not versions:
            raise self.resolver.not_found(name)
        if version is None:
            line = self.line(name, head)
            if not line.alive:
                raise self.resolver.deleted(name, line, head)
            self._check_clean(name, versions[-1])
            return versions[-1]
        if not 1 <= version <= len(versions):
            raise VersionNotFound(f"prompt '{name}' has no version {version} (the newest is {len(versions)})",
                                  fix=f"list versions with `promptops log {name}`")
        return versions[version - 1]

    def approve(self, name: str, version: int | None = None, message: str | None = None,
                sign: bool = False, approver: tuple[str, str] | None = None) -> tuple[Version, bool]:
        """Tag version `version` (default: the newest) as approved; returns (version, created).

        With no version, a working-tree file that differs from the newest commit is refused.
        `approver` is who approves (default: git's identity); the four-eyes policy refuses the author.
        """
        check_name(name)
        with self.locked():
            self.refresh()
            head = self.history.head()
            target = self._pick(name, version, head)
            if target.revoked:
                raise Refused(f"the approval of {name} v{target.number} was revoked",
                                 fix="a revocation is final: commit a fixed version and approve that")
            if target.approved:
                return target, False
            if target.tag is not None and self.signed_approvals:
                raise Refused(f"{target.tag} exists but its signature does not verify "
                                 f"({self.signature(target)}) against {self.signers_relpath}",
                                 fix=f"re-sign it: `git tag -d {target.tag}` then `promptops approve {name} "
                                     f"--version {target.number} --sign` with a key listed in {self.signers_relpath}")
            self.load(target)  # an invalid prompt is never approved
            self.approvals.approve(target, message, sign, approver, self.four_eyes)
            self.refresh()
            return self.versions_at(name, head)[target.number - 1], True

    def revoke(self, name: str, version: int, reason: str, actor: tuple[str, str] | None = None) -> Version:
        """Revoke the approval of `version` (a tag next to it; history is not rewritten)."""
        check_name(name)
        with self.locked():
            self.refresh()
            head = self.history.head()
            target = self._pick(name, version, head)
            if not target.approved:
                state = "was already revoked" if target.revoked else "is not approved"
                raise Refused(f"{name} v{target.number} {state}", fix=f"see `promptops log {name}`")
            self.approvals.revoke(target, reason, actor)
            self.refresh()
            return self.versions_at(name, head)[target.number - 1]

    def _check_clean(self, name: str, newest: Version) -> None:
        try:
            data = Path(self.repo, self.relpath(name)).read_bytes()
        except FileNotFoundError:
            data = None
        if data is None or blob_sha(data, len(newest.blob)) != newest.blob:
            raise Refused(f"prompt {name} has uncommitted changes",
                             fix=f"commit {self.relpath(name)} first, or approve a committed version with --version N")

    # -- status -------------------------------------------------------------------------------------

    def status(self) -> list[PromptStatus]:
        """Every prompt committed on the branch or present in the working tree, with its state and labels."""
        from promptops.store.workspace import Workspace

        with self._lock:
            head = self.history.head()
            committed = set(self.snapshot(head).names())
            on_disk = {n for n in Workspace(self.repo, self.prompts_dir).names() if is_valid_name(n)}
            labels = self.labels_at(head)
            rows = []
            for name in sorted(committed | on_disk):
                versions = self.versions_at(name, head) if name in committed else []
                newest = versions[-1] if versions else None
                approved = next((v for v in reversed(versions) if v.approved), None)
                dirty = False
                if newest is not None:
                    path = Path(self.repo, self.relpath(name))
                    dirty = not path.exists() or blob_sha(path.read_bytes(), len(newest.blob)) != newest.blob
                targets = {label: versions[n - 1] if 0 < n <= len(versions) else None
                           for label, n in sorted(labels.of(name).items())}
                tagged = next((v for v in reversed(versions) if v.tag and not v.revoked), None)
                rows.append(PromptStatus(name, newest, approved, dirty, name not in committed, targets, tagged))
            return rows

    # -- saves --------------------------------------------------------------------------------------

    def save(self, name: str, text: str, *, base_commit: str | None, author_name: str, author_email: str,
             message: str) -> Version:
        """Validate and commit `text` as the next version of `name`, if `base_commit` is still the newest.

        `base_commit` is the commit of the version the editor started from (None for a new
        prompt); if another save got there first, Conflict says which version is current.
        Only this prompt's path is committed; other staged changes are left alone. On the
        checked-out branch the file and its index entry follow the commit; where git's index
        cannot be updated (a stale `.git/index.lock`), StoreError and nothing is committed.
        """
        check_name(name)
        relpath = self.relpath(name)
        data = encode_text(text, relpath)
        load_prompt_bytes(data, name, relpath)
        check_identity(author_name, author_email)
        with self.locked():
            self.refresh()
            head = self.history.head()
            versions = self.versions_at(name, head)
            current = versions[-1] if versions and self.line(name, head).alive else None
            if (current.commit if current else None) != base_commit:
                raise Conflict(
                    f"prompt '{name}' changed since you started editing: the newest is "
                    + (f"version {current.number} ({current.short})" if current else "no version (it was deleted)"),
                    fix="reload the prompt, re-apply your edit and save again",
                    current_version=current.number if current else None,
                    current_commit=current.commit if current else None)
            if current is not None and blob_sha(data, len(current.blob)) == current.blob:
                return current
            on_checkout = self.history.refname is None or self.git.checked_out() == self.history.refname
            ref = self.history.refname or "HEAD"
            # Checked out: git's index lock is taken before anything is written and held to the end, so the
            # index checked for drafts is the one replaced, and one git cannot update fails uncommitted.
            with IndexLock(self.git, self.repo) if on_checkout else contextlib.nullcontext() as index:
                if index is not None:
                    self._refuse_overwriting_a_draft(relpath, current, data, len(head or "") or 40)
                commit_file(self.git, self.history.gitdir, ref, relpath, data, head, author=author_name,
                            email=author_email, message=message or f"Update prompt {name}", index=index)
            self.refresh()
            return self.versions_at(name, self.history.head())[-1]

    def _refuse_overwriting_a_draft(self, relpath: str, current: Version | None, data: bytes, length: int) -> None:
        """Conflict when the checked-out file or its index entry holds edits that are not committed.

        A save updates the working tree to the new version; doing so over someone's uncommitted
        edit would lose it, so the save is refused and nothing is written.
        """
        expected = current.blob if current else None
        wanted = blob_sha(data, length)
        try:
            on_disk: str | None = blob_sha(Path(self.repo, relpath).read_bytes(), length)
        except FileNotFoundError:
            on_disk = None if current is None else "deleted"
        staged = self.git.run("ls-files", "--stage", "--", relpath).decode().split()
        in_index = staged[1] if len(staged) >= 2 else None
        for state, found in (("uncommitted changes in the working tree", on_disk), ("staged changes", in_index)):
            if found not in (expected, wanted) and not (found is None and state == "staged changes"
                                                        and expected is None):
                raise Conflict(f"{relpath} has {state}; saving would overwrite them",
                               fix=f"commit them (`git commit {relpath}`) or stash them (`git stash push "
                                   f"{relpath}`), then reload and save again; nothing was written",
                               current_version=current.number if current else None,
                               current_commit=current.commit if current else None)

    # -- changes ------------------------------------------------------------------------------------

    def changes(self, base: str, head: str) -> list[Change]:
        """Prompt files added, removed or modified between two commits (tags, branches or SHAs)."""
        return _changes.prompt_changes(self, base, head)

    def label_moves(self, base: str, head: str) -> list[LabelMove]:
        """Labels whose target differs between two commits."""
        with self._lock:
            return _changes.label_moves(self, base, head)


def open_store(settings: Settings) -> PromptStore:
    """The store for these settings (repository, prompts directory, serving branch)."""
    return PromptStore(settings.repo, settings.prompts_dir, settings.branch,
                       signed_approvals=settings.signed_approvals, four_eyes=settings.four_eyes)


__all__ = ["EMPTY", "SERVING_LABEL", "Change", "LabelChange", "LabelEvent", "LabelMove", "Labels", "PromptInvalid",
           "PromptStatus", "PromptStore", "Resolved", "Signature", "Version", "open_store", "parse_ref"]
