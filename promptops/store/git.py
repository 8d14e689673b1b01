"""The one way promptops runs git: the `git` binary, no prompts, errors mapped to StoreError.

Reads and writes both go through :class:`Git`. The binary is faster to start than
importing GitPython (~70 ms) and every argument list is explicit, so nothing a user
typed can be read as an option: callers put user-supplied revisions after
``--end-of-options`` (and refs are checked by :mod:`promptops.refs` first).

The hot path reads loose ref files and ``packed-refs`` itself (microseconds, no
subprocess). That is only valid for git's usual *files* ref backend: a repository made
with ``git init --ref-format=reftable`` (git >= 2.45) keeps every ref, HEAD included, in
binary tables under ``reftable/``, where :func:`uses_reftable` says so and refs are read
through git, re-read only when :func:`reftable_key` changes.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from promptops.errors import StoreError

GIT_FIX = "check the repository with `git status`"


class Git:
    """Runs git commands in one repository."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None,
            check: bool = True, timeout: float | None = None) -> bytes:
        """stdout of `git ARGS`; a failure raises StoreError with git's own last line (unless check=False)."""
        try:
            result = subprocess.run(["git", "-c", "log.showSignature=false", *args], cwd=self.repo, input=input,
                                    capture_output=True, timeout=timeout,
                                    env={**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0"})
        except subprocess.TimeoutExpired:
            raise StoreError(f"git {args[0]} did not finish within {timeout:.0f} s",
                             fix="check the network and the remote, then retry") from None
        if result.returncode != 0:
            if not check:
                return b""
            raise StoreError(f"git {args[0]} failed: {last_line(result.stderr) or result.returncode}", fix=GIT_FIX)
        return result.stdout

    def ok(self, *args: str) -> bool:
        """True when `git ARGS` exits 0."""
        return subprocess.run(["git", *args], cwd=self.repo, capture_output=True,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"}).returncode == 0

    def attempt(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run git and hand back the whole result, for callers that map specific failures themselves."""
        return subprocess.run(["git", *args], cwd=self.repo, capture_output=True,
                              env={**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0"})

    def rev_parse(self, rev: str) -> str | None:
        """The commit `rev` names, or None."""
        out = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
        return out.decode().strip() or None

    def blob_at(self, commit: str, path: str) -> str | None:
        """The blob id of `path` in `commit`, or None when the file is absent."""
        out = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}:{path}", check=False)
        return out.decode().strip() or None

    def read_blobs(self, shas: Sequence[str]) -> dict[str, bytes]:
        """Object contents by id, in one `git cat-file --batch` call."""
        if not shas:
            return {}
        out = self.run("cat-file", "--batch", input="".join(f"{s}\n" for s in shas).encode())
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

    def read_optional(self, names: Sequence[str]) -> list[bytes | None]:
        """Contents of objects named like `<commit>:<path>`, None where absent, in one cat-file call."""
        if not names:
            return []
        out = self.run("cat-file", "--batch", input="".join(f"{n}\n" for n in names).encode())
        found: list[bytes | None] = []
        pos = 0
        for _ in names:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode(errors="replace").split()
            if header[-1] in ("missing", "ambiguous") or len(header) < 3:
                found.append(None)
                pos = end + 1
                continue
            size = int(header[2])
            found.append(out[end + 1:end + 1 + size])
            pos = end + 1 + size + 1
        return found

    def identity(self, what: str = "the approval") -> tuple[str, str]:
        """(name, email) git would record as committer; StoreError when git does not know."""
        out = self.run("var", "GIT_COMMITTER_IDENT", check=False).decode().strip()
        match = re.fullmatch(r"(.*) <(.*)> \d+ [+-]\d{4}", out)
        if not match or not match.group(1):
            raise StoreError(f"git does not know who you are, so {what} cannot be recorded",
                             fix='run `git config user.name "Your Name"` and `git config user.email you@example.com`')
        return match.group(1), match.group(2)

    def checked_out(self) -> str | None:
        """The branch ref HEAD points at (None when detached)."""
        return self.run("symbolic-ref", "--quiet", "HEAD", check=False).decode().strip() or None


def uses_reftable(common: str) -> bool:
    """True when the repository at git directory `common` stores its refs in reftable, not in ref files.

    Checked once per store: the `reftable/` folder git creates, or `extensions.refStorage`
    in the config (a repository whose folder was not created yet still says so there).
    """
    if os.path.isdir(os.path.join(common, "reftable")):
        return True
    try:
        config = Path(common, "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"(?im)^\s*refstorage\s*=\s*\"?reftable\b", config) is not None


def reftable_key(*gitdirs: str) -> bytes:
    """What changes whenever a ref in these git directories' reftable stacks changes.

    Every ref update (and every compaction) writes a new table, whose name carries its
    update indexes and a random suffix, and atomically rewrites `tables.list`; so equal
    contents mean no ref moved. Reading the few-line file costs microseconds, and unlike
    its mtime it cannot miss two updates within one clock tick.
    """
    parts = []
    for gitdir in dict.fromkeys(gitdirs):  # a linked worktree's own stack (its HEAD), then the shared one
        try:
            with open(os.path.join(gitdir, "reftable", "tables.list"), "rb") as handle:
                parts.append(handle.read())
        except OSError:
            parts.append(b"")
    return b"\0".join(parts)


def last_line(stderr: bytes | str) -> str:
    """git's most specific message: the last line of its stderr."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""
