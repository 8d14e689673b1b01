"""The state database's URL: the default file, the drivers we speak, and forms fit to show (no password)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote_plus

import sqlalchemy as sa

from promptops.errors import PromptOpsError
from promptops.files import keep_out_of_git

DEFAULT_FILE = Path(".promptops") / "state.db"  # under the repository the gateway serves; never committed
FIX = "use sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
POSTGRES = {"postgresql", "postgres", "postgresql+psycopg"}  # psycopg 3 is the driver we ship
SQLITE = {"sqlite", "sqlite+pysqlite"}


def resolve(url: str | None, repo: Path) -> sa.URL:
    """`url` as SQLAlchemy will use it; None: `<repo>/.promptops/state.db`. Creates a SQLite file's folder."""
    if not url:
        return _sqlite_file(sa.URL.create("sqlite", database=str(repo / DEFAULT_FILE)))
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise PromptOpsError("the state database URL is not a database URL", fix=FIX) from None  # may hold a password
    if parsed.drivername in POSTGRES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in SQLITE:
        return _sqlite_file(parsed.set(drivername="sqlite"))
    raise PromptOpsError(f"unsupported state database {parsed.drivername!r}", fix=FIX)


def _sqlite_file(url: sa.URL) -> sa.URL:
    if not url.database or url.database == ":memory:":
        raise PromptOpsError("an in-memory state database would lose every record when the server stops",
                             fix="name a file: sqlite:///PATH (or leave the URL unset for .promptops/state.db)")
    folder = Path(url.database).parent
    folder.mkdir(parents=True, exist_ok=True)
    keep_out_of_git(folder)
    return url


def shown(url: sa.URL) -> str:
    """The URL with its password replaced by ***: the only form that reaches a repr, a log line or an error."""
    return url.render_as_string(hide_password=True)


def scrubbed(text: str, url: sa.URL) -> str:
    """`text` (a driver's error message, say) with any copy of the URL's password replaced by ***."""
    if url.password:
        for secret in {str(url.password), quote_plus(str(url.password))}:
            text = text.replace(secret, "***")
    return text

