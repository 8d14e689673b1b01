"""StateStore on both databases: records and feedback written, read back, kept across a restart."""

from __future__ import annotations

import pytest

from promptops.errors import PromptOpsError, UnknownRequest
from promptops.state import StateStore, StateUnavailable, engine
from tests.conftest import GitRepo
from tests.state.conftest import lock, record


def test_records_are_written_and_read_back(url: str | None, tmp_path) -> None:
    with StateStore.open(url, tmp_path) as store:
        for rec in (record("a", at=1.0), record("b", at=2.0, label="staging", canary=True), record("c", prompt="x")):
            store.record(rec)
        store.flush()
        assert [r.id for r in store.records("support")] == ["a", "b"]
        assert store.records("support", label="staging") == [record("b", at=2.0, label="staging", canary=True)]
        assert [r.id for r in store.records("support", since=1.5)] == ["b"]
        assert store.request("a") == record("a", at=1.0)
        assert store.request("nope") is None


def test_feedback_survives_a_restart(url: str | None, tmp_path) -> None:
    with StateStore.open(url, tmp_path) as store:
        store.record(record("a"))
        given = store.add_feedback("a", 1.0, comment="spot on", user="ada")
    with StateStore.open(url, tmp_path) as store:
        assert store.feedback_of("support", "production") == [(record("a"), given)]


def test_a_second_feedback_from_the_same_user_replaces_the_first(url: str | None, tmp_path) -> None:
    with StateStore.open(url, tmp_path) as store:
        store.record(record("a"))
        store.add_feedback("a", 1.0, user="ada")
        store.add_feedback("a", 0.0, comment="wrong after all", user="ada")
        store.add_feedback("a", 0.5)
        store.add_feedback("a", 1.0, comment="anonymous again")
        given = {f.user: (f.score, f.comment) for _, f in store.feedback_of("support")}
    assert given == {"ada": (0.0, "wrong after all"), None: (1.0, "anonymous again")}


def test_feedback_on_an_unknown_request_is_refused(url: str | None, tmp_path) -> None:
    with StateStore.open(url, tmp_path) as store, pytest.raises(UnknownRequest, match="no request 'nope'"):
        store.add_feedback("nope", 1.0)


@pytest.mark.parametrize("score", [-0.1, 1.01, float("nan"), True, "1", None])
def test_scores_outside_zero_to_one_are_refused(tmp_path, score: object) -> None:
    with StateStore.open(None, tmp_path) as store:
        store.record(record("a"))
        with pytest.raises(PromptOpsError, match="a number from 0 to 1"):
            store.add_feedback("a", score)  # type: ignore[arg-type]
        assert store.feedback_of("support") == []


def test_nul_characters_are_dropped_on_both_databases(url: str | None, tmp_path) -> None:
    with StateStore.open(url, tmp_path) as store:
        store.record(record("a", ok=False, error="bad\x00byte"))
        store.add_feedback("a", 0.0, comment="\x00odd")
        [(kept, given)] = store.feedback_of("support")
    assert (kept.error, given.comment) == ("badbyte", "odd")


def test_a_database_locked_too_long_is_reported(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    with StateStore.open(None, tmp_path) as store:
        store.record(record("a"))
        store.flush()
        locker = lock(tmp_path)
        with pytest.raises(StateUnavailable, match="cannot write feedback to the state database .*database is locked"):
            store.add_feedback("a", 1.0)
        locker.rollback()


def test_the_default_store_keeps_its_folder_out_of_git(tmp_path) -> None:
    repo = GitRepo(tmp_path)
    with StateStore.open(None, repo.path):
        pass
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""
