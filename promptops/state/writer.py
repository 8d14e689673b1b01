"""The request writer: callers hand records to a bounded queue and go on; one daemon thread inserts them.

The thread writes a batch (one ``executemany`` in one transaction) every :data:`BATCH_INTERVAL_S` or every
:data:`BATCH_SIZE` records, whichever comes first, and at once when :meth:`Writer.flush` asks. A failed
batch (database locked past the busy timeout, PostgreSQL restarting) is kept and retried with backoff
while new records wait in the queue; when the queue is full a new record is dropped and counted, and a
warning is logged at most once a minute. A record the database refuses for what it holds (a wrong type)
is skipped and counted, so it cannot hold up the others. Nothing here ever makes a caller of
:meth:`Writer.put` wait for the database.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from promptops.state.records import RequestRecord

log = logging.getLogger("promptops.state")

QUEUE_SIZE = 10_000
BATCH_SIZE = 500
BATCH_INTERVAL_S = 0.1
WARN_EVERY_S = 60.0
RETRY_MAX_S = 5.0
_WAKE: Final = object()  # put by flush() and close(): write what is there now


class Writer:
    """Queue + thread. `insert(batch)` does the database work and raises on failure; `transient(exc)` says
    whether to retry the batch (locked, disconnected) or to write its records alone and skip the refused one."""

    def __init__(self, insert: Callable[[Sequence[RequestRecord]], None], *, transient: Callable[[Exception], bool],
                 describe: Callable[[Exception], str], queue_size: int = QUEUE_SIZE) -> None:
        self._insert = insert
        self._transient = transient  # worth retrying (locked, disconnected), or a bad record (a wrong type)
        self._describe = describe  # an exception as a log line (without secrets)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._accepted = 0  # records put in the queue
        self._handled = 0  # records written, or given up at close
        self.dropped = 0  # records refused because the queue was full (or the writer closed)
        self.lost = 0  # records still unwritten when close() gave up on the database
        self.rejected = 0  # records the database refused (not retried: they would block the rest)
        self._warned: dict[str, float] = {}
        self._stop = threading.Event()
        self._gave_up = False  # closing and the database failed: count the rest as lost, try no more
        self._thread = threading.Thread(target=self._run, name="promptops-state-writer", daemon=True)
        self._thread.start()

    def put(self, record: RequestRecord) -> None:
        """Queue `record` for the thread; never waits (drops and counts it when the queue is full)."""
        with self._lock:
            if not self._stop.is_set():
                try:
                    self._queue.put_nowait(record)
                    self._accepted += 1
                    return
                except queue.Full:
                    pass
            self.dropped += 1
            dropped = self.dropped
        self._warn("dropped", "state: %d request records dropped so far: the queue is full (the database is slow or "
                   "unavailable) or the store is closed", dropped)

    @property
    def pending(self) -> int:
        """Records accepted but not yet written."""
        with self._lock:
            return self._accepted - self._handled

    def flush(self, timeout_s: float) -> bool:
        """Wait until every record accepted so far is written; False if `timeout_s` passed first."""
        with self._lock:
            target = self._accepted
        self._nudge()
        with self._written:
            return self._written.wait_for(lambda: self._handled >= target, timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        """Write what is queued (waiting at most `timeout_s`), then stop the thread."""
        self.flush(timeout_s)
        with self._lock:  # a put() either sees the stop or queues its record ahead of the last wake
            self._stop.set()
        self._nudge()
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # the database is too slow to take the rest: say how much is at risk
            log.warning("state: closing with %d request records not yet written", self._queue.qsize())

    def _nudge(self) -> None:
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # a full queue fills a batch at once anyway

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch:
                if self._gave_up:
                    self.lost += len(batch)
                else:
                    self._store(batch)
                with self._written:
                    self._handled += len(batch)
                    self._written.notify_all()
            elif self._stop.is_set() and self._queue.empty():  # a stale wake from a timed-out flush is not the end
                if self.lost:
                    log.warning("state: %d request records not written: the database failed while closing",
                                self.lost)
                return

    def _next_batch(self) -> list[RequestRecord]:
        """Block for a first record, then gather more until the batch is full, the interval ends or a wake."""
        batch: list[RequestRecord] = []
        deadline = None
        while len(batch) < BATCH_SIZE:
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _WAKE:
                if batch or self._stop.is_set():
                    break
                continue
            assert isinstance(item, RequestRecord)
            batch.append(item)
            deadline = deadline or time.monotonic() + BATCH_INTERVAL_S
        return batch

    def _store(self, batch: list[RequestRecord]) -> None:
        """Insert `batch`: retry what may pass later, write records alone when one is refused for what it holds."""
        delay = BATCH_INTERVAL_S
        while True:
            try:
                self._insert(batch)
                return
            except Exception as exc:  # the database's failures are many kinds; none may kill the thread
                if not self._transient(exc):
                    if len(batch) == 1:
                        self.rejected += 1
                        self._warn("rejected", "state: request record %r refused by the database (%d so far): %s",
                                   batch[0].id[:80], self.rejected, self._describe(exc))
                    else:
                        for record in batch:
                            self._store([record])
                    return
                if self._stop.is_set():  # closing: do not hold the process up retrying
                    self.lost += len(batch)
                    self._gave_up = True
                    return
                self._warn("failed", "state: writing %d request records failed, retrying: %s", len(batch),
                           self._describe(exc))
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[kind] = now
            log.warning(message, *args)
