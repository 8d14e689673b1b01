"""A fleet on one real PostgreSQL server: replicas share records and feedback; the password is never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from promptops.state import StateStore
from tests.state.conftest import Postgres, record


def test_two_replicas_see_each_others_records_and_feedback(pg_url: str, tmp_path: Path) -> None:
    with StateStore.open(pg_url, tmp_path) as one, StateStore.open(pg_url, tmp_path) as two:
        one.record(record("a", replica="r1"))
        two.record(record("b", replica="r2", canary=True))
        one.flush()
        two.add_feedback("a", 0.0, user="ada")
        one.add_feedback("b", 1.0)
        assert [(r.id, r.replica) for r in two.records("support", "production")] == [("a", "r1"), ("b", "r2")]
        assert [(r.id, f.score, f.user) for r, f in one.feedback_of("support")] == [("a", 0.0, "ada"), ("b", 1.0, None)]


def test_the_password_never_shows(postgres: Postgres, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = postgres.url(postgres.create_database(), password="s3cret")  # trust auth: accepted, never checked
    with StateStore.open(url, tmp_path) as store:
        store.record(record("a"))
        shown = f"{store!r} {store} {store.url}"
    assert "postgres:***@127.0.0.1" in shown and "s3cret" not in shown + caplog.text
