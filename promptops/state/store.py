"""StateStore, the package's one door: request records and feedback in one database."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.util import CommandError
from sqlalchemy.dialects import postgresql, sqlite

from promptops.errors import PromptOpsError, StateUnavailable, UnknownRequest
from promptops.state import engine as engines
from promptops.state import migrations, urls
from promptops.state.records import Feedback, RequestRecord
from promptops.state.tables import feedback, requests
from promptops.state.writer import QUEUE_SIZE, Writer

RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RequestRecord))
CLOSE_TIMEOUT_S = 5.0


class StateStore:
    """Request records and feedback, in SQLite (one server) or PostgreSQL (a fleet sharing one database).

    Open with :meth:`open`; :meth:`close` (or a ``with`` block) when done. :meth:`record` never waits; the
    reads see what the writer thread has committed, so :meth:`flush` first to include records queued a
    moment ago. Every method but :meth:`record` may block on the database: call them off the event loop.
    """

    def __init__(self, engine: sa.Engine, url: sa.URL, *, queue_size: int = QUEUE_SIZE) -> None:
        self._engine = engine
        self._url = url
        self.url = urls.shown(url)
        self._dialect_insert = sqlite.insert if engine.dialect.name == "sqlite" else postgresql.insert  # upserts
        self._writer = Writer(self._write_records, transient=_transient, describe=self._describe,
                              queue_size=queue_size)
        self._closed = False

    @classmethod
    def open(cls, url: str | None, repo: Path, *, queue_size: int = QUEUE_SIZE) -> StateStore:
        """Open (creating or migrating as needed) the database at `url`; None: `<repo>/.promptops/state.db`.

        Any number of processes may open one database at once: the migration runs once, under a lock.
        """
        resolved = urls.resolve(url, repo)
        engine = engines.create(resolved)
        try:
            migrations.upgrade(engine)
        except CommandError as exc:  # alembic: a revision this code does not know
            engine.dispose()
            raise StateUnavailable(
                f"the state database {urls.shown(resolved)} has a schema this promptops does not know: "
                f"{urls.scrubbed(str(exc), resolved)}",
                fix="upgrade promptops on this server to the version the others run, or use another database",
            ) from None
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise _unavailable("open", resolved, exc) from None
        return cls(engine, resolved, queue_size=queue_size)

    def __repr__(self) -> str:
        return f"StateStore({self.url!r})"

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def record(self, record: RequestRecord) -> None:
        """Queue `record` for the writer thread and return at once. When the queue is full (the database is
        down or far behind) the record is dropped and counted in :attr:`dropped`."""
        self._writer.put(record)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every record queued so far is written, or `timeout_s` passed (then :attr:`pending` > 0)."""
        self._writer.flush(timeout_s)

    @property
    def pending(self) -> int:
        """Records queued and not yet written."""
        return self._writer.pending

    @property
    def dropped(self) -> int:
        """Records never written: dropped on a full queue, refused by the database, or lost at close."""
        return self._writer.dropped + self._writer.rejected + self._writer.lost

    def add_feedback(self, request_id: str, score: float, comment: str | None = None,
                     user: str | None = None) -> Feedback:
        """Keep a judgement of the answer to `request_id` (score 0 bad .. 1 good; thumbs up is 1, down 0).

        One feedback per (request, user): a second one from the same user (or a second anonymous one)
        replaces the first. Flushes queued records first, so an answer given a moment ago is found.
        Raises UnknownRequest when there is no such request, PromptOpsError when the score is not in 0..1.
        """
        score = _checked_score(score)
        self.flush()
        given = Feedback(request_id=request_id, score=score, comment=_text(comment), user=user, at=time.time())
        insert = self._dialect_insert(feedback).values(request_id=request_id, user_id=user or "", score=score,
                                                       comment=given.comment, at=given.at)
        upsert = insert.on_conflict_do_update(index_elements=[feedback.c.request_id, feedback.c.user_id],
                                              set_={c: insert.excluded[c] for c in ("score", "comment", "at")})
        with self._errors("write feedback to"), self._engine.execution_options(**engines.WRITE).begin() as db:
            if db.execute(sa.select(requests.c.id).where(requests.c.id == request_id)).first() is None:
                raise UnknownRequest(f"no request {request_id[:80]!r} in the state database",
                                     fix="send the X-Request-Id of an answer this server (or its fleet) gave")
            db.execute(upsert)
        return given

    def request(self, request_id: str) -> RequestRecord | None:
        """The record of one request, or None."""
        with self._errors("read"), self._engine.connect() as db:
            row = db.execute(sa.select(requests).where(requests.c.id == request_id)).first()
        return None if row is None else _record(row._mapping)

    def records(self, prompt: str, label: str | None = None, since: float | None = None) -> list[RequestRecord]:
        """The requests of `prompt` (of every label when `label` is None) from `since` on, oldest first."""
        query = sa.select(requests).where(*_window(prompt, label, since)).order_by(requests.c.at, requests.c.id)
        with self._errors("read"), self._engine.connect() as db:
            return [_record(row._mapping) for row in db.execute(query)]

    def feedback_of(self, prompt: str, label: str | None = None,
                    since: float | None = None) -> list[tuple[RequestRecord, Feedback]]:
        """Each feedback given on a request of `prompt`, with that request, oldest request first. `label` and
        `since` select by the request (its label, its arrival), as :meth:`records` does."""
        query = (sa.select(requests, feedback.c.user_id, feedback.c.score, feedback.c.comment,
                           feedback.c.at.label("feedback_at"))
                 .join(feedback, feedback.c.request_id == requests.c.id)
                 .where(*_window(prompt, label, since))
                 .order_by(requests.c.at, requests.c.id, feedback.c.at))
        with self._errors("read"), self._engine.connect() as db:
            rows = [row._mapping for row in db.execute(query)]
        return [(_record(row), Feedback(request_id=row["id"], score=row["score"], comment=row["comment"],
                                        user=row["user_id"] or None, at=row["feedback_at"])) for row in rows]

    def close(self) -> None:
        """Write what is queued (waiting at most a few seconds), stop the writer thread, close connections."""
        if self._closed:
            return
        self._closed = True
        self._writer.close(CLOSE_TIMEOUT_S)
        self._engine.dispose()

    def _write_records(self, batch: Sequence[RequestRecord]) -> None:
        rows = [{name: _text(getattr(r, name)) for name in RECORD_FIELDS} for r in batch]
        # a batch retried after its commit was lost in transit must not fail on its own rows
        insert = self._dialect_insert(requests).on_conflict_do_nothing(index_elements=[requests.c.id])
        with self._engine.execution_options(**engines.WRITE).begin() as db:
            db.execute(insert, rows)

    def _describe(self, exc: Exception) -> str:
        return _first_line(exc, self._url)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:
            raise _unavailable(action, self._url, exc) from None


def _first_line(exc: Exception, url: sa.URL) -> str:
    """The driver's own message (SQLAlchemy's adds the SQL and its parameters: callers' data), no password."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines() or [""]
    return urls.scrubbed(f"{type(orig).__name__}: {lines[0]}", url)


def _unavailable(action: str, url: sa.URL, exc: Exception) -> StateUnavailable:
    return StateUnavailable(f"cannot {action} the state database {urls.shown(url)}: {_first_line(exc, url)}",
                            fix="check that the database is running and reachable, and that the state URL is right")


def _transient(exc: Exception) -> bool:
    """Worth retrying the same batch: the database is locked, restarting or unreachable."""
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or bool(
        getattr(exc, "connection_invalidated", False))


def _checked_score(score: Any) -> float:
    if isinstance(score, bool) or not isinstance(score, int | float) or math.isnan(score) or not 0 <= score <= 1:
        raise PromptOpsError(f"a feedback score is a number from 0 to 1, not {score!r:.40}",
                             fix='send "score" between 0 (bad) and 1 (good), or "thumbs": "up" / "down"')
    return float(score)


def _text(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL characters: drop them (from every store, so both keep the same)."""
    return value.replace("\x00", "") if isinstance(value, str) else value


def _window(prompt: str, label: str | None, since: float | None) -> list[sa.ColumnElement[bool]]:
    where = [requests.c.prompt == prompt]
    if label is not None:
        where.append(requests.c.label == label)
    if since is not None:
        where.append(requests.c.at >= since)
    return where


def _record(row: Any) -> RequestRecord:
    return RequestRecord(**{name: row[name] for name in RECORD_FIELDS})
