"""Committing one file to the serving branch without touching anything else.

A private index holds the commit's tree, so the user's staged changes are neither
committed nor disturbed, and `update-ref` with the old value makes the branch move a
compare-and-swap: two writers cannot both win.

When the branch is the one checked out, the working-tree file and its index entry must
follow the commit: an index that kept the old text would make the next save conflict
and a plain `git commit` silently undo the new version. So the caller first locks the
index the way git does (:class:`IndexLock`: ``index.lock`` created exclusively). A lock
that cannot be taken (a stale one left by a crashed git, a read-only ``.git``) fails the
save before anything is written, and while it is held no git command can change the
index or commit, so the index the save checked is the index it replaces. The branch
moves only after the new index is ready beside it, and moves back if the working tree
cannot follow: nothing stays committed that the index does not match.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType

from promptops.errors import Conflict, PromptOpsError, StoreError
from promptops.store.git import Git, last_line

# A running `git status` holds index.lock for milliseconds while it refreshes the index;
# a crashed git's lock never goes away. Waiting this long tells the two apart without
# making a stuck save slow.
LOCK_WAIT_S = 0.3
LOCK_POLL_S = 0.02
# What our own index.lock holds until the new index replaces the old one: a lock with
# this content was left by a killed save and may be taken over (see IndexLock).
LOCK_MARK = b"promptops: a save holds this lock\n"


def check_identity(name: str, email: str) -> None:
    """Refuse author names and addresses git would misparse."""
    for label, value in (("author name", name), ("author email", email)):
        if not value or any(c in value for c in "<>\n\r\0"):
            raise PromptOpsError(f"invalid {label} {value!r}", fix="use a plain name and an address like a@b.org")


class IndexLock:
    """The checked-out working tree's index, locked as git locks it, for one save.

    Use it as a context manager around the draft check and :func:`commit_file`. The
    caller holds ``PromptStore.locked()``, so no other promptops writer is running: a
    lock file holding our mark was left by a killed save and is taken over; any other
    lock belongs to git and is never removed (the error says how to).
    """

    def __init__(self, git: Git, repo: Path) -> None:
        self.git = git
        self.repo = repo
        # Asked of git: a linked worktree or GIT_INDEX_FILE puts the index elsewhere than .git/index.
        self.path = os.path.join(repo, git.run("rev-parse", "--git-path", "index").decode().strip())
        self.lock = self.path + ".lock"
        self.held = False

    def shown(self) -> str:
        """The lock file as the user would type it (relative to the working tree when inside it)."""
        relative = os.path.relpath(self.lock, self.repo)
        return self.lock if relative.startswith("..") else relative

    def __enter__(self) -> IndexLock:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                if self._left_by_a_killed_save():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.lock)
                    continue
                if time.monotonic() >= deadline:
                    raise StoreError(f"cannot update the git index: {self.shown()} exists (another git command is "
                                     "running, or one crashed); nothing was saved",
                                     fix=f"remove {self.shown()} if no git process is running, then save again"
                                     ) from None
                time.sleep(LOCK_POLL_S)
            except OSError as exc:
                raise self._unwritable(exc) from None
        self.held = True
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(LOCK_MARK)
        except OSError as exc:
            self.release()
            raise self._unwritable(exc) from None
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def _left_by_a_killed_save(self) -> bool:
        try:
            with open(self.lock, "rb") as handle:
                return handle.read(len(LOCK_MARK) + 1) == LOCK_MARK
        except OSError:
            return False

    def _unwritable(self, exc: OSError) -> StoreError:
        return StoreError(f"cannot update the git index: {self.shown()} cannot be written ({exc.strerror}); "
                          "nothing was saved",
                          fix="make the repository's .git folder writable by the user running promptops, "
                              "then save again")

    def stage(self, tmp: str, relpath: str, blob: str) -> str:
        """A copy of the index with `relpath` at `blob`, in `tmp`: installed by :meth:`publish` once committed."""
        staged = os.path.join(tmp, "staged-index")
        with contextlib.suppress(FileNotFoundError):  # no index yet (nothing ever staged): git starts one
            # copy2 keeps the index's mtime, which git's racy-entry check compares file times against.
            shutil.copy2(self.path, staged)
        self.git.run("update-index", "--add", "--cacheinfo", f"100644,{blob},{relpath}",
                     env={"GIT_INDEX_FILE": staged})
        return staged

    def publish(self, staged: str) -> None:
        """Make `staged` the index, then release the lock.

        Git renames its lock file over the index; ours holds the mark instead, so the
        staged copy is renamed while the lock is still held, which is just as atomic.
        """
        os.replace(staged, self.path)
        self.release()

    def release(self) -> None:
        """Remove our lock file (once)."""
        if self.held:
            self.held = False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lock)


def commit_file(git: Git, gitdir: str, ref: str, relpath: str, data: bytes, parent: str | None, *,
                author: str, email: str, message: str, index: IndexLock | None = None) -> str:
    """Commit `data` as `relpath` on top of `parent` and move `ref` to it; returns the blob id.

    With `index` (the branch is checked out and its index locked), the working-tree file
    and its index entry are updated to match the commit as well, or nothing changes.
    """
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
        # Ready before the branch moves, so an index git cannot update fails the save uncommitted.
        staged = index.stage(tmp, relpath, blob) if index is not None else None
        # Compare-and-swap: fails if anyone moved the branch since we read it.
        moved = git.attempt("update-ref", "-m", f"promptops: {message.splitlines()[0] if message else relpath}",
                            "--end-of-options", ref, commit, parent or "")
        if moved.returncode != 0:
            raise Conflict(f"the branch moved while saving {relpath}", fix="reload and save again")
        if index is not None and staged is not None:
            _follow(git, index, staged, ref, commit, parent, relpath, data)
    return blob


def _follow(git: Git, index: IndexLock, staged: str, ref: str, commit: str, parent: str | None, relpath: str,
            data: bytes) -> None:
    """Write the working-tree file and install the staged index; if either fails, undo the commit."""
    from promptops.files import atomic_write

    path = Path(index.repo, relpath)
    before: bytes | None = None
    written = False
    try:
        with contextlib.suppress(FileNotFoundError):
            before = path.read_bytes()
        atomic_write(path, data)
        written = True
        index.publish(staged)
    except OSError as exc:
        if written:  # the index kept the old entry: put the old file back beside it
            with contextlib.suppress(OSError):
                if before is None:
                    path.unlink()
                else:
                    atomic_write(path, before)
        # Compare-and-swap back: the index lock keeps `git commit` out, so only a raw update-ref could race us.
        undo = git.attempt("update-ref", "-m", f"promptops: undo a save {relpath} could not follow",
                           "--end-of-options", ref, parent, commit) if parent else \
            git.attempt("update-ref", "-d", "--end-of-options", ref, commit)
        if undo.returncode != 0:
            raise StoreError(f"saved {relpath} as {commit[:7]}, but the working tree could not follow "
                             f"({exc.strerror}) and the branch could not be moved back "
                             f"({last_line(undo.stderr)})",
                             fix=f"bring the checkout up to date with `git checkout HEAD -- {relpath}`") from None
        if written:
            raise StoreError(f"cannot replace the git index ({exc.strerror}); nothing was saved",
                             fix="make the repository's .git folder writable by the user running promptops, "
                                 "then save again") from None
        raise StoreError(f"cannot write {relpath} in the working tree ({exc.strerror}); nothing was saved",
                         fix=f"make {relpath} and its folder writable by the user running promptops, "
                             "then save again") from None
