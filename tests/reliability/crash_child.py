"""Child process for the crash-safety tests: save a prompt and die (os._exit) at a chosen point.

Usage: python crash_child.py REPO POINT TEXT_FILE [BASE_COMMIT|-]
POINT: none | before-ref (commit object made, branch not moved) | after-ref (branch moved, file not written)
       | before-rename (temp file written and fsynced, not renamed) | mid-write (half the bytes in the temp file)
       | edit-before-rename (the CLI's working-tree write, `promptops edit --set`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from promptops import files
from promptops.store import PromptStore
from promptops.store.workspace import Workspace


def die(*args: object, **kwargs: object) -> None:
    os._exit(9)


def in_prompts(path: object) -> bool:
    """Only the prompt file's write dies; the store's history cache (.git/promptops/) is written as usual."""
    return f"{os.sep}prompts{os.sep}" in str(path)


def main() -> None:
    repo, point, text_file, base = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    text = Path(text_file).read_text()
    if point == "before-ref":
        import subprocess

        real_run = subprocess.run

        def run(argv: list[str], *args: object, **kwargs: object) -> object:
            if "update-ref" in argv:  # the compare-and-swap that publishes the commit
                die()
            return real_run(argv, *args, **kwargs)

        subprocess.run = run  # type: ignore[assignment]
    elif point == "after-ref":
        real_write = files.atomic_write
        files.atomic_write = lambda path, *a, **k: die() if in_prompts(path) else real_write(path, *a, **k)
    elif point in ("before-rename", "edit-before-rename"):
        real_replace = os.replace
        os.replace = lambda src, dst: die() if in_prompts(dst) else real_replace(src, dst)
    elif point == "mid-write":
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, handle: object) -> None:
                self.handle = handle

            def __enter__(self) -> HalfWriter:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

            def write(self, data: bytes) -> None:
                self.handle.write(data[: len(data) // 2])  # type: ignore[attr-defined]
                self.handle.flush()  # type: ignore[attr-defined]
                die()

        def fdopen(fd: int, mode: str = "r", *a: object, **k: object) -> object:
            handle = real_fdopen(fd, mode, *a, **k)
            return HalfWriter(handle) if in_prompts(os.readlink(f"/proc/self/fd/{fd}")) else handle

        os.fdopen = fdopen  # type: ignore[assignment]
    if point == "edit-before-rename":
        Workspace(Path(repo)).write_text("support", text)
    else:
        PromptStore(Path(repo)).save("support", text, base_commit=None if base == "-" else base,
                                     author_name="Crash Test", author_email="crash@example.com", message="crash")


if __name__ == "__main__":
    main()
