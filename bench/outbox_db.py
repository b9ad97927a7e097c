"""The outbox's database for bench/delivery.py: N alerts with one pending webhook
delivery each, written straight into the tables, and a store that times the
dispatcher's claims and finishes.  PostgreSQL runs get a schema of their own."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from ingest.model import Alert
from ingest.parse.dedup import alert_id
from ingest.store import schema as t
from ingest.store.base import DeliveryResult, PendingDelivery
from ingest.store.rows import alert_to_json, naive
from ingest.store.sql import SqlStore, async_url

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
CHANNEL = "hook"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class TimedStore(SqlStore):
    """The real store, timing and counting the outbox transactions the dispatcher makes."""

    def __init__(self, url: str, schema: str | None = None) -> None:
        super().__init__(url)
        if schema is not None:  # PostgreSQL: every connection sees only our schema
            self.engine = create_async_engine(
                self.url, pool_pre_ping=True,
                connect_args={"server_settings": {"search_path": schema}})
        self.claim_s = self.finish_s = 0.0
        self.transactions = 0

    async def claim_deliveries(self, channel: str, *, now: datetime, lease_until: datetime,
                               token: str, limit: int, max_attempts: int,
                               held_after: datetime | None = None) -> list[PendingDelivery]:
        start = time.perf_counter()
        try:
            return await super().claim_deliveries(
                channel, now=now, lease_until=lease_until, token=token, limit=limit,
                max_attempts=max_attempts, held_after=held_after)
        finally:
            self.claim_s += time.perf_counter() - start
            self.transactions += 1

    async def finish_deliveries(self, token: str, results: Sequence[DeliveryResult],
                                now: datetime) -> int:
        start = time.perf_counter()
        try:
            return await super().finish_deliveries(token, results, now)
        finally:
            self.finish_s += time.perf_counter() - start
            self.transactions += 1


def make_alert(i: int) -> Alert:
    """An alert shaped like a real one: an entity, terms, a snippet, one source, evidence."""
    key = f"https://news.example.org/world/2026/11/25/story-{i}"
    title = f"Defence minister announces deployment of air defence systems ({i})"
    return Alert(
        id=alert_id("bench-deploy", "bench-feed", key), rule_id="bench-deploy",
        rule_title="Air defence deployments", severity="high", tags=("defence", "bench"),
        feed_id="bench-feed", entry_key=key, entry_title=title, entry_link=key,
        published=NOW, created_at=NOW,
        entities=({"text": "Boris Pistorius", "name": "Boris Pistorius", "label": "PERSON",
                   "id": "Q61053", "country": "DE", "roles": ["defence-minister"],
                   "start": 0, "end": 15},),
        terms=("deploy", "air defence"),
        snippet=("Boris Pistorius said on Tuesday that Germany would deploy two more Patriot "
                 "air defence systems to the eastern flank within weeks, after talks with "
                 "allies in Brussels about the protection of critical infrastructure."),
        channels=(CHANNEL,), story_id=i,
        sources=({"feed": "bench-feed", "entry_key": key, "title": title, "link": key,
                  "published": NOW.isoformat(), "seen_at": NOW.isoformat()},),
        first_seen=NOW, last_seen=NOW,
        evidence=({"leaf": "when.all[0]", "describe": "lemma deploy",
                   "spans": [{"kind": "lemma", "text": "deploy", "start": 60, "end": 66}]},))


async def seed(store: SqlStore, alerts: Sequence[Alert]) -> None:
    """One feed, and per alert an entry, the alert and its pending webhook delivery."""
    now = naive(NOW)
    async with store.engine.begin() as conn:
        await conn.execute(t.feeds.insert(), [{
            "id": "bench-feed", "url": "https://news.example.org/rss", "title": "bench",
            "tags": [], "enabled": True, "error_count": 0, "entries_seen": len(alerts)}])
        await conn.execute(t.entries.insert(), [{
            "id": a.story_id, "feed_id": a.feed_id, "key": a.entry_key, "title": a.entry_title,
            "link": a.entry_link, "summary": a.snippet, "content": "", "published": now,
            "fetched_at": now, "processed_at": now, "story_id": a.story_id}
            for a in alerts])
        await conn.execute(t.alerts.insert(), [{
            "id": a.id, "rule_id": a.rule_id, "entry_id": a.story_id, "story_id": a.story_id,
            "severity": a.severity, "state": a.state, "at": now, "dedupe_key": "",
            "revision": 0, "created_at": now, "updated_at": now, "payload": alert_to_json(a)}
            for a in alerts])
        await conn.execute(t.deliveries.insert(), [{
            "alert_id": a.id, "channel": CHANNEL, "revision": 0, "state": "pending",
            "attempts": 0, "created_at": now, "updated_at": now} for a in alerts])


async def delivery_states(store: SqlStore) -> dict[str, int]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(t.deliveries.c.state, func.count())
                                   .group_by(t.deliveries.c.state))).all()
    return {r[0]: int(r[1]) for r in rows}



async def _pg_admin(statement: str) -> None:
    engine = create_async_engine(async_url(POSTGRES_URL))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def create_schema(schema: str) -> None:
    await _pg_admin(f'CREATE SCHEMA "{schema}"')


async def drop_schema(schema: str) -> None:
    if schema.startswith("bench_delivery_"):  # only ever our own
        await _pg_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


