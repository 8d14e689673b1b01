"""The writer thread: record() never waits, even with the SQLite file locked by another connection."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from promptops.state import StateStore, engine, store
from tests.state.conftest import lock, record


def test_record_returns_at_once_while_another_connection_holds_the_write_lock(tmp_path: Path) -> None:
    with StateStore.open(None, tmp_path) as state:
        locker = lock(tmp_path)
        started = time.perf_counter()
        state.record(record("a"))
        took = time.perf_counter() - started
        state.flush(timeout_s=0.3)
        assert (state.pending, state.request("a")) == (1, None)  # waiting for the lock; readers are not blocked
        locker.rollback()
        state.flush()
        assert (took < 0.05, state.request("a")) == (True, record("a"))


def test_a_lock_held_past_the_busy_timeout_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    with StateStore.open(None, tmp_path) as state:
        locker = lock(tmp_path)
        state.record(record("a"))
        time.sleep(0.5)
        locker.rollback()
        state.flush()
        assert (state.request("a"), state.dropped) == (record("a"), 0)
    assert "writing 1 request records failed, retrying: OperationalError: database is locked" in caplog.text


def test_a_full_queue_drops_counts_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with StateStore.open(None, tmp_path, queue_size=2) as state:
        locker = lock(tmp_path)
        for i in range(20):
            state.record(record(f"r{i}"))
        locker.rollback()
        state.flush()
        assert state.dropped > 0 and len(state.records("support")) + state.dropped == 20
    assert [r.levelno for r in caplog.records if "dropped" in r.message] == [logging.WARNING]


def test_a_record_the_database_refuses_does_not_hold_up_the_others(url: str | None, tmp_path: Path) -> None:
    with StateStore.open(url, tmp_path) as state:
        for rec in (record("a"), record("bad", endpoint=None), record("b")):
            state.record(rec)
        state.flush()
        assert ([r.id for r in state.records("support")], state.dropped) == (["a", "b"], 1)


def test_close_gives_up_on_a_locked_database_and_counts_the_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    monkeypatch.setattr(store, "CLOSE_TIMEOUT_S", 0.3)
    state = StateStore.open(None, tmp_path)
    locker = lock(tmp_path)
    state.record(record("a"))
    state.close()
    locker.rollback()
    assert state.dropped == 1 and "1 request records not written" in caplog.text
