"""Request records and feedback, kept where the gateway keeps its state (never in git).

One database per deployment: SQLite at ``<repo>/.promptops/state.db`` by default, PostgreSQL when a fleet
of gateways shares it. :class:`StateStore` is the only door; the concepts live in their own modules:

==============  ===============================================================
``records``     what is kept: :class:`RequestRecord`, :class:`Feedback` (no database import)
``urls``        the default file, the drivers we speak, the URL without its password
``engine``      SQLAlchemy engines: SQLite in WAL mode for several processes, PostgreSQL
``tables``      the tables in SQLAlchemy Core
``migrations``  Alembic revisions, run under a lock when a store opens
``writer``      the bounded queue and the thread that batches inserts
``store``       :class:`StateStore`: open, record, feedback, reads
==============  ===============================================================

:class:`StateStore` is imported on first use: SQLAlchemy and Alembic take ~0.3 s to import, and code that
only computes over records (``promptops.canary``) needs neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from promptops.state.records import Feedback, RequestRecord

if TYPE_CHECKING:
    from promptops.state.store import StateStore, StateUnavailable

__all__ = ["Feedback", "RequestRecord", "StateStore", "StateUnavailable"]


def __getattr__(name: str) -> Any:
    if name in ("StateStore", "StateUnavailable"):
        from promptops.state import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
