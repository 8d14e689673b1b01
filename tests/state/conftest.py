"""A real PostgreSQL server for the session (Debian's binaries), a fresh database per test, and record helpers."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from promptops.state import RequestRecord

INSTALL = "apt-get install -y postgresql (Debian 12: PostgreSQL 15)"
_databases = itertools.count(1)


def record(id: str, *, prompt: str = "support", label: str | None = "production", at: float = 1000.0,
           replica: str = "r1", **changes: object) -> RequestRecord:
    """A successful request record; keyword arguments override any field."""
    fields: dict[str, object] = dict(version=3, canary=False, endpoint="/v1/chat/completions", ok=True, error=None,
                                     latency_ms=812.5, ttft_ms=95.0, prompt_tokens=42, completion_tokens=120)
    return RequestRecord(id=id, at=at, prompt=prompt, label=label, replica=replica, **{**fields, **changes})


def lock(repo: Path) -> sqlite3.Connection:
    """Another connection holding the state file's write lock until it rolls back (the real SQLite boundary)."""
    locker = sqlite3.connect(repo / ".promptops" / "state.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    return locker


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    candidates = ([str(Path(found).resolve().parent)] if found else []) + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return next((Path(d) for d in candidates if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """One throwaway server on 127.0.0.1; PostgreSQL refuses to run as root, so as root it runs as `postgres`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir, self.port = bindir, _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="promptops-pg-"))  # not under pytest's 0700 root-only folder
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bindir / tool), *args], cwd=self.root, capture_output=True,
                              text=True, timeout=120)
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        assert done.returncode == 0, f"{tool} failed:\n{done.stdout}\n{done.stderr}\n{log}"

    def start(self) -> None:
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
                 "--locale=C")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"state_{next(_databases)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("PROMPTOPS_SKIP_POSTGRES") == "1":
            pytest.skip(f"no PostgreSQL server binaries (initdb, pg_ctl) and PROMPTOPS_SKIP_POSTGRES=1; {INSTALL}")
        pytest.fail(f"no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin: "
                    f"{INSTALL}, or set PROMPTOPS_SKIP_POSTGRES=1 to skip these tests")
    server = Postgres(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """The URL of a new, empty database on the session's server."""
    return postgres.url(postgres.create_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str | None:
    """Each test that takes it runs twice: on the default SQLite file (None) and on a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")
