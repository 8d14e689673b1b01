"""The catalog a server answers from, kept current without ever making a reader wait for a writer.

:class:`LiveCatalog` owns a second :class:`PromptStore` on the same repository (its own caches and
in-memory lock, which no writer ever holds) and the current :class:`Catalog`. A reader checks a
few `stat` results (microseconds, no git, no lock); when git moved, the next catalog is built in a
worker thread and swapped in when done, once for every reader waiting on it. When the newest
commit does not validate, the last good catalog stays and the problems are reported (`state()`),
until a commit that validates arrives.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from promptops.errors import Problem, PromptInvalid, StoreError
from promptops.store import catalog as catalogs
from promptops.store.catalog import Catalog
from promptops.store.model import Resolved
from promptops.store.resolve import Default

if TYPE_CHECKING:
    from promptops.store import PromptStore

log = logging.getLogger("promptops.store")


class LiveCatalog:
    """The current catalog of one repository branch for a server (see the module docstring)."""

    def __init__(self, store: PromptStore, *, drafts: bool = False) -> None:
        self.reader = store.twin()
        self.drafts = drafts
        self.catalog: Catalog | None = None
        self.problems: list[Problem] = []  # of the newest commit, while it does not validate
        self.error: str | None = None  # a git failure of the last build (the catalog stays as it was)
        self.checked_at: float | None = None
        self._seen: tuple[tuple[Any, ...], dict[str, tuple[Any, ...]]] | None = None
        self._build_lock = threading.Lock()  # one build at a time; never taken by a writer
        self._building: asyncio.Future[None] | None = None

    # -- freshness ----------------------------------------------------------------------------------

    def fresh(self, name: str | None = None) -> bool:
        """True while git has not moved since the last build was tried (stats only)."""
        seen = self._seen
        if seen is None or self.reader.state_key() != seen[0]:
            return False
        tags = seen[1].get(name) if name is not None else None
        return tags is None or self.reader.approvals.key(name) == tags  # type: ignore[arg-type]

    def build(self) -> None:
        """Build the catalog of the newest commit (blocking: a worker thread); keep the last good one when
        it does not validate, the whole catalog when git fails."""
        with self._build_lock:
            store, previous = self.reader, self.catalog
            key = store.state_key()
            tags = {name: store.approvals.key(name) for name in (previous.versions if previous else ())}
            started = time.perf_counter()
            try:
                with store.cache_lock:
                    if previous is None:
                        built, problems = catalogs.build_last_good(store, drafts=self.drafts)
                    else:
                        try:
                            built, problems = catalogs.build(store, drafts=self.drafts), []
                        except PromptInvalid as exc:
                            built, problems = previous, exc.problems
                error = None
            except StoreError as exc:
                built, problems, error = previous, self.problems, exc.message
            if problems and problems != self.problems:
                log.warning("serving %s: the newest commit does not validate: %s",
                            f"commit {built.head[:7]}" if built and built.head else "nothing",
                            "; ".join(str(p) for p in problems[:5]))
            if error:
                log.warning("store read failed, serving what was read before: %s", error)
            self.catalog, self.problems, self.error = built, problems, error
            self._seen = (key, {**tags, **(built.tag_keys if built else {})})
            self.checked_at = time.time()
            log.debug("catalog built in %.1f ms", (time.perf_counter() - started) * 1000)

    async def refresh(self) -> None:
        """Build in a worker thread; concurrent callers share one build."""
        task = self._building
        if task is None or task.done():
            task = self._building = asyncio.ensure_future(asyncio.to_thread(self.build))
        await asyncio.shield(task)

    # -- answers ------------------------------------------------------------------------------------

    def _usable(self) -> Catalog:
        if self.catalog is None:
            if self.problems:
                raise PromptInvalid(self.problems)
            raise StoreError(f"the prompt repository could not be read: {self.error or 'not built yet'}",
                             fix="see the gateway log and GET /readyz")
        return self.catalog

    async def current(self, name: str | None = None) -> Catalog:
        """The catalog, rebuilt first (in a worker thread) when git moved."""
        if not self.fresh(name):
            await self.refresh()
        return self._usable()

    def current_blocking(self, name: str | None = None) -> Catalog:
        """`current` for code already in a worker thread."""
        if not self.fresh(name):
            self.build()
        return self._usable()

    async def resolve(self, ref: str, name: str, default: Default) -> tuple[Resolved, Catalog]:
        """`ref` against the current catalog: remembered answers at once, others in a worker thread."""
        catalog = await self.current(name)
        found = catalog.remembered(ref, default, self.drafts)
        if found is None:
            found = await asyncio.to_thread(self._resolve, catalog, ref, default)
        return found, catalog

    def resolve_blocking(self, ref: str, name: str, default: Default) -> tuple[Resolved, Catalog]:
        """`resolve` for code already in a worker thread."""
        catalog = self.current_blocking(name)
        return self._resolve(catalog, ref, default), catalog

    def _resolve(self, catalog: Catalog, ref: str, default: Default) -> Resolved:
        return catalogs.resolve(self.reader, catalog, ref, default, self.drafts)

    def state(self) -> dict[str, Any]:
        """What /readyz and /v1/store report: the commit served and, when degraded, why."""
        catalog = self.catalog
        out: dict[str, Any] = {"commit": catalog.head if catalog else None,
                               "degraded": bool(self.problems or self.error)}
        if self.problems:
            out["reason"] = ("the newest commit does not validate; serving the last commit that did"
                             if catalog else "no commit validates; nothing is served")
            out["problems"] = [str(p) for p in self.problems[:20]]
        if self.error:
            out["error"] = self.error
        return out


__all__ = ["LiveCatalog"]
