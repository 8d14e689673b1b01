"""SQLAlchemy engines for the state database: SQLite shared by several processes, or PostgreSQL for a fleet.

SQLite runs in WAL mode (readers never wait for the writer, and it survives several gateways on one file)
with a busy timeout, and SQLAlchemy emits ``BEGIN`` itself: the ``sqlite3`` module's legacy transaction
control skips it before DDL, which would make a migration half-apply. A connection with the :data:`WRITE`
execution option begins with ``BEGIN IMMEDIATE``, taking the write lock up front so that a transaction that
reads then writes never fails on a snapshot another process moved (SQLite cannot wait in that case).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

SQLITE_BUSY_TIMEOUT_S = 10.0  # how long a statement waits for another process's write lock
POSTGRES_CONNECT_TIMEOUT_S = 10
WRITE = {"promptops_write": True}  # execution options of a connection that will write


def create(url: sa.URL) -> sa.Engine:
    """An engine for `url` (already checked by :func:`promptops.state.urls.resolve`)."""
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # sqlite3 emits no BEGIN of its own: _sqlite_begin does
    _wal(dbapi_connection)
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # never corrupt; a power cut may lose the last commits
    dbapi_connection.execute("PRAGMA foreign_keys=ON")


def _wal(dbapi_connection: sqlite3.Connection) -> None:
    """Switch the file to WAL (kept in the file: a no-op once done). The switch needs the file to itself and
    SQLite refuses it at once, without the busy timeout, while another process opens the new file: retry."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",):
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("could not switch the state database to WAL mode")
        time.sleep(0.01)


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get("promptops_write")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
