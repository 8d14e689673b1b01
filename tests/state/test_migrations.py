"""Migrations: the tables match them, a second open changes nothing, concurrent opens (threads, processes) work."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from promptops.state import StateStore, StateUnavailable, migrations, tables, urls
from tests.state.conftest import record


def test_the_tables_match_the_migrations(url: str | None, tmp_path: Path) -> None:
    StateStore.open(url, tmp_path).close()
    engine = sa.create_engine(urls.resolve(url, tmp_path))
    with engine.connect() as db:
        context = MigrationContext.configure(db, opts={"version_table": migrations.VERSION_TABLE})
        assert compare_metadata(context, tables.metadata) == []
    engine.dispose()


def test_a_second_open_changes_nothing(url: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="alembic")
    with StateStore.open(url, tmp_path) as store:
        store.record(record("a"))
    with StateStore.open(url, tmp_path) as store:
        assert store.request("a") == record("a")
    assert [r.message for r in caplog.records if "Running upgrade" in r.message] == [
        f"Running upgrade  -> {migrations.head()}, Request records and feedback."]


def test_threads_opening_a_new_database_at_once(url: str | None, tmp_path: Path) -> None:
    start, failures = threading.Barrier(4), []

    def replica(n: int) -> None:
        start.wait()
        try:
            with StateStore.open(url, tmp_path) as store:
                store.record(record(f"r{n}", replica=f"r{n}"))
        except Exception as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with StateStore.open(url, tmp_path) as store:
        assert (failures, len(store.records("support"))) == ([], 4)


PROCESS = """
import sys
from pathlib import Path
from promptops.state import StateStore, store  # the imports take longer than the race: done before it
from tests.state.conftest import record
print("ready", flush=True)
sys.stdin.readline()
with StateStore.open(sys.argv[3] or None, Path(sys.argv[1])) as state:
    for i in range(50):
        state.record(record(f"{sys.argv[2]}-{i}"))
"""


def test_processes_opening_a_new_database_at_once(url: str | None, tmp_path: Path) -> None:
    runs = [subprocess.Popen([sys.executable, "-c", PROCESS, str(tmp_path), f"p{n}", url or ""], text=True,
                             cwd=Path(__file__).parents[2], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for n in range(4)]
    assert [run.stdout.readline() for run in runs] == ["ready\n"] * 4  # type: ignore[union-attr]
    for run in runs:
        run.stdin.write("go\n"), run.stdin.flush()  # type: ignore[union-attr, func-returns-value]
    assert [(run.wait(timeout=60), run.stderr.read()) for run in runs] == [(0, "")] * 4  # type: ignore[union-attr]
    with StateStore.open(url, tmp_path) as state:
        assert len(state.records("support")) == 200
    if url is None:
        with sqlite3.connect(tmp_path / ".promptops" / "state.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_database_migrated_by_a_newer_promptops_is_refused(url: str | None, tmp_path: Path) -> None:
    StateStore.open(url, tmp_path).close()
    engine = sa.create_engine(urls.resolve(url, tmp_path))
    with engine.begin() as db:
        db.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StateUnavailable, match="has a schema this promptops does not know"):
        StateStore.open(url, tmp_path)
