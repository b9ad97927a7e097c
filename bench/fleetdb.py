"""The database of a ``bench/fleet.py`` measurement: made fresh for it (and dropped after),
and read while the instances share it: progress, the fleet's story lock, the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from ingest.store import schema as t
from ingest.store.sql import STORY_LOCK, async_url

_names = itertools.count(1)


@contextlib.asynccontextmanager
async def database(backend: str, folder: Path, server: str) -> AsyncIterator[str]:
    """A fresh database's URL: a SQLite file in ``folder`` (``backend`` ``sqlite``), or a
    PostgreSQL database created on ``server`` and dropped afterwards (also when the
    measurement failed)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'ingest.db'}"
        return
    import asyncpg

    name = f"ingest_bench_{os.getpid()}_{next(_names)}"
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{server}/{name}"
    finally:
        admin = await asyncpg.connect(f"{server}/postgres")
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


class Progress:
    """Counts read from the database the instances share."""

    def __init__(self, url: str) -> None:
        self.engine = create_async_engine(async_url(url))

    async def close(self) -> None:
        await self.engine.dispose()

    async def counts(self) -> tuple[int, int, int]:
        """Entries, unprocessed entries, deliveries not yet settled."""
        e, d = t.entries.c, t.deliveries.c
        async with self.engine.connect() as conn:
            total = await conn.scalar(select(func.count()).select_from(t.entries))
            pending = await conn.scalar(select(func.count()).where(e.processed_at.is_(None)))
            due = await conn.scalar(select(func.count()).where(
                d.state.not_in(("delivered", "dead"))))
        return total or 0, pending or 0, due or 0

    async def wait_done(self, total: int, timeout: float) -> None:
        """Until every entry is stored and processed and no delivery is left to send."""
        deadline = time.monotonic() + timeout
        while True:
            stored, pending, due = await self.counts()
            if stored >= total and pending == 0 and due == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout:.0f} s: {stored} of {total} entries "
                                   f"stored, {pending} unprocessed, {due} deliveries due")
            await asyncio.sleep(0.5)

    async def sample_story_lock(self, stop: asyncio.Event) -> tuple[int, int, int]:
        """Until ``stop``: samples, 10 a second, of the fleet's story lock in ``pg_locks``
        (``STORY_LOCK``, a bigint advisory key): how many saw it held, how many a waiter."""
        samples = held = waited = 0
        query = text(
            "SELECT coalesce(bool_or(granted), false), coalesce(bool_or(NOT granted), false) "
            "FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM "
            f"pg_database WHERE datname = current_database()) AND classid = {STORY_LOCK >> 32} "
            f"AND objid = {STORY_LOCK & 0xFFFFFFFF} AND objsubid = 1")
        async with self.engine.connect() as conn:
            while not stop.is_set():
                granted, waiting = (await conn.execute(query)).one()
                await conn.commit()
                samples, held, waited = samples + 1, held + granted, waited + waiting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.1)
        return samples, held, waited

    async def summary(self) -> dict[str, Any]:
        e, d = t.entries.c, t.deliveries.c
        async with self.engine.connect() as conn:
            first, last = (await conn.execute(
                select(func.min(e.fetched_at), func.max(e.processed_at)))).one()
            states = {state: n for state, n in (await conn.execute(
                select(d.state, func.count()).group_by(d.state))).all()}
            return {
                "span_s": (last - first).total_seconds(),
                "entries": await conn.scalar(select(func.count()).select_from(t.entries)),
                "failed": await conn.scalar(select(func.count()).where(e.error.is_not(None))),
                "stories": await conn.scalar(select(func.count(e.story_id.distinct()))),
                "matches": await conn.scalar(select(func.count()).select_from(t.matches)),
                "alerts": await conn.scalar(select(func.count()).select_from(t.alerts)),
                "deliveries": states}
