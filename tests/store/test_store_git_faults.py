"""Git faults are errors, not silent states: a save git's index cannot follow is refused whole,
and refs a repository keeps in reftable (not in files) are read through git.

Faults are made at the real boundaries: the lock file a crashed git leaves, a read-only
`.git`, a repository created with `--ref-format=reftable`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from promptops.errors import StoreError
from promptops.store import PromptStore
from promptops.store.saves import LOCK_MARK
from tests.conftest import GIT_ENV, GitRepo, git, prompt_doc

A = "prompts/a.json"
AS_ROOT = os.geteuid() == 0
Fault = Callable[[GitRepo], Callable[[], None]]  # makes the fault, returns what takes it away


def text(user: str) -> str:
    return json.dumps(prompt_doc(user=user), indent=2) + "\n"


def save(store: PromptStore, user: str, base: str | None) -> int:
    return store.save("a", text(user), base_commit=base, author_name="Bo", author_email="bo@example.com",
                      message=user).number


def state(repo: GitRepo) -> tuple[str, ...]:
    """All a failed save must leave as it was: the branch, `git status`, the index entry, the file."""
    return (repo.git("rev-parse", "HEAD"), repo.git("status", "--porcelain"), repo.git("ls-files", "--stage", A),
            (repo.path / A).read_text())


def stale_lock(repo: GitRepo) -> Callable[[], None]:
    (repo.path / ".git" / "index.lock").write_bytes(b"")  # what a killed `git add` leaves behind
    return (repo.path / ".git" / "index.lock").unlink


def read_only(folder: str) -> Fault:
    def fault(repo: GitRepo) -> Callable[[], None]:
        (repo.path / folder).chmod(0o555)
        return lambda: (repo.path / folder).chmod(0o755)
    return fault


NOT_AS_ROOT = pytest.mark.skipif(AS_ROOT, reason="root writes into read-only folders")


@pytest.mark.parametrize("fault, error, fix", [
    (stale_lock, "cannot update the git index", "remove .git/index.lock if no git process is running, then save"),
    pytest.param(read_only(".git"), "cannot update the git index", "make the repository's .git folder writable",
                 marks=NOT_AS_ROOT),
    # Fails after the branch moved: the commit is taken back.
    pytest.param(read_only("prompts"), f"cannot write {A} in the working tree", f"make {A} and its folder writable",
                 marks=NOT_AS_ROOT),
])
def test_a_save_the_checkout_cannot_follow_fails_and_changes_nothing(repo: GitRepo, fault: Fault, error: str,
                                                                     fix: str) -> None:
    store = PromptStore(repo.path)
    save(store, "one", None)  # v1 through a save, as in use: the store's own lock file exists
    head, before = store.head_commit(), state(repo)
    undo = fault(repo)
    with pytest.raises(StoreError, match=rf"^{re.escape(error)}.*; nothing was saved") as caught:
        save(store, "two", head)
    assert fix in (caught.value.fix or "")
    undo()
    assert state(repo) == before
    assert save(store, "two", head) == 2
    assert (repo.git("status", "--porcelain"), repo.git("show", f"HEAD:{A}") + "\n") == ("", text("two"))


def test_the_lock_a_killed_save_left_is_taken_over(repo: GitRepo) -> None:
    head = repo.commit({A: prompt_doc(user="one")}, "one")
    (repo.path / ".git" / "index.lock").write_bytes(LOCK_MARK)  # only a promptops save writes this; none is running
    assert save(PromptStore(repo.path), "two", head) == 2
    assert not (repo.path / ".git" / "index.lock").exists()
    assert repo.git("status", "--porcelain") == ""


# -- reftable ---------------------------------------------------------------------------------------


@pytest.fixture
def reftable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """A repository whose refs live in reftable; skipped where git cannot make one (before 2.45)."""
    for key, value in {**GIT_ENV, "GIT_DEFAULT_REF_FORMAT": "reftable"}.items():
        monkeypatch.setenv(key, value)
    made = GitRepo(tmp_path)  # older git ignores the variable and makes a files repository
    if not (tmp_path / ".git" / "reftable").is_dir():
        pytest.skip(f"{git(tmp_path, 'version')} cannot create a reftable repository (needs git >= 2.45)")
    return made


@pytest.mark.parametrize("branch", [None, "main"])
def test_reftable_versions_and_approvals_are_seen(reftable: GitRepo, branch: str | None) -> None:
    reftable.commit({A: prompt_doc(user="one")}, "one")
    reftable.commit({A: prompt_doc(user="two")}, "two")
    store = PromptStore(reftable.path, branch=branch)
    assert [v.number for v in store.versions("a")] == [1, 2]
    store.approve("a", 1)
    assert (store.resolve("a").version.number, store.versions("a")[0].tag) == (1, "prompts/a/v1")
    reftable.git("tag", "-a", "-m", "ok", "prompts/a/v2", "HEAD")  # git's own tag: seen without a refresh
    assert store.resolve("a").version.number == 2


def test_reftable_saves_and_git_commits_move_the_head_the_store_reads(reftable: GitRepo) -> None:
    head = reftable.commit({A: prompt_doc(user="one")}, "one")
    store = PromptStore(reftable.path)
    assert save(store, "two", head) == 2
    assert (reftable.git("status", "--porcelain"), reftable.git("rev-parse", "HEAD")) == ("", store.head_commit())
    reftable.commit({A: prompt_doc(user="three")}, "three")
    assert store.resolve("a@head").version.number == 3


def test_a_warm_reftable_resolve_runs_no_git(reftable: GitRepo, tmp_path_factory: pytest.TempPathFactory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    reftable.commit({A: prompt_doc(user="one")}, "one")
    reftable.git("tag", "-a", "-m", "ok", "prompts/a/v1", "HEAD")
    store = PromptStore(reftable.path)
    store.resolve("a")
    trace = tmp_path_factory.mktemp("trace") / "git.log"
    monkeypatch.setenv("GIT_TRACE", str(trace))  # every git started from here on writes to it
    assert store.resolve("a").version.number == 1
    assert not trace.exists()
