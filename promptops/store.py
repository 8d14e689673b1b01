"""Git-backed prompt versions, references, approvals and saves.

A *version* of prompt NAME is a commit on the first-parent history of the serving
branch that changed the content (the blob) of ``<prompts_dir>/NAME.json``. Versions
are numbered 1..N, oldest first. Deleting the file ends the line; adding it back
later continues the numbering; a revert that restores old content is a new version;
a mode-only change is not a version. Renames are not followed: ``git mv a.json
b.json`` deletes prompt ``a`` and creates prompt ``b`` (whose history starts at v1).

Content is always read from git objects, never from the working tree (except for
``@draft``). An approval is an annotated tag ``prompts/NAME/vN`` on the version's
commit.

Speed: all prompts' histories come from ONE ``git log --first-parent --raw`` pass per
branch head, kept in memory and on disk (``.git/promptops/``) and extended
incrementally when the branch moves forward. Reads run ``git`` directly (no GitPython
import, which alone costs more than ``promptops log`` may take); writes (approve,
save) go through GitPython. A warm ``resolve()`` re-reads only the branch ref and
stats two tag paths, so it costs microseconds.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from promptops.errors import (
    Conflict,
    NotApproved,
    PromptInvalid,
    PromptNotFound,
    RefError,
    StoreError,
    VersionNotFound,
)
from promptops.names import NAME_PATTERN, check_name
from promptops.prompt import Prompt
from promptops.refs import check_selector, parse_ref
from promptops.schema import check_bytes, encode_text, load_prompt_bytes
from promptops.workspace import atomic_write

if TYPE_CHECKING:
    from promptops.settings import Settings

Default = Literal["approved", "head", "draft"]
_HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_LOG_FORMAT = "%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%s"
_CACHE_VERSION = 1
_FILE_MODES = ("100644", "100755")
UNSHALLOW_FIX = "fetch full history (actions/checkout with fetch-depth: 0, or `git fetch --unshallow`)"


@dataclass(frozen=True)
class Version:
    """One version of a prompt: the commit that introduced its content, and whether it is approved."""

    name: str
    number: int
    commit: str
    blob: str
    author: str
    email: str
    date: str
    message: str
    approved: bool = False
    tag: str | None = None

    @property
    def short(self) -> str:
        """The commit's first 7 hex digits."""
        return self.commit[:7]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with stable keys."""
        return {"name": self.name, "version": self.number, "commit": self.commit, "blob": self.blob,
                "author": self.author, "email": self.email, "date": self.date, "message": self.message,
                "approved": self.approved, "tag": self.tag}


@dataclass(frozen=True)
class Resolved:
    """What a reference resolved to: the prompt, and the version it came from (None for a draft)."""

    name: str
    prompt: Prompt
    version: Version | None
    draft: bool
    commit: str | None
    approved: bool


@dataclass(frozen=True)
class PromptStatus:
    """A prompt's newest and approved versions and the state of its working-tree file."""

    name: str
    newest: Version | None
    approved: Version | None
    dirty: bool
    untracked: bool


@dataclass(frozen=True)
class Change:
    """A prompt file that differs between two commits; prompts are None where the bytes are absent or invalid."""

    name: str
    status: Literal["added", "removed", "modified"]
    old: Prompt | None
    new: Prompt | None
    old_bytes: bytes | None
    new_bytes: bytes | None


@dataclass
class _Line:
    """One prompt's history on the branch: versions and the commit indexes where it changed."""

    versions: list[tuple[int, int, str]]  # (number, commit index, blob)
    event_index: list[int]  # commit indexes of every version or deletion, ascending
    event_number: list[int]  # the version from that index on; 0 = deleted

    @property
    def alive(self) -> bool:
        return bool(self.event_number) and self.event_number[-1] != 0


@dataclass
class _History:
    """Every first-parent commit (oldest first) and, per prompt file, its (commit index, blob|None) changes."""

    head: str | None
    commits: list[list[str]] = field(default_factory=list)  # [sha, author, email, date, subject]
    changes: dict[str, list[list[Any]]] = field(default_factory=dict)
    lines: dict[str, _Line] = field(default_factory=dict)
    _index: dict[str, int] | None = None

    def index(self) -> dict[str, int]:
        """Commit SHA -> position (built on first use: only SHA and tag refs need it)."""
        if self._index is None:
            self._index = {c[0]: i for i, c in enumerate(self.commits)}
        return self._index

    def line(self, name: str) -> _Line:
        found = self.lines.get(name)
        if found is None:
            found = self.lines[name] = _build_line(self.changes.get(name, []))
        return found


def _build_line(changes: Sequence[Sequence[Any]]) -> _Line:
    line = _Line([], [], [])
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


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _blob_sha(data: bytes, length: int) -> str:
    """The git object id of `data` as a blob (sha1, or sha256 in sha256 repositories)."""
    header = b"blob %d\0" % len(data)
    return (hashlib.sha1 if length == 40 else hashlib.sha256)(header + data).hexdigest()


def _is_valid_name(name: str) -> bool:
    if not NAME_PATTERN.fullmatch(name):
        return False
    try:
        check_name(name)
    except Exception:
        return False
    return True


def _now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


class PromptStore:
    """Prompt versions on one branch of a git repository (default: whatever HEAD points at).

    Renames are not followed: a renamed file is a new prompt whose history starts at v1,
    and the old name's line ends with the rename commit.
    """

    def __init__(self, repo: Path, prompts_dir: str = "prompts", branch: str | None = None) -> None:
        self.repo = Path(repo)
        if not (self.repo / ".git").exists():
            raise StoreError(f"not a git repository: {self.repo}", fix="run `git init` or pass --repo")
        self.prompts_dir = self._check_dir(prompts_dir)
        if (self.repo / ".git").is_dir():  # the usual case; skip a subprocess on every command
            self._gitdir = self._common = str((self.repo / ".git").resolve())
        else:  # a linked worktree or submodule: .git is a file pointing elsewhere
            git_dir, common_dir = self._git("rev-parse", "--git-dir", "--git-common-dir").decode().splitlines()
            self._gitdir = str((self.repo / git_dir).resolve())
            self._common = str((self.repo / common_dir).resolve())
        self.branch = branch
        self._refname = self._branch_ref(branch) if branch else None
        self._lock = threading.RLock()
        self._hist: _History | None = None
        self._head_key: tuple[Any, ...] | None = None
        self._head_sha: str | None = None
        self._packed: tuple[tuple[int, int, int] | None, dict[str, str]] = (None, {})
        self._tags: dict[str, dict[int, str]] | None = None
        self._tag_snapshot: dict[str, Any] = {}
        self._tag_packed: tuple[int, int, int] | None = None
        self._versions: dict[tuple[Any, ...], list[Version]] = {}
        self._memo: dict[tuple[Any, ...], tuple[tuple[Any, ...], Resolved]] = {}
        self._prompts: dict[tuple[str, str], Prompt] = {}

    # -- git plumbing -----------------------------------------------------------------------------

    @staticmethod
    def _check_dir(prompts_dir: str) -> str:
        parts = prompts_dir.strip("/").split("/")
        if not prompts_dir or any(p in ("", ".", "..") or p.startswith("-") for p in parts):
            raise StoreError(f"invalid prompts directory {prompts_dir!r}",
                             fix="use a relative path inside the repository, e.g. prompts")
        return "/".join(parts)

    def _git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
             check: bool = True) -> bytes:
        """Run git in the repository; failures become StoreError with git's own message."""
        result = subprocess.run(["git", "-c", "log.showSignature=false", *args], cwd=self.repo, input=input,
                                capture_output=True, env={**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0"})
        if check and result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            raise StoreError(f"git {args[0]} failed: {detail[-1] if detail else result.returncode}",
                             fix="check the repository with `git status`")
        return result.stdout if result.returncode == 0 else b""

    def _gitpython(self) -> Any:
        # Imported here: GitPython costs ~70 ms to import and only writes need it.
        import git

        return git.Repo(self.repo)

    def _branch_ref(self, branch: str) -> str:
        check_selector(branch)
        out = self._git("rev-parse", "--verify", "--quiet", "--symbolic-full-name", "--end-of-options", branch,
                        check=False).decode().strip()
        if not out.startswith(("refs/heads/", "refs/remotes/")):
            raise StoreError(f"no branch named '{branch}' in {self.repo}",
                             fix="pass an existing branch (see `git branch --all`) or omit it to serve HEAD")
        return out

    def _packed_refs(self) -> dict[str, str]:
        path = os.path.join(self._common, "packed-refs")
        key = _stat(path)
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

    def _read_head(self) -> str | None:
        """The serving branch's commit, read from the ref files (no subprocess on the hot path)."""
        refname = self._refname
        if refname is None:
            with open(os.path.join(self._gitdir, "HEAD"), "rb") as handle:
                data = handle.read().strip().decode(errors="replace")
            if not data.startswith("ref:"):
                return data if _HEX.fullmatch(data) else self._rev_parse("HEAD")
            refname = data[4:].strip()
        try:
            with open(os.path.join(self._common, refname), "rb") as handle:
                data = handle.read().strip().decode(errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return self._packed_refs().get(refname)
        return data if _HEX.fullmatch(data) else self._rev_parse(refname)

    def _rev_parse(self, rev: str) -> str | None:
        out = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        return out.decode().strip() or None

    def head_commit(self) -> str | None:
        """The serving branch's newest commit (None in a repository without commits)."""
        with self._lock:
            return self._read_head()

    # -- history ----------------------------------------------------------------------------------

    def _history(self, head: str | None) -> _History:
        hist = self._hist
        if hist is not None and hist.head == head:
            return hist
        if os.path.exists(os.path.join(self._common, "shallow")):
            raise StoreError(f"{self.repo} is a shallow clone: prompt version numbers need the full history",
                             fix=UNSHALLOW_FIX)
        if head is None:
            hist = _History(None)
        else:
            base = hist if hist is not None else self._load_cache()
            if base is not None and base.head == head:
                hist = base
            else:
                hist = (self._extend(base, head) if base is not None else None) or self._full(head)
                self._save_cache(hist)
        self._hist = hist
        self._versions.clear()
        self._memo.clear()
        return hist

    def _log(self, rev: str) -> bytes:
        return self._git("log", "--first-parent", "--reverse", "--root", "--raw", "--no-renames", "--no-abbrev",
                         "-z", "--diff-merges=first-parent", "--no-color", f"--relative={self.prompts_dir}/",
                         f"--format={_LOG_FORMAT}", "--end-of-options", rev, "--")

    def _full(self, head: str) -> _History:
        hist = _History(head)
        self._parse_log(self._log(head), hist)
        return hist

    def _extend(self, base: _History, head: str) -> _History | None:
        """Append the commits since `base.head` if the branch only moved forward along its first parents."""
        if not _HEX.fullmatch(base.head or ""):
            return None
        result = subprocess.run(["git", "cat-file", "-e", f"{base.head}^{{commit}}"], cwd=self.repo,
                                capture_output=True)
        if result.returncode != 0:
            return None
        hist = _History(head, list(base.commits), {k: list(v) for k, v in base.changes.items()})
        first_parent = self._parse_log(self._log(f"{base.head}..{head}"), hist, offset=len(base.commits))
        return hist if first_parent == base.head else None

    def _parse_log(self, out: bytes, hist: _History, offset: int = 0) -> str | None:
        """Fill `hist` from `git log -z --raw` output; return the first new commit's first parent."""
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
                hist.commits.append([sha, author, email, date, subject])
                index += 1
                if index == offset:
                    first_parent = parents.split(" ")[0] or None
            elif token.lstrip(b"\n").startswith(b":"):
                path = tokens[i].decode(errors="replace")
                i += 1
                meta = token.lstrip(b"\n")[1:].decode().split(" ")
                if "/" in path or not path.endswith(".json"):
                    continue
                blob = meta[3] if meta[1] in _FILE_MODES and meta[4] != "D" else None
                hist.changes.setdefault(path[:-5], []).append([index, blob])
        return first_parent

    def _cache_path(self) -> str:
        key = hashlib.sha1(f"{self._refname or 'HEAD'}\0{self.prompts_dir}".encode()).hexdigest()[:16]
        return os.path.join(self._common, "promptops", f"history-{key}.json")

    def _load_cache(self) -> _History | None:
        try:
            with open(self._cache_path(), "rb") as handle:
                data = json.loads(handle.read())
            if data.get("version") != _CACHE_VERSION or data.get("prompts_dir") != self.prompts_dir:
                return None
            commits = [row.split("\x1f") for row in data["commits"].split("\x1e")] if data["commits"] else []
            return _History(data["head"], commits, data["changes"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a missing or damaged cache is rebuilt, never trusted

    def _save_cache(self, hist: _History) -> None:
        data = {"version": _CACHE_VERSION, "prompts_dir": self.prompts_dir, "head": hist.head,
                # One string, not 10,000 lists: it parses several times faster.
                "commits": "\x1e".join("\x1f".join(c) for c in hist.commits), "changes": hist.changes}
        with contextlib.suppress(OSError):  # a read-only .git still works, just slower
            atomic_write(Path(self._cache_path()), json.dumps(data, separators=(",", ":")).encode())

    # -- tags -------------------------------------------------------------------------------------

    def _tag_key(self, name: str) -> tuple[Any, ...]:
        return (_stat(os.path.join(self._common, "packed-refs")),
                _stat(os.path.join(self._common, "refs", "tags", "prompts", name)))

    def _tags_for(self, name: str) -> dict[int, str]:
        """Approval tags of `name`: version number -> the commit the tag points at."""
        key = self._tag_key(name)
        if self._tags is None or self._tag_snapshot.get(name, (self._tag_packed, None)) != key:
            self._load_tags()
        return self._tags.get(name, {}) if self._tags is not None else {}

    def _load_tags(self) -> None:
        root = os.path.join(self._common, "refs", "tags", "prompts")
        # Snapshot before reading, so a tag created meanwhile makes the snapshot stale, not the data.
        snapshot: dict[str, Any] = {}
        with contextlib.suppress(OSError):
            for entry in os.scandir(root):
                snapshot[entry.name] = self._tag_key(entry.name)
        packed = _stat(os.path.join(self._common, "packed-refs"))
        out = self._git("for-each-ref", "--format=%(refname)%00%(objecttype)%00%(*objectname)",
                        "refs/tags/prompts/").decode(errors="replace")
        tags: dict[str, dict[int, str]] = {}
        for row in out.splitlines():
            ref, kind, target = row.split("\0")
            parts = ref.split("/")
            if kind == "tag" and len(parts) == 5 and re.fullmatch(r"v[1-9][0-9]*", parts[4]):
                tags.setdefault(parts[3], {})[int(parts[4][1:])] = target
        for name in tags:
            snapshot.setdefault(name, (packed, None))
        self._tag_snapshot = snapshot
        self._tag_packed = packed
        self._tags = tags
        self._versions.clear()
        self._memo.clear()

    def refresh(self) -> None:
        """Forget every cached answer (the next call re-reads refs, tags and history)."""
        with self._lock:
            self._hist, self._tags = None, None
            self._versions.clear()
            self._memo.clear()

    # -- versions ---------------------------------------------------------------------------------

    def _versions_of(self, name: str, head: str | None) -> list[Version]:
        key = (head, name, self._tag_key(name))  # taken first: a tag made meanwhile makes it stale
        tags = self._tags_for(name)
        found = self._versions.get(key)
        if found is not None:
            return found
        hist = self._history(head)
        found = []
        for number, index, blob in hist.line(name).versions:
            sha, author, email, date, subject = hist.commits[index]
            approved = tags.get(number) == sha
            found.append(Version(name, number, sha, blob, author, email, date, subject, approved,
                                 f"prompts/{name}/v{number}" if approved else None))
        self._versions[key] = found
        return found

    def versions(self, name: str) -> list[Version]:
        """Every version of `name` on the serving branch, oldest first (v1 first)."""
        check_name(name)
        with self._lock:
            return list(self._versions_of(name, self._read_head()))

    def names(self) -> list[str]:
        """Prompts present in the serving branch's newest commit, sorted."""
        with self._lock:
            hist = self._history(self._read_head())
            return sorted(n for n in hist.changes if _is_valid_name(n) and hist.line(n).alive)

    def relpath(self, name: str) -> str:
        """The prompt's path as git knows it."""
        return f"{self.prompts_dir}/{check_name(name)}.json"

    def _read_blobs(self, shas: Sequence[str]) -> dict[str, bytes]:
        if not shas:
            return {}
        out = self._git("cat-file", "--batch", input="".join(f"{s}\n" for s in shas).encode())
        blobs: dict[str, bytes] = {}
        pos = 0
        for sha in shas:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split()
            if header[-1] == "missing":
                raise StoreError(f"git object {sha} is missing", fix="run `git fsck` and fetch the repository again")
            size = int(header[2])
            blobs[sha] = out[end + 1:end + 1 + size]
            pos = end + 1 + size + 1
        return blobs

    def load(self, version: Version) -> Prompt:
        """The prompt as committed in `version` (read from the git object, validated)."""
        key = (version.name, version.blob)
        prompt = self._prompts.get(key)
        if prompt is None:
            data = self._read_blobs([version.blob])[version.blob]
            prompt = load_prompt_bytes(data, version.name, f"{self.relpath(version.name)}@{version.short}")
            if len(self._prompts) > 1024:
                self._prompts.clear()
            self._prompts[key] = prompt
        return prompt

    # -- resolve ----------------------------------------------------------------------------------

    def resolve(self, ref: str, *, default: Default = "approved", serve_drafts: bool = False) -> Resolved:
        """Resolve `NAME` or `NAME@SELECTOR` (see promptops.refs) to a prompt and its version.

        A bare name means `default`. `@draft` (the working-tree file) is allowed only when
        default is "draft" (CLI authors) or `serve_drafts` is set.
        """
        with self._lock:
            head = self._read_head()
            memo_key = (ref, default, serve_drafts)
            hit = self._memo.get(memo_key)
            if hit is not None and hit[0] == (head, *self._tag_key(hit[1].name)):
                return hit[1]
            parsed = parse_ref(ref)
            fresh = (head, *self._tag_key(parsed.name))
            kind = parsed.kind if parsed.selector is not None else default
            if kind == "draft":
                if default != "draft" and not serve_drafts:
                    raise RefError(f"'{parsed.name}@draft' is the working-tree file, which is not served",
                                   fix=f"use {parsed.name}@head or {parsed.name}@N, or enable serving drafts")
                return self._draft(parsed.name)
            resolved = self._resolve_committed(parsed.name, kind, parsed.selector, head)
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[memo_key] = (fresh, resolved)
            return resolved

    def _draft(self, name: str) -> Resolved:
        from promptops.workspace import Workspace

        prompt = Workspace(self.repo, self.prompts_dir).load(name)
        return Resolved(name, prompt, None, True, None, False)

    def _resolve_committed(self, name: str, kind: str, selector: int | str | None, head: str | None) -> Resolved:
        versions = self._versions_of(name, head)
        line = self._history(head).line(name)
        if not versions:
            raise self._not_found(name)
        if kind == "number":
            assert isinstance(selector, int)
            if selector > len(versions):
                raise VersionNotFound(f"prompt '{name}' has no version {selector} (the newest is {len(versions)})",
                                      fix=f"list versions with `promptops log {name}`")
            version = versions[selector - 1]
        elif kind in ("head", "approved"):
            if not line.alive:
                raise self._deleted(name, line)
            if kind == "head":
                version = versions[-1]
            else:
                approved = [v for v in versions if v.approved]
                if not approved:
                    raise NotApproved(f"prompt '{name}' has no approved version", fix=f"promptops approve {name}")
                version = approved[-1]
        else:
            assert isinstance(selector, str)
            version = self._version_at(name, selector, kind, versions, line, head)
        return Resolved(name, self.load(version), version, False, version.commit, version.approved)

    def _not_found(self, name: str) -> PromptNotFound:
        relpath = self.relpath(name)
        if os.path.exists(os.path.join(self.repo, relpath)):
            return PromptNotFound(f"prompt '{name}' has no committed versions",
                                  fix=f"commit {relpath} first (`git add {relpath} && git commit`)")
        return PromptNotFound(f"no prompt named '{name}' in {self.prompts_dir}/",
                              fix="list prompts with `promptops status`")

    def _deleted(self, name: str, line: _Line) -> PromptNotFound:
        commit = self._history(self._read_head()).commits[line.event_index[-1]][0]
        return PromptNotFound(f"prompt '{name}' was deleted in commit {commit[:7]}",
                              fix=f"restore {self.relpath(name)} or ask for an explicit version: {name}@N")

    def _commit_of(self, name: str, selector: str, kind: str) -> str:
        result = subprocess.run(["git", "rev-parse", "--verify", "--end-of-options", f"{selector}^{{commit}}"],
                                cwd=self.repo, capture_output=True)
        if result.returncode == 0:
            return result.stdout.decode().strip()
        if b"ambiguous" in result.stderr:
            raise RefError(f"short SHA '{selector}' in '{name}@{selector}' is ambiguous",
                           fix="use more hex digits of the commit SHA")
        what = "commit" if kind == "sha" else "tag, branch or commit"
        raise VersionNotFound(f"no {what} '{selector}' in this repository (in '{name}@{selector}')",
                              fix=f"list versions with `promptops log {name}`, or tags with `git tag --list`")

    def _version_at(self, name: str, selector: str, kind: str, versions: list[Version], line: _Line,
                    head: str | None) -> Version:
        commit = self._commit_of(name, selector, kind)
        hist = self._history(head)
        index = hist.index().get(commit)
        if index is None:
            # Not on the serving history (another branch, a merged side branch): match the content.
            data = self._git("rev-parse", "--verify", "--quiet", "--end-of-options",
                             f"{commit}:{self.relpath(name)}", check=False).decode().strip()
            matches = [v for v in versions if v.blob == data]
            if not matches:
                raise VersionNotFound(
                    f"'{selector}' is not on the history of {self.branch or 'HEAD'} and its "
                    f"{self.relpath(name)} matches no version of '{name}'",
                    fix=f"merge it first, or pick a version from `promptops log {name}`")
            return matches[-1]
        at = bisect.bisect_right(line.event_index, index) - 1
        if at < 0 or line.event_number[at] == 0:
            state = "did not exist yet" if at < 0 else "was deleted"
            raise VersionNotFound(f"prompt '{name}' {state} at '{selector}' ({commit[:7]})",
                                  fix=f"pick a version from `promptops log {name}`")
        return versions[line.event_number[at] - 1]

    # -- approvals --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers across threads and processes with a file lock inside .git."""
        with self._lock, open(os.path.join(self._common, "promptops.lock"), "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _identity(self) -> tuple[str, str]:
        out = self._git("var", "GIT_COMMITTER_IDENT", check=False).decode().strip()
        match = re.fullmatch(r"(.*) <(.*)> \d+ [+-]\d{4}", out)
        if not match or not match.group(1):
            raise StoreError("git does not know who you are, so the approval cannot be recorded",
                             fix='run `git config user.name "Your Name"` and `git config user.email you@example.com`')
        return match.group(1), match.group(2)

    def approve(self, name: str, version: int | None = None, message: str | None = None,
                sign: bool = False) -> tuple[Version, bool]:
        """Tag version `version` (default: the newest) as approved; returns (version, created).

        With no version, a working-tree file that differs from the newest commit is refused.
        """
        check_name(name)
        with self._locked():
            self.refresh()
            head = self._read_head()
            versions = self._versions_of(name, head)
            if not versions:
                raise self._not_found(name)
            if version is None:
                line = self._history(head).line(name)
                if not line.alive:
                    raise self._deleted(name, line)
                target = versions[-1]
                self._check_clean(name, target)
            elif not 1 <= version <= len(versions):
                raise VersionNotFound(f"prompt '{name}' has no version {version} (the newest is {len(versions)})",
                                      fix=f"list versions with `promptops log {name}`")
            else:
                target = versions[version - 1]
            if target.approved:
                return target, False
            self.load(target)  # an invalid prompt is never approved
            self._create_tag(target, message, sign)
            self.refresh()
            return self._versions_of(name, head)[target.number - 1], True

    def _check_clean(self, name: str, newest: Version) -> None:
        try:
            data = Path(self.repo, self.relpath(name)).read_bytes()
        except FileNotFoundError:
            data = None
        if data is None or _blob_sha(data, len(newest.blob)) != newest.blob:
            raise StoreError(f"prompt {name} has uncommitted changes",
                             fix=f"commit {self.relpath(name)} first, or approve a committed version with --version N")

    def _create_tag(self, version: Version, message: str | None, sign: bool) -> None:
        tag = f"prompts/{version.name}/v{version.number}"
        if self._rev_parse(f"refs/tags/{tag}"):
            raise StoreError(f"tag {tag} exists but does not point at version {version.number} ({version.short})",
                             fix=f"the history was rewritten; delete the stale tag with `git tag -d {tag}`")
        who, email = self._identity()
        body = f"Approve prompt {version.name} v{version.number}\n\n"
        if message and message.strip():
            body += message.strip() + "\n\n"
        body += (f"Approved-by: {who} <{email}>\nApproved-at: {_now_iso()}\nPrompt: {version.name}\n"
                 f"Version: {version.number}\nCommit: {version.commit}\nBlob: {version.blob}\n")
        self._tag_with_file(tag, version.commit, body, sign)

    def _tag_with_file(self, tag: str, commit: str, body: str, sign: bool) -> None:
        import git

        # The message goes through a file: no quoting, and nothing in it can be read as an option.
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as handle:
            handle.write(body)
        try:
            self._gitpython().git.tag("-s" if sign else "-a", "-F", handle.name, "--end-of-options", tag, commit)
        except git.GitCommandError as error:
            detail = (error.stderr or "").strip().splitlines()
            if sign:
                raise StoreError(f"signing the approval tag failed: {detail[-1] if detail else error}",
                                 fix="configure a key (`git config user.signingkey KEY`, and `gpg.format ssh` "
                                     "for SSH keys) or approve without --sign") from None
            raise StoreError(f"git tag failed: {detail[-1] if detail else error}",
                             fix="check the repository with `git status`") from None
        finally:
            os.unlink(handle.name)

    # -- status -----------------------------------------------------------------------------------

    def status(self) -> list[PromptStatus]:
        """Every prompt committed on the branch or present in the working tree, with its state."""
        from promptops.workspace import Workspace

        with self._lock:
            head = self._read_head()
            hist = self._history(head)
            committed = {n for n in hist.changes if _is_valid_name(n) and hist.line(n).alive}
            on_disk = {n for n in Workspace(self.repo, self.prompts_dir).names() if _is_valid_name(n)}
            rows = []
            for name in sorted(committed | on_disk):
                versions = self._versions_of(name, head) if name in committed else []
                newest = versions[-1] if versions else None
                approved = next((v for v in reversed(versions) if v.approved), None)
                dirty = False
                if newest is not None:
                    path = Path(self.repo, self.relpath(name))
                    dirty = not path.exists() or _blob_sha(path.read_bytes(), len(newest.blob)) != newest.blob
                rows.append(PromptStatus(name, newest, approved, dirty, name not in committed))
            return rows

    # -- save -------------------------------------------------------------------------------------

    def save(self, name: str, text: str, *, base_commit: str | None, author_name: str, author_email: str,
             message: str) -> Version:
        """Validate and commit `text` as the next version of `name`, if `base_commit` is still the newest.

        `base_commit` is the commit of the version the editor started from (None for a new
        prompt); if another save got there first, Conflict says which version is current.
        Only this prompt's path is committed; other staged changes are left alone.
        """
        check_name(name)
        relpath = self.relpath(name)
        data = encode_text(text, relpath)
        load_prompt_bytes(data, name, relpath)
        for label, value in (("author name", author_name), ("author email", author_email)):
            if not value or any(c in value for c in "<>\n\r\0"):
                raise StoreError(f"invalid {label} {value!r}", fix="use a plain name and an address like a@b.org")
        with self._locked():
            self.refresh()
            head = self._read_head()
            versions = self._versions_of(name, head)
            alive = self._history(head).line(name).alive
            current = versions[-1] if versions and alive else None
            if (current.commit if current else None) != base_commit:
                raise Conflict(
                    f"prompt '{name}' changed since you started editing: the newest is "
                    + (f"version {current.number} ({current.short})" if current else "no version (it was deleted)"),
                    fix="reload the prompt, re-apply your edit and save again",
                    current_version=current.number if current else None,
                    current_commit=current.commit if current else None)
            if current is not None and _blob_sha(data, len(current.blob)) == current.blob:
                return current
            self._commit_file(relpath, data, head, author_name, author_email, message or f"Update prompt {name}")
            self.refresh()
            return self._versions_of(name, self._read_head())[-1]

    def _commit_file(self, relpath: str, data: bytes, parent: str | None, author: str, email: str,
                     message: str) -> None:
        import git

        repo = self._gitpython()
        ident = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email}
        if not self._git("var", "GIT_COMMITTER_IDENT", check=False).strip():
            ident |= {"GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email}
        ref = self._refname or "HEAD"
        with tempfile.TemporaryDirectory(dir=self._gitdir, prefix="promptops-save-") as tmp:
            blob_file = os.path.join(tmp, "blob")
            Path(blob_file).write_bytes(data)
            # A private index: the user's staged changes are neither committed nor disturbed.
            env = {**os.environ, **ident, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
            try:
                blob = repo.git.hash_object("-w", f"--path={relpath}", "--", blob_file)
                if parent:
                    repo.git.read_tree(parent, env=env)
                repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{relpath}", env=env)
                tree = repo.git.write_tree(env=env)
                commit = repo.git.commit_tree(tree, *(["-p", parent] if parent else []), "-m", message, env=env)
                # Compare-and-swap: fails if anyone moved the branch since we read it.
                repo.git.update_ref("-m", f"promptops save: {message}", "--end-of-options", ref, commit,
                                    parent or "")
            except git.GitCommandError as error:
                if "update-ref" in " ".join(map(str, error.command)):
                    raise Conflict(f"the branch moved while saving {relpath}",
                                   fix="reload the prompt and save again") from None
                raise StoreError(f"saving {relpath} failed: {error.stderr.strip()}",
                                 fix="check the repository with `git status`") from None
        if self._refname is None or self._checked_out() == self._refname:
            atomic_write(Path(self.repo, relpath), data)
            with contextlib.suppress(git.GitCommandError):  # keep `git status` clean for this path
                repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{relpath}")

    def _checked_out(self) -> str | None:
        return self._git("symbolic-ref", "--quiet", "HEAD", check=False).decode().strip() or None

    # -- changes ----------------------------------------------------------------------------------

    def changes(self, base: str, head: str) -> list[Change]:
        """Prompt files added, removed or modified between two commits (tags, branches or SHAs)."""
        commits = []
        for rev in (base, head):
            try:
                check_selector(rev)
            except RefError as error:
                raise RefError(error.message, fix="pass a commit SHA, a tag or a branch (e.g. origin/main)") from None
            commit = self._rev_parse(rev)
            if commit is None:
                raise RefError(f"no commit, tag or branch named '{rev}'",
                               fix="check it with `git log --oneline`; in CI fetch it first")
            commits.append(commit)
        out = self._git("diff-tree", "-r", "--raw", "--no-renames", "--no-abbrev", "-z",
                        f"--relative={self.prompts_dir}/", "--end-of-options", *commits, "--")
        tokens = out.split(b"\0")
        found: list[tuple[str, str | None, str | None]] = []
        for meta, path in zip(tokens[::2], tokens[1::2], strict=False):
            fields = meta.lstrip(b"\n:").decode().split(" ")
            name = path.decode(errors="replace")
            if "/" in name or not name.endswith(".json") or len(fields) < 5:
                continue
            old = fields[2] if fields[0] in _FILE_MODES else None
            new = fields[3] if fields[1] in _FILE_MODES else None
            if old != new:
                found.append((name[:-5], old, new))
        blobs = self._read_blobs(sorted({b for _, o, n in found for b in (o, n) if b}))
        result = []
        for name, old, new in sorted(found):
            old_bytes, new_bytes = blobs.get(old or ""), blobs.get(new or "")
            status: Literal["added", "removed", "modified"] = (
                "added" if old_bytes is None else "removed" if new_bytes is None else "modified")
            file = f"{self.prompts_dir}/{name}.json"
            result.append(Change(name, status,
                                 check_bytes(old_bytes, name, f"{file}@{base}")[0] if old_bytes is not None else None,
                                 check_bytes(new_bytes, name, f"{file}@{head}")[0] if new_bytes is not None else None,
                                 old_bytes, new_bytes))
        return result


def open_store(settings: Settings) -> PromptStore:
    """The store for these settings (repository, prompts directory, serving branch)."""
    return PromptStore(settings.repo, settings.prompts_dir, settings.branch)


__all__ = ["Change", "PromptInvalid", "PromptStatus", "PromptStore", "Resolved", "Version", "open_store"]
