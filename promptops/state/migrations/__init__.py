"""The state database's schema migrations (Alembic), run in code when a store opens: no alembic.ini.

:func:`upgrade` is safe to run from any number of processes at once. The whole run is one transaction that
first takes a database-wide lock (SQLite's write lock through ``BEGIN IMMEDIATE``, a PostgreSQL
transaction-level advisory lock), so a second gateway opening the same database waits, then finds it at
head and changes nothing; if the run fails, nothing of it is kept. Within one process a thread lock also
serialises runs, because alembic's ``context`` is a module global.

A new revision: change ``tables.py``, then let alembic write ``versions/NNNN_what.py`` from the difference
against a database at head, and read it over::

    with engine.begin() as connection:
        cfg = migrations.config(connection)
        alembic.command.revision(cfg, "what changed", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from promptops.state.engine import WRITE

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "promptops_state_version"  # not alembic_version: a shared PostgreSQL database may hold others
ADVISORY_LOCK_KEY = 0x70726F6D70746F70  # b"promptop" as a bigint: any fixed key works, every replica uses this one
_in_process = threading.Lock()


def config(connection: sa.Connection) -> Config:
    """An Alembic config for this folder that runs `env.py` on `connection` (already in a transaction)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE).replace("%", "%%"))  # configparser interpolates %
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest revision (a no-op when it is there already)."""
    with _in_process, engine.execution_options(**WRITE).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        command.upgrade(config(connection), "head")


def head() -> str:
    """The newest revision this code knows."""
    return ScriptDirectory(str(HERE)).get_current_head() or ""
