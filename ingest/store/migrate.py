"""Schema migrations with Alembic, under a lock, at every start and by ``ingest db upgrade``.

The revisions live in ``ingest/store/migrations/versions``: ``0001`` is schema 4 (the
baseline), ``0002`` the fleet (instances, leases).  A database made before Alembic
(tables but no ``alembic_version``) is brought to schema 4 with the old in-place steps
(``schema.UPGRADES``), stamped ``0001``, then upgraded like any other.

Two instances starting together must not both migrate: on PostgreSQL the whole upgrade
runs in one transaction holding an advisory lock (DDL is transactional there, so a
failed step leaves nothing half-done); on SQLite the caller holds a lock file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ingest.errors import StorageError
from ingest.store import schema as t

log = structlog.get_logger("ingest.store.migrate")

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001"  # schema 4
LOCK_KEY = 7_314_159_265  # pg_advisory_xact_lock key: "ingest schema migration"


@dataclass(frozen=True)
class Migration:
    """What an upgrade found and did."""

    before: str | None  # the revision found (None: an empty database)
    after: str  # the revision now (head)
    legacy_version: int | None = None  # a pre-Alembic schema_info version, if upgraded

    @property
    def changed(self) -> bool:
        return self.before != self.after


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this version of ingest knows."""
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def known_revisions() -> set[str]:
    return {s.revision for s in _scripts().walk_revisions()}


@functools.cache
def _scripts() -> ScriptDirectory:
    """The revision files, read once per process (they do not change while it runs)."""
    return ScriptDirectory.from_config(alembic_config())


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(conn: AsyncConnection, where: str) -> Migration:
    """Bring the database on ``conn`` (inside a transaction) to the head revision."""
    if conn.dialect.name == "postgresql":  # released when the transaction ends
        await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
    tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    before = await conn.run_sync(current_revision)
    legacy: int | None = None
    if before is None and "feeds" in tables:  # made before Alembic
        legacy = await _legacy_to_baseline(conn, tables, where)
        await conn.run_sync(lambda c: command.stamp(alembic_config(c), BASELINE))
    elif before is not None and before not in known_revisions():
        raise StorageError(
            f"the database {where} was made by a newer version of ingest (revision "
            f"{before}; this version knows up to {head()}). Upgrade ingest, or point "
            "database_url at another database.")
    await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
    migration = Migration(before if legacy is None else f"schema {legacy}", head(), legacy)
    if migration.changed and (before is not None or legacy is not None):
        log.info("database.upgraded", database=where, from_revision=migration.before,
                 to_revision=migration.after)
    return migration


async def _legacy_to_baseline(conn: AsyncConnection, tables: set[str], where: str) -> int:
    version = 1
    if "schema_info" in tables:
        version = (await conn.execute(select(func.max(t.schema_info.c.version)))).scalar() or 1
    if version == 4:
        return version
    if version > 4 or version not in t.UPGRADES:
        newer = version > 4
        raise StorageError(
            f"the database {where} was made by "
            + (f"a newer version of ingest (schema {version})" if newer
               else f"an older version of ingest (schema {version})")
            + f"; this version of ingest needs schema {t.SCHEMA_VERSION} and cannot convert "
            "it. Keep the old database for reference and point database_url at a new one.")
    for step in range(version, 4):
        for statement in t.UPGRADES[step]:
            await conn.exec_driver_sql(_idempotent(conn, statement))
    # The tables schemas 3 and 4 added (unchanged since, unlike feeds and entries).
    await conn.run_sync(lambda c: t.metadata.create_all(
        c, tables=[t.delivery_attempts, t.feed_notices]))
    await conn.execute(update(t.schema_info).values(version=4))
    return version


def _idempotent(conn: AsyncConnection, statement: str) -> str:
    if conn.dialect.name == "postgresql":
        return statement.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS")
    return statement


async def status(conn: AsyncConnection) -> tuple[str | None, str]:
    """(the database's revision, this version's head)."""
    return await conn.run_sync(current_revision), head()
