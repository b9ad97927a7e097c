"""Refreshing one feed: fetch, parse, store the new entries, update the feed's row.

Every failure is written on the feed's row (``last_error``, ``error_count``) and the
feed is retried later with backoff; one feed's failure never touches another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog

from ingest.errors import FetchError, ParseError, StorageError
from ingest.fetch.client import Fetcher
from ingest.fetch.schedule import draw_jitter, next_poll
from ingest.model import Feed, FeedState
from ingest.parse.normalize import parse_document
from ingest.store.base import Store, StoredEntry

log = structlog.get_logger("ingest.refresh")

# Documents larger than this are parsed in a worker thread, off the event loop.
OFFLOOP_PARSE_BYTES = 256 * 1024


@dataclass(frozen=True)
class RefreshOutcome:
    feed_id: str
    status: str  # new | not-modified | error
    new_entries: tuple[StoredEntry, ...] = ()
    error: str | None = None


async def refresh_feed(feed: Feed, state: FeedState, *, fetcher: Fetcher, store: Store,
                       default_interval_s: float,
                       clock: Callable[[], datetime]) -> RefreshOutcome:
    """Poll one feed and store its new entries.  Never raises for feed problems."""
    flog = log.bind(feed_id=feed.id, url=feed.url)
    interval = feed.interval_s or default_interval_s
    try:
        result = await fetcher.fetch(feed.url, state.etag, state.last_modified)
        if result.not_modified:
            now = clock()
            await store.record_fetch(feed.id, result, now, next_poll(now, interval, 0,
                                                                     jitter=draw_jitter()))
            flog.debug("feed.not_modified")
            return RefreshOutcome(feed.id, "not-modified")
        now = clock()
        if len(result.body) > OFFLOOP_PARSE_BYTES:
            parsed = await asyncio.to_thread(parse_document, result.body, feed_id=feed.id,
                                             url=feed.url, now=now,
                                             content_type=result.content_type)
        else:
            parsed = parse_document(result.body, feed_id=feed.id, url=feed.url, now=now,
                                    content_type=result.content_type)
    except (FetchError, ParseError) as exc:
        return await _failed(feed, state, str(exc), store, interval, clock(), flog)
    except Exception as exc:  # a bug met on one feed is that feed's error, not the cycle's
        flog.exception("feed.crashed")
        return await _failed(feed, state, f"internal error {type(exc).__name__}: {exc}", store,
                             interval, clock(), flog)
    try:
        new = await store.add_entries(parsed.entries, now)
        await store.record_fetch(feed.id, result, now,
                                 next_poll(now, interval, 0, jitter=draw_jitter()),
                                 warning=f"feed is malformed but usable: {parsed.warning}"
                                 if parsed.warning else None)
    except StorageError as exc:  # e.g. text the database refuses: this feed's problem only
        return await _failed(feed, state, f"storing entries failed: {exc}", store, interval,
                             clock(), flog)
    flog.info("feed.fetched", entries=len(parsed.entries), new=len(new),
              elapsed_s=round(result.elapsed_s, 3))
    return RefreshOutcome(feed.id, "new", tuple(new))


async def _failed(feed: Feed, state: FeedState, error: str, store: Store, interval: float,
                  now: datetime, flog: structlog.typing.FilteringBoundLogger) -> RefreshOutcome:
    """Record a failed poll on the feed's row and schedule the retry with backoff."""
    await store.record_fetch_error(
        feed.id, error, now, next_poll(now, interval, state.error_count + 1, jitter=draw_jitter()))
    flog.warning("feed.error", error=error, consecutive=state.error_count + 1)
    return RefreshOutcome(feed.id, "error", error=error)
