"""The Store protocol: everything the service remembers, behind one small interface."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ingest.model import Alert, Entry, Feed, FeedState, FetchResult


@dataclass(frozen=True)
class StoredEntry:
    """An entry as stored: its row id plus the entry."""

    id: int
    entry: Entry


@dataclass(frozen=True)
class PendingDelivery:
    """A delivery that still has to be attempted."""

    id: int
    channel: str
    attempts: int
    alert: Alert


@dataclass(frozen=True)
class DeliveryRow:
    """A delivery's state, for operators and tests."""

    id: int
    alert_id: str
    channel: str
    state: str
    attempts: int
    last_error: str | None
    receipt: str | None


@dataclass(frozen=True)
class FeedRow:
    """A feed's state as the operator sees it."""

    feed: Feed
    state: FeedState
    last_success_at: datetime | None
    last_polled_at: datetime | None
    entries_seen: int


class Store(Protocol):
    """Durable state.  Every method is idempotent where the data has a natural key."""

    async def init(self) -> None: ...

    async def close(self) -> None: ...

    async def sync_feeds(self, feeds: Sequence[Feed], now: datetime) -> None: ...

    async def due_feeds(self, now: datetime, limit: int) -> list[tuple[Feed, FeedState]]: ...

    async def feeds(self) -> list[FeedRow]: ...

    async def record_fetch(self, feed_id: str, result: FetchResult, now: datetime,
                           next_poll_at: datetime, warning: str | None = None) -> None: ...

    async def record_fetch_error(self, feed_id: str, error: str, now: datetime,
                                 next_poll_at: datetime) -> None: ...

    async def add_entries(self, entries: Sequence[Entry], now: datetime) -> list[StoredEntry]: ...

    async def unprocessed_entries(self, limit: int) -> list[StoredEntry]: ...

    async def record_processed(self, entry_id: int, alerts: Sequence[Alert],
                               now: datetime) -> list[Alert]: ...

    async def record_processed_batch(self, results: Sequence[tuple[int, Sequence[Alert]]],
                                     now: datetime) -> list[Alert]: ...

    async def record_entry_error(self, entry_id: int, error: str, now: datetime) -> None: ...

    async def pending_deliveries(self, max_attempts: int, limit: int,
                                 now: datetime | None = None) -> list[PendingDelivery]: ...

    async def record_delivery(self, delivery_id: int, *, ok: bool, detail: str, now: datetime,
                              dead: bool = False, retry_at: datetime | None = None) -> None: ...

    async def alerts(self, limit: int = 100) -> list[Alert]: ...

    async def deliveries(self, alert_id: str | None = None) -> list[DeliveryRow]: ...
