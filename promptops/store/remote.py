"""A read-only clone of a prompt repository, kept current by fetching (the production topology).

The gateway serves from `<clone>` on branch `origin/<ref>`: approvals are tags, so a
fetch that brings a new `prompts/NAME/vN` tag (or a new commit) is served on the next
request without a restart. Nothing here writes to the source repository.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from promptops.errors import StoreError
from promptops.store.refs import check_selector

GIT_TIMEOUT_S = 120


def _git_error(action: str, source: str, error: Any) -> StoreError:
    detail = (getattr(error, "stderr", "") or str(error)).strip().splitlines()
    return StoreError(f"{action} {source} failed: {detail[-1] if detail else error}",
                      fix="check the URL or path, your network and credentials (git must reach it non-interactively)")


def default_clone_dir(source: str, base: Path) -> Path:
    """A stable clone directory under `base` for `source` (one per source URL/path)."""
    return base / hashlib.sha1(source.encode()).hexdigest()[:12]


def serving_branch(ref: str) -> str:
    """The branch the store reads in a clone made by :func:`clone`."""
    return f"origin/{check_selector(ref)}"


def clone(source: str, dest: Path, ref: str = "main") -> Path:
    """Clone `source` (a path or git URL) into `dest` without a working tree, or reuse a clone of it.

    Returns `dest`. The clone is full (version numbers need the whole history).
    """
    import git

    check_selector(ref)
    if source.startswith("-"):
        raise StoreError(f"invalid store {source!r}", fix="pass a repository path or a git URL")
    if (dest / ".git").exists():
        repo = git.Repo(dest)
        urls = list(repo.remote("origin").urls) if "origin" in [r.name for r in repo.remotes] else []
        if source not in urls:
            raise StoreError(f"{dest} is a clone of {urls or 'nothing'}, not of {source}",
                             fix="remove that directory or choose another clone directory")
        fetch(dest, ref)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        git.Repo.clone_from(source, dest, no_checkout=True, multi_options=["--no-single-branch"],
                            kill_after_timeout=GIT_TIMEOUT_S, env={"GIT_TERMINAL_PROMPT": "0"})
    except git.GitCommandError as error:
        raise _git_error("cloning", source, error) from None
    fetch(dest, ref)
    return dest


def _snapshot(repo: Any, ref: str) -> str:
    return str(repo.git.for_each_ref("--format=%(refname) %(objectname)", f"refs/remotes/origin/{ref}",
                                     "refs/tags/prompts/"))


def fetch(dest: Path, ref: str = "main") -> bool:
    """Fetch branch `ref` and every tag (pruning deleted ones) into the clone; True when anything changed."""
    import git

    check_selector(ref)
    repo = git.Repo(dest)
    before = _snapshot(repo, ref)
    try:
        # --prune with the tag refspec: a revoked approval (deleted tag) stops being served; "+": moved tags follow.
        repo.git.fetch("--prune", "--no-tags", "--quiet", "origin", f"+refs/heads/{ref}:refs/remotes/origin/{ref}",
                       "+refs/tags/*:refs/tags/*", kill_after_timeout=GIT_TIMEOUT_S,
                       env={"GIT_TERMINAL_PROMPT": "0"})
    except git.GitCommandError as error:
        raise _git_error("fetching", str(dest), error) from None
    return _snapshot(repo, ref) != before


__all__ = ["clone", "default_clone_dir", "fetch", "serving_branch"]
