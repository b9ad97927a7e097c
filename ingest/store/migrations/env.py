"""Alembic's environment for ingest: migrations run on the connection the store hands over.

``ingest.store.migrate`` calls Alembic with ``config.attributes["connection"]`` set to
an open (synchronous facade of an async) connection inside the store's transaction, so
a migration and the lock taken around it share one transaction.
"""

from __future__ import annotations

from alembic import context

from ingest.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite",
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
