"""Version numbering: every prompt's history on one branch, from one `git log --first-parent` pass.

A *version* of prompt NAME is a commit on the first-parent history of the serving
branch that changed the content (the blob) of ``<prompts_dir>/NAME.json``. Versions
are numbered 1..N, oldest first. Deleting the file ends the line; adding it back
later continues the numbering; a revert that restores old content is a new version;
a mode-only change is not a version. Renames are not followed.

The pass is kept in memory and on disk (``.git/promptops/``), keyed by the branch
head's SHA, and extended incrementally when the branch only moved forward. The
branch head itself is read from the ref files, so a warm lookup runs no subprocess; a
reftable repository has no ref files, so there git reads it, once per ref update.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptops.errors import StoreError
from promptops.files import atomic_write
from promptops.prompt.names import NAME_PATTERN, check_name
from promptops.store.git import Git, reftable_key, uses_reftable
from promptops.store.refs import check_selector

HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_LOG_FORMAT = "%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%s"
_CACHE_VERSION = 2
FILE_MODES = ("100644", "100755")
UNSHALLOW_FIX = "fetch full history (actions/checkout with fetch-depth: 0, or `git fetch --unshallow`)"


@dataclass
class Line:
    """One prompt's history on the branch: versions and the commit indexes where it changed."""

    versions: list[tuple[int, int, str]]  # (number, commit index, blob)
    event_index: list[int]  # commit indexes of every version or deletion, ascending
    event_number: list[int]  # the version from that index on; 0 = deleted

    @property
    def alive(self) -> bool:
        return bool(self.event_number) and self.event_number[-1] != 0


@dataclass
class Snapshot:
    """Every first-parent commit (oldest first) and, per prompt file, its (commit index, blob|None) changes."""

    head: str | None
    commits: list[list[str]] = field(default_factory=list)  # [sha, author, email, date, subject]
    changes: dict[str, list[list[Any]]] = field(default_factory=dict)
    lines: dict[str, Line] = field(default_factory=dict)
    labels: bytes | None = None  # the labels file at `head` (None: absent), cached with the history
    _index: dict[str, int] | None = None

    def index(self) -> dict[str, int]:
        """Commit SHA -> position (built on first use: only SHA and tag refs need it)."""
        if self._index is None:
            self._index = {c[0]: i for i, c in enumerate(self.commits)}
        return self._index

    def line(self, name: str) -> Line:
        found = self.lines.get(name)
        if found is None:
            found = self.lines[name] = _build_line(self.changes.get(name, []))
        return found

    def names(self) -> list[str]:
        """Prompts present at this head, sorted."""
        return sorted(n for n in self.changes if is_valid_name(n) and self.line(n).alive)


def _build_line(changes: Sequence[Sequence[Any]]) -> Line:
    line = Line([], [], [])
    current: str | None = None
    number = 0
    for index, blob in changes:
        if blob is None:
            if current is not None:
                line.event_index.append(index)
                line.event_number.append(0)
            current = None
        elif blob != current:
            number += 1
            current = blob
            line.versions.append((number, index, blob))
            line.event_index.append(index)
            line.event_number.append(number)
    return line


def stat_key(path: str) -> tuple[int, int, int] | None:
    """(mtime, size, inode) of a file, None when absent: a change detector for ref files."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def blob_sha(data: bytes, length: int) -> str:
    """The git object id of `data` as a blob (sha1, or sha256 in sha256 repositories)."""
    header = b"blob %d\0" % len(data)
    return (hashlib.sha1 if length == 40 else hashlib.sha256)(header + data).hexdigest()


def is_valid_name(name: str) -> bool:
    """True when `name` may name a prompt (files with other names are ignored by the history)."""
    if not NAME_PATTERN.fullmatch(name):
        return False
    try:
        check_name(name)
    except Exception:
        return False
    return True


class History:
    """The serving branch of one repository: its head (read from ref files) and its prompts' histories."""

    def __init__(self, repo: Path, git: Git, prompts_dir: str, branch: str | None, labels_file: str) -> None:
        self.repo = repo
        self.git = git
        self.prompts_dir = prompts_dir
        self.labels_file = labels_file
        if (repo / ".git").is_dir():  # the usual case; skip a subprocess on every command
            self.gitdir = self.common = str((repo / ".git").resolve())
        else:  # a linked worktree or submodule: .git is a file pointing elsewhere
            git_dir, common_dir = git.run("rev-parse", "--git-dir", "--git-common-dir").decode().splitlines()
            self.gitdir = str((repo / git_dir).resolve())
            self.common = str((repo / common_dir).resolve())
        self.branch = branch
        self.refname = self._branch_ref(branch) if branch else None
        self._snapshot: Snapshot | None = None
        self._packed: tuple[tuple[int, int, int] | None, dict[str, str]] = (None, {})
        # Checked here, on forget() and when a ref file is missing (`git refs migrate` converts in place).
        self.reftable = uses_reftable(self.common)
        self._reftable_head: tuple[bytes, str | None] | None = None

    def _branch_ref(self, branch: str) -> str:
        check_selector(branch)
        out = self.git.run("rev-parse", "--verify", "--quiet", "--symbolic-full-name", "--end-of-options", branch,
                           check=False).decode().strip()
        if not out.startswith(("refs/heads/", "refs/remotes/")):
            raise StoreError(f"no branch named '{branch}' in {self.repo}",
                             fix="pass an existing branch (see `git branch --all`) or omit it to serve HEAD")
        return out

    # -- the branch head, from ref files ------------------------------------------------------------

    def packed_refs(self) -> dict[str, str]:
        path = os.path.join(self.common, "packed-refs")
        key = stat_key(path)
        if key != self._packed[0]:
            refs: dict[str, str] = {}
            if key is not None:
                with open(path, "rb") as handle:
                    for raw in handle.read().decode(errors="replace").splitlines():
                        if raw and raw[0] not in "#^":
                            sha, _, ref = raw.partition(" ")
                            refs[ref] = sha
            self._packed = (key, refs)
        return self._packed[1]

    def head(self) -> str | None:
        """The serving branch's commit, read from the ref files (no subprocess on the hot path)."""
        if self.reftable:
            return self._head_from_reftable()
        refname = self.refname
        if refname is None:
            with open(os.path.join(self.gitdir, "HEAD"), "rb") as handle:
                data = handle.read().strip().decode(errors="replace")
            if not data.startswith("ref:"):
                return data if HEX.fullmatch(data) else self.git.rev_parse("HEAD")
            refname = data[4:].strip()
        try:
            with open(os.path.join(self.common, refname), "rb") as handle:
                data = handle.read().strip().decode(errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            found = self.packed_refs().get(refname)
            if found is None and uses_reftable(self.common):  # migrated since: only a stat on this rare path
                self.reftable = True
                return self._head_from_reftable()
            return found
        return data if HEX.fullmatch(data) else self.git.rev_parse(refname)

    def _head_from_reftable(self) -> str | None:
        """The serving branch's commit in a reftable repository: asked of git, kept until a ref changes.

        There `.git/HEAD` is a placeholder (`ref: refs/heads/.invalid`) and `refs/heads` a
        file, so the ref files above would say the repository is empty.
        """
        key = reftable_key(self.gitdir, self.common)  # taken first: an update meanwhile makes the answer stale
        cached = self._reftable_head
        if cached is None or cached[0] != key:
            cached = self._reftable_head = (key, self.git.rev_parse(self.refname or "HEAD"))
        return cached[1]

    # -- histories ----------------------------------------------------------------------------------

    def at(self, head: str | None) -> tuple[Snapshot, bool]:
        """The snapshot for `head` and whether it was rebuilt (callers drop what they derived from the old one)."""
        snap = self._snapshot
        if snap is not None and snap.head == head:
            return snap, False
        if os.path.exists(os.path.join(self.common, "shallow")):
            raise StoreError(f"{self.repo} is a shallow clone: prompt version numbers need the full history",
                             fix=UNSHALLOW_FIX)
        if head is None:
            snap = Snapshot(None)
        else:
            base = snap if snap is not None else self._load_cache()
            if base is not None and base.head == head:
                snap = base
            else:
                snap = (self._extend(base, head) if base is not None else None) or self._full(head)
                # Read with the history, so a warm command runs no git process for labels either.
                snap.labels = self.git.read_optional([f"{head}:{self.labels_file}"])[0]
                self._save_cache(snap)
        self._snapshot = snap
        return snap, True

    def forget(self) -> None:
        """Drop the in-memory snapshot (the disk cache stays valid: it is keyed by commit)."""
        self._snapshot = None
        self._reftable_head = None
        self.reftable = uses_reftable(self.common)

    def _log(self, rev: str) -> bytes:
        return self.git.run("log", "--first-parent", "--reverse", "--root", "--raw", "--no-renames", "--no-abbrev",
                            "-z", "--diff-merges=first-parent", "--no-color", f"--relative={self.prompts_dir}/",
                            f"--format={_LOG_FORMAT}", "--end-of-options", rev, "--")

    def _full(self, head: str) -> Snapshot:
        snap = Snapshot(head)
        self._parse_log(self._log(head), snap)
        return snap

    def _extend(self, base: Snapshot, head: str) -> Snapshot | None:
        """Append the commits since `base.head` if the branch only moved forward along its first parents."""
        if not HEX.fullmatch(base.head or "") or not self.git.ok("cat-file", "-e", f"{base.head}^{{commit}}"):
            return None
        snap = Snapshot(head, list(base.commits), {k: list(v) for k, v in base.changes.items()})
        first_parent = self._parse_log(self._log(f"{base.head}..{head}"), snap, offset=len(base.commits))
        return snap if first_parent == base.head else None

    @staticmethod
    def _parse_log(out: bytes, snap: Snapshot, offset: int = 0) -> str | None:
        """Fill `snap` from `git log -z --raw` output; return the first new commit's first parent."""
        first_parent: str | None = None
        tokens = out.split(b"\0")
        index = offset - 1
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if token.startswith(b"\x1e"):
                sha, parents, author, email, date, subject = token[1:].decode(errors="replace").split("\x1f", 5)
                # The cache stores rows joined with these separators, so they must not occur inside.
                subject = subject.replace("\x1e", " ").replace("\x1f", " ")
                snap.commits.append([sha, author, email, date, subject])
                index += 1
                if index == offset:
                    first_parent = parents.split(" ")[0] or None
            elif token.lstrip(b"\n").startswith(b":"):
                path = tokens[i].decode(errors="replace")
                i += 1
                meta = token.lstrip(b"\n")[1:].decode().split(" ")
                if "/" in path or not path.endswith(".json"):
                    continue
                blob = meta[3] if meta[1] in FILE_MODES and meta[4] != "D" else None
                snap.changes.setdefault(path[:-5], []).append([index, blob])
        return first_parent

    def _cache_path(self) -> str:
        key = hashlib.sha1(f"{self.refname or 'HEAD'}\0{self.prompts_dir}".encode()).hexdigest()[:16]
        return os.path.join(self.common, "promptops", f"history-{key}.json")

    def _load_cache(self) -> Snapshot | None:
        try:
            with open(self._cache_path(), "rb") as handle:
                data = json.loads(handle.read())
            if data.get("version") != _CACHE_VERSION or data.get("prompts_dir") != self.prompts_dir:
                return None
            commits = [row.split("\x1f") for row in data["commits"].split("\x1e")] if data["commits"] else []
            text = data["labels"]
            labels = text.encode("utf-8", errors="surrogateescape") if isinstance(text, str) else None
            return Snapshot(data["head"], commits, data["changes"], labels=labels)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a missing or damaged cache is rebuilt, never trusted

    def _save_cache(self, snap: Snapshot) -> None:
        data = {"version": _CACHE_VERSION, "prompts_dir": self.prompts_dir, "head": snap.head,
                # One string, not 10,000 lists: it parses several times faster.
                "commits": "\x1e".join("\x1f".join(c) for c in snap.commits), "changes": snap.changes,
                "labels": snap.labels.decode("utf-8", errors="surrogateescape") if snap.labels is not None else None}
        with contextlib.suppress(OSError):  # a read-only .git still works, just slower
            atomic_write(Path(self._cache_path()), json.dumps(data, separators=(",", ":")).encode())
