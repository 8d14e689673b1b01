"""Alembic's environment for the state database.

:func:`promptops.state.migrations.upgrade` runs it with a connection that is already inside a locked
transaction (`config.attributes["connection"]`), so alembic neither connects nor commits here.
"""

from __future__ import annotations

from alembic import context

from promptops.state.migrations import VERSION_TABLE
from promptops.state.tables import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
