"""Committing one file to the serving branch without touching anything else.

A private index holds the commit's tree, so the user's staged changes are neither
committed nor disturbed, and `update-ref` with the old value makes the branch move a
compare-and-swap: two writers cannot both win.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from promptops.errors import Conflict, PromptOpsError
from promptops.store.git import Git


def check_identity(name: str, email: str) -> None:
    """Refuse author names and addresses git would misparse."""
    for label, value in (("author name", name), ("author email", email)):
        if not value or any(c in value for c in "<>\n\r\0"):
            raise PromptOpsError(f"invalid {label} {value!r}", fix="use a plain name and an address like a@b.org")


def commit_file(git: Git, gitdir: str, ref: str, relpath: str, data: bytes, parent: str | None, *,
                author: str, email: str, message: str) -> str:
    """Commit `data` as `relpath` on top of `parent` and move `ref` to it; returns the blob id."""
    check_identity(author, email)
    ident = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email}
    if not git.run("var", "GIT_COMMITTER_IDENT", check=False).strip():
        ident |= {"GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email}
    with tempfile.TemporaryDirectory(dir=gitdir, prefix="promptops-save-") as tmp:
        blob_file = os.path.join(tmp, "blob")
        Path(blob_file).write_bytes(data)
        env = {**ident, "GIT_INDEX_FILE": os.path.join(tmp, "index")}
        blob = git.run("hash-object", "-w", f"--path={relpath}", "--", blob_file).decode().strip()
        if parent:
            git.run("read-tree", parent, env=env)
        git.run("update-index", "--add", "--cacheinfo", f"100644,{blob},{relpath}", env=env)
        tree = git.run("write-tree", env=env).decode().strip()
        message_file = os.path.join(tmp, "message")
        Path(message_file).write_text(message, encoding="utf-8")
        commit = git.run("commit-tree", tree, *(["-p", parent] if parent else []), "-F", message_file,
                         env=env).decode().strip()
        # Compare-and-swap: fails if anyone moved the branch since we read it.
        moved = git.attempt("update-ref", "-m", f"promptops: {message.splitlines()[0] if message else relpath}",
                            "--end-of-options", ref, commit, parent or "")
        if moved.returncode != 0:
            raise Conflict(f"the branch moved while saving {relpath}", fix="reload and save again")
    return blob


def sync_worktree(git: Git, repo: Path, relpath: str, data: bytes, blob: str) -> None:
    """Make the checked-out file and its index entry match the new commit (so `git status` stays clean)."""
    from promptops.workspace import atomic_write

    atomic_write(Path(repo, relpath), data)
    # Best effort: a busy index (another git command running) only leaves `git status` showing the file.
    git.attempt("update-index", "--add", "--cacheinfo", f"100644,{blob},{relpath}")
