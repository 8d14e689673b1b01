"""Writing files so that a reader sees the old bytes or the new ones, never a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False, mode: int | None = None) -> None:
    """Write to a temp file in the same directory, fsync, then rename over `path`.

    `mode` (e.g. 0o600 for secrets) is set on the temp file before any byte is written. With `exclusive`,
    FileExistsError when `path` exists (two creators cannot both win).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if the name exists: two creators cannot both win
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def keep_out_of_git(folder: Path) -> None:
    """A `.gitignore` of `*` in promptops' own state folder (`.promptops/`): request records, feedback and
    captured inputs must never be committed by a `git add -A`."""
    ignore = folder / ".gitignore"
    if folder.name == ".promptops" and not ignore.exists():
        try:
            ignore.write_text("# promptops' local state: never committed\n*\n")
        except OSError:  # a read-only folder: nothing to protect from a commit here
            pass
