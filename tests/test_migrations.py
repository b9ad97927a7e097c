"""Alembic migrations on SQLite and PostgreSQL: they build exactly the schema the code
declares, take over pre-Alembic databases, refuse newer ones, and two instances starting
together migrate once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import empty_database
from sqlalchemy import text

from ingest.errors import StorageError
from ingest.store.migrate import BASELINE, head
from ingest.store.schema import SCHEMA_VERSION, metadata
from ingest.store.sql import SqlStore


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    async with empty_database(request.param, tmp_path) as found:
        yield found


async def _diff(store: SqlStore) -> list[object]:
    async with store.engine.connect() as conn:
        return await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}),
                                       metadata))


async def test_migrations_build_the_declared_schema(url: str) -> None:
    """From an empty database, the migrations give exactly the tables, columns and
    indexes of ``schema.py`` (no difference Alembic's autogenerate could find)."""
    store = SqlStore(url)
    try:
        migration = await store.init()
        assert (migration.before, migration.after) == (None, head())
        assert await _diff(store) == []
        assert await store.revision() == (head(), head())
        again = await store.init()  # a second start changes nothing
        assert not again.changed
    finally:
        await store.close()


async def test_downgrade_to_the_baseline_and_back(url: str) -> None:
    """Revision 0002 can be undone and redone (the fleet columns and table go and return)."""
    from alembic import command

    from ingest.store.migrate import alembic_config

    store = SqlStore(url)
    try:
        await store.init()
        async with store.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), BASELINE))
            tables = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
        assert "instances" not in tables
        migration = await store.init()
        assert (migration.before, migration.after) == (BASELINE, head())
        assert await _diff(store) == []
    finally:
        await store.close()


async def test_a_schema_4_database_made_before_alembic_is_taken_over(url: str) -> None:
    """A database of the previous release (schema 4, no alembic_version) is stamped as
    the baseline and upgraded; its rows stay."""
    from alembic import command

    from ingest.store.migrate import alembic_config

    store = SqlStore(url)
    try:
        async with store.engine.begin() as conn:  # what release 4 left: schema 4, no Alembic
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), BASELINE))
            await conn.execute(text("DROP TABLE alembic_version"))
            await conn.execute(text(
                "INSERT INTO feeds (id, url, title, tags, enabled, error_count, entries_seen) "
                "VALUES ('kept', 'http://x/feed', '', '[]', true, 0, 0)"))
        migration = await store.init()
        assert migration.legacy_version == 4
        assert migration.after == head()
        assert [r.feed.id for r in await store.feeds()] == ["kept"]
        async with store.engine.connect() as conn:
            version = (await conn.execute(text("SELECT version FROM schema_info"))).scalar()
        assert version == SCHEMA_VERSION
        assert await _diff(store) == []
    finally:
        await store.close()


async def test_a_database_from_a_newer_ingest_is_refused(url: str) -> None:
    store = SqlStore(url)
    try:
        await store.init()
        async with store.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StorageError) as caught:
            await store.init()
    finally:
        await store.close()
    message = str(caught.value)
    assert "newer version of ingest (revision 9999" in message
    assert f"knows up to {head()}" in message and "Upgrade ingest" in message


async def test_instances_starting_together_migrate_once(url: str) -> None:
    """Four stores initialising the same empty database at once: one creates it, the
    others find it done (the migration lock), and nobody fails."""
    stores = [SqlStore(url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(s.init() for s in stores))
        created = [m for m in results if m.before is None]
        assert len(created) == 1, results
        assert all(m.after == head() and not m.changed for m in results if m.before is not None)
        async with stores[0].engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert versions == [(head(),)]
    finally:
        for s in stores:
            await s.close()


async def test_a_failed_sqlite_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    """A step failing halfway (here: a schema-3 database that already has one of the
    columns schema 4 adds) rolls the whole upgrade back, so the next start, once the
    cause is gone, upgrades cleanly instead of finding half a migration."""
    from alembic import command

    from ingest.store.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqlStore(url)
    try:
        async with store.engine.begin() as conn:  # schema 3 as release 3 left it, plus a stray
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), BASELINE))
            await conn.execute(text("DROP TABLE alembic_version"))
            await conn.execute(text("UPDATE schema_info SET version = 3"))
            for column in ("config_url", "min_interval_s", "max_interval_s", "fulltext",
                           "headers"):  # what 3 -> 4 adds before "warning"
                await conn.execute(text(f"ALTER TABLE feeds DROP COLUMN {column}"))
        with pytest.raises(StorageError, match="duplicate column name: warning"):
            await store.init()
        async with store.engine.connect() as conn:
            columns = {r[1] for r in await conn.execute(text("PRAGMA table_info(feeds)"))}
            version = (await conn.execute(text("SELECT version FROM schema_info"))).scalar()
            tables = {r[0] for r in await conn.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table'"))}
        assert "config_url" not in columns and version == 3  # nothing of the failed attempt
        assert "alembic_version" not in tables and "instances" not in tables
        async with store.engine.begin() as conn:  # the operator removes the stray columns
            for column in ("warning", "failing_since", "not_found_since", "disabled_reason",
                           "last_new_entry_at", "update_interval_s", "fetch_count",
                           "fetch_time_avg_s", "health", "health_since"):
                await conn.execute(text(f"ALTER TABLE feeds DROP COLUMN {column}"))
            await conn.execute(text("ALTER TABLE entries DROP COLUMN truncated_from"))
        migration = await store.init()
        assert (migration.legacy_version, migration.after) == (3, head())
        async with store.engine.connect() as conn:
            columns = {r[1] for r in await conn.execute(text("PRAGMA table_info(feeds)"))}
        assert {"config_url", "warning", "leased_by"} <= columns
    finally:
        await store.close()
