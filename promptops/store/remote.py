"""A read-only clone of a prompt repository, kept current by fetching (the production topology).

The gateway serves from `<clone>` on branch `origin/<ref>`: approvals are tags, so a
fetch that brings a new `prompts/NAME/vN` tag (or a new commit) is served on the next
request without a restart. Nothing here writes to the source repository.

One clone, one process: a gateway holds an exclusive lock (`<clone>.lock`, flock) on the clone it
serves for as long as it runs, so replicas on one host never clone or fetch into the same folder.
Under the default location (`~/.cache/promptops/clones`) each replica takes the first clone of its
source that no live process holds (`<hash>`, `<hash>-1`, ...): a restarted replica finds a free
one and catches up with one fetch instead of cloning again. A clone is made in a temporary folder
and renamed into place, so a replica killed mid-clone leaves no half-made clone behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from promptops.errors import StoreError
from promptops.store.refs import check_selector

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no cross-process lock, one gateway per clone folder
    fcntl = None  # type: ignore[assignment]

GIT_TIMEOUT_S = 120
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0"}  # never wait for a password nobody will type
MAX_CLONES = 64  # clones of one source under the default location (one per live replica)

_leases: dict[str, int] = {}  # clone folder -> the open file descriptor of its lock, held for the process's life
_leases_lock = threading.Lock()


def _detail(error: Any) -> str:
    """The line of git's output that says what went wrong (GitPython wraps it in `stderr: '...'`)."""
    text = str(getattr(error, "stderr", "") or error)
    lines = [line.strip().removeprefix("stderr:").strip().strip("'").strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:", "ERROR:"))]
    return (fatal or lines or [str(error)])[-1].removeprefix("fatal: ")


def _public(source: str) -> str:
    """`source` without URL credentials (`https://user:token@host/x` -> `https://host/x`): messages are logged."""
    return re.sub(r"://[^/@\s]*@", "://", source)


def _git_error(action: str, source: str, error: Any, ref: str | None = None) -> StoreError:
    source, detail = _public(source), _public(_detail(error))
    if ref is not None and "couldn't find remote ref" in detail:
        return StoreError(f"the store {source} has no branch {ref!r}",
                          fix="pass --ref (PROMPTOPS_STORE_REF) naming a branch of the store")
    return StoreError(f"{action} {source} failed: {detail}",
                      fix="check the URL or path, your network and credentials (git must reach it non-interactively)")


def default_clone_dir(source: str, base: Path) -> Path:
    """The first clone directory under `base` for `source` (one per source URL/path; see :func:`lease_clone_dir`)."""
    return base / hashlib.sha1(source.encode()).hexdigest()[:12]


def _holder(dest: Path) -> str:
    try:
        pid = Path(f"{dest}.lock").read_text().strip()
    except OSError:
        return "another process"
    return f"pid {pid}" if pid.isdigit() else "another process"


def _lease(dest: Path) -> bool:
    """Take `dest`'s lock for the rest of this process's life; False when another live process holds it.

    Re-entrant within a process (apps created one after another in one process share their clone); the
    operating system releases the lock when the process ends, however it ends."""
    key = os.path.abspath(dest)
    with _leases_lock:
        if key in _leases or fcntl is None:
            return True
        os.makedirs(os.path.dirname(key), exist_ok=True)
        fd = os.open(f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _leases[key] = fd
        return True


def lease_clone_dir(source: str, base: Path) -> Path:
    """A clone folder of `source` under `base` that no other live process uses, held by this one from now on.

    The first free one of `<hash>`, `<hash>-1`, ...: each replica on a host gets its own, and a restarted
    replica reuses one (a fetch brings it up to date)."""
    first = default_clone_dir(source, base)
    for number in range(MAX_CLONES):
        dest = first if number == 0 else first.with_name(f"{first.name}-{number}")
        if _lease(dest):
            return dest
    raise StoreError(f"{MAX_CLONES} processes on this machine already serve clones of {_public(source)} under {base}",
                     fix="stop gateways you no longer need, or set PROMPTOPS_CLONE_DIR for this one")


def serving_branch(ref: str) -> str:
    """The branch the store reads in a clone made by :func:`clone`."""
    return f"origin/{check_selector(ref)}"


def clone(source: str, dest: Path, ref: str = "main") -> Path:
    """Clone `source` (a path or git URL) into `dest` without a working tree, or reuse a clone of it.

    Returns `dest`, which this process holds (its lock) from now on: another process asking for it gets a
    StoreError. The clone is full (version numbers need the whole history). Raises StoreError, with the
    fix, for a source git cannot read, a branch `ref` it does not have, or a `dest` that is something else.
    """
    import git

    check_selector(ref)
    if source.startswith("-"):
        raise StoreError(f"invalid store {source!r}", fix="pass a repository path or a git URL")
    if not _lease(dest):
        raise StoreError(f"the clone folder {dest} is in use by {_holder(dest)} (another gateway)",
                         fix="give each replica its own PROMPTOPS_CLONE_DIR, or leave it unset: each replica then "
                             "gets a clone of its own")
    if (dest / ".git").exists():
        try:
            repo = git.Repo(dest)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            shutil.rmtree(dest)  # a clone that never finished (made in place by an older gateway): clone again
        else:
            urls = list(repo.remote("origin").urls) if "origin" in [r.name for r in repo.remotes] else []
            if source not in urls:
                shown = [_public(url) for url in urls] or "nothing"
                raise StoreError(f"{dest} is a clone of {shown}, not of {_public(source)}",
                                 fix="remove that directory or choose another clone directory")
            fetch(dest, ref)
            return dest
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise StoreError(f"{dest} is not a clone of {_public(source)}",
                         fix="remove it, or choose another clone directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.partial-*"):  # left by a process killed mid-clone (we hold dest)
        shutil.rmtree(stale, ignore_errors=True)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    try:
        git.Repo.clone_from(source, partial, no_checkout=True, multi_options=["--no-single-branch"],
                            kill_after_timeout=GIT_TIMEOUT_S, env=GIT_ENV)
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        partial.rename(dest)
    except git.GitCommandError as error:
        raise _git_error("cloning", source, error) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    fetch(dest, ref)
    return dest


def _snapshot(repo: Any, ref: str) -> str:
    return str(repo.git.for_each_ref("--format=%(refname) %(objectname)", f"refs/remotes/origin/{ref}",
                                     "refs/tags/prompts/"))


def fetch(dest: Path, ref: str = "main") -> bool:
    """Fetch branch `ref` and every tag (pruning deleted ones) into the clone; True when anything changed.

    Raises StoreError when the source cannot be read (the clone is left as it was) or the clone is gone."""
    import git

    check_selector(ref)
    try:
        repo = git.Repo(dest)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise StoreError(f"the clone {dest} is gone or damaged",
                         fix="restart the gateway (it clones the store again)") from None
    source = next(iter(repo.remote("origin").urls), str(dest)) if repo.remotes else str(dest)
    before = _snapshot(repo, ref)
    try:
        # --prune with the tag refspec: a revoked approval (deleted tag) stops being served; "+": moved tags follow.
        repo.git.fetch("--prune", "--no-tags", "--quiet", "origin", f"+refs/heads/{ref}:refs/remotes/origin/{ref}",
                       "+refs/tags/*:refs/tags/*", kill_after_timeout=GIT_TIMEOUT_S, env=GIT_ENV)
    except git.GitCommandError as error:
        raise _git_error("fetching", source, error, ref) from None
    return _snapshot(repo, ref) != before


__all__ = ["clone", "default_clone_dir", "fetch", "lease_clone_dir", "serving_branch"]
