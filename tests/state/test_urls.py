"""State URLs: the default file, PostgreSQL spellings rewritten to psycopg, unusable URLs refused, no password shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptops.errors import PromptOpsError
from promptops.state import StateStore, StateUnavailable, urls


def test_the_default_is_a_file_in_the_repository(tmp_path: Path) -> None:
    url = urls.resolve(None, tmp_path)
    assert (url.drivername, url.database) == ("sqlite", str(tmp_path / ".promptops" / "state.db"))
    assert (tmp_path / ".promptops").is_dir()


@pytest.mark.parametrize("given, used", [
    ("postgresql://bob@db:5433/state", "postgresql+psycopg://bob@db:5433/state"),
    ("postgres://bob@db/state", "postgresql+psycopg://bob@db/state"),
    ("postgresql+psycopg://bob:pw@db/state", "postgresql+psycopg://bob:***@db/state"),
    ("sqlite:///{tmp}/elsewhere/state.db", "sqlite:///{tmp}/elsewhere/state.db"),
])
def test_urls_are_resolved(tmp_path: Path, given: str, used: str) -> None:
    assert urls.shown(urls.resolve(given.format(tmp=tmp_path), tmp_path)) == used.format(tmp=tmp_path)


@pytest.mark.parametrize("given, message", [
    ("mysql://bob:pw@db/state", "unsupported state database 'mysql'"),
    ("sqlite://", "in-memory state database"),
    ("sqlite:///:memory:", "in-memory state database"),
    ("no-scheme-s3cret", "not a database URL"),
])
def test_unusable_urls_are_refused(tmp_path: Path, given: str, message: str) -> None:
    with pytest.raises(PromptOpsError, match=message) as refused:
        urls.resolve(given, tmp_path)
    assert "s3cret" not in str(refused.value) and "pw" not in str(refused.value)


@pytest.mark.parametrize("password", ["s3cret", "p@ss:w/rd"])
def test_an_unreachable_server_is_reported_without_the_password(tmp_path: Path, password: str) -> None:
    from urllib.parse import quote_plus

    with pytest.raises(StateUnavailable, match=r"cannot open the state database postgresql\+psycopg://bob:\*\*\*@") as e:
        StateStore.open(f"postgresql://bob:{quote_plus(password)}@127.0.0.1:1/state", tmp_path)
    assert password not in str(e.value) and quote_plus(password) not in str(e.value)
