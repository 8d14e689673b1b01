"""A save killed at any point leaves the old or the new prompt, never a half-written file; git stays sound."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rel_helpers import doc

from promptops.store import PromptStore

CHILD = Path(__file__).with_name("crash_child.py")
OLD, NEW = json.dumps(doc("OLD " * 50), indent=2) + "\n", json.dumps(doc("NEW " * 5000), indent=2) + "\n"


def crash_save(repo, point: str, base: str) -> int:
    (repo.path.parent / "new.json").write_text(NEW)
    return subprocess.run([sys.executable, str(CHILD), str(repo.path), point, str(repo.path.parent / "new.json"),
                           base], timeout=60).returncode


def check_sound(repo) -> str:
    """The file and the branch each hold OLD or NEW, no temp file is left as .json, fsck is clean."""
    on_disk = (repo.path / "prompts" / "support.json").read_text()
    committed = repo.git("show", "HEAD:prompts/support.json") + "\n"
    assert on_disk in (OLD, NEW) and committed in (OLD, NEW)
    assert sorted(p.name for p in (repo.path / "prompts").glob("*.json")) == ["support.json"]
    repo.git("fsck", "--strict", "--no-dangling")
    assert repo.git("rev-list", "--min-parents=2", "HEAD") == ""
    return committed


@pytest.mark.parametrize("point, committed", [
    ("none", NEW), ("before-ref", OLD), ("after-ref", NEW), ("before-rename", NEW), ("mid-write", NEW),
    ("edit-before-rename", OLD)])
def test_killed_save_leaves_old_or_new_never_half(repo, point, committed):
    base = repo.commit({"prompts/support.json": OLD}, "v1")
    assert crash_save(repo, point, base) == (0 if point == "none" else 9)
    assert check_sound(repo) == committed
    head = PromptStore(repo.path).versions("support")[-1].commit  # and the next save just works
    PromptStore(repo.path).save("support", OLD, base_commit=head, author_name="A", author_email="a@b.c", message="m")
    assert (repo.path / "prompts" / "support.json").read_text() == OLD


def test_sigkill_at_random_moments_of_repeated_saves(repo):
    repo.commit({"prompts/support.json": OLD}, "v1")
    rng = random.Random(7)
    for _ in range(12):
        base = PromptStore(repo.path).versions("support")[-1].commit
        text = NEW if repo.git("show", "HEAD:prompts/support.json") + "\n" == OLD else OLD
        (repo.path.parent / "new.json").write_text(text)
        child = subprocess.Popen([sys.executable, str(CHILD), str(repo.path), "none",
                                  str(repo.path.parent / "new.json"), base])
        time.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        child.wait()
        (repo.path / ".git" / "index.lock").unlink(missing_ok=True)  # git's own lock, as after any killed git
        check_sound(repo)
