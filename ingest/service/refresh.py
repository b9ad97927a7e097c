"""Refreshing one feed: fetch, parse, (full text), store the new entries, judge its health.

Never raises for a feed's problems: every failure becomes the feed's ``last_error``
and a backed-off retry.  The returned :class:`RefreshOutcome` carries the feed's new
row (a :class:`~ingest.store.base.PollRecord`) and any health notice; the caller
writes those in batches (service/app.py), after the entries themselves are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import httpx
import structlog

from ingest.config import Settings
from ingest.errors import FetchError, ParseError, StorageError
from ingest.fetch.client import Fetcher
from ingest.fetch.fulltext import with_fulltext
from ingest.fetch.hosts import same_origin
from ingest.fetch.schedule import draw_jitter
from ingest.model import Entry, Feed, FeedState, FetchResult
from ingest.service import feedstate
from ingest.service.health import judge
from ingest.service.workers import Runner
from ingest.store.base import Notice, PollRecord, Store, StoredEntry

log = structlog.get_logger("ingest.refresh")


@dataclass(frozen=True)
class RefreshOutcome:
    feed_id: str
    status: str  # new | not-modified | error
    record: PollRecord
    new_entries: tuple[StoredEntry, ...] = ()
    error: str | None = None
    notice: Notice | None = None
    fetch_s: float | None = None  # the request's duration, when it got an answer


def headers_for(feed: Feed, url: str) -> tuple[tuple[str, str], ...]:
    """The feed's own headers (tokens) go only where it was configured: not to a host a
    permanent redirect moved it to, nor over plain http when it was https
    (:func:`~ingest.fetch.hosts.same_origin`)."""
    if url == feed.url or not feed.headers:
        return feed.headers
    return feed.headers if same_origin(httpx.URL(feed.url), httpx.URL(url)) else ()


@dataclass(frozen=True)
class Poller:
    """What refreshing a feed needs; one per service."""

    fetcher: Fetcher
    store: Store
    runner: Runner
    settings: Settings
    clock: Callable[[], datetime]
    headers: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    async def refresh(self, feed: Feed, state: FeedState) -> RefreshOutcome:
        """Poll one feed; whatever happens, the outcome carries the feed's next row."""
        # The store keeps header names only; their values come from the configuration.
        feed = replace(feed, headers=self.headers.get(feed.id, ()))
        flog = log.bind(feed_id=feed.id, url=state.url)
        try:
            return await self._refresh(feed, state, flog)
        except StorageError as exc:
            return self._failed(feed, state, f"storing failed: {exc}", flog)
        except Exception as exc:  # a bug met on one feed is that feed's error, not the cycle's
            flog.exception("feed.crashed")
            return self._failed(feed, state, f"internal error {type(exc).__name__}: {exc}", flog)

    async def _refresh(self, feed: Feed, state: FeedState,
                       flog: structlog.typing.FilteringBoundLogger) -> RefreshOutcome:
        try:
            result = await self.fetcher.fetch(state.url, state.etag, state.last_modified,
                                              headers=headers_for(feed, state.url))
        except FetchError as exc:
            return self._failed(feed, state, str(exc), flog, exc.status, exc.retry_after)
        if result.not_modified:
            flog.debug("feed.not_modified")
            return self._done(feed, state, result, (), [], None, None)
        now = self.clock()
        try:
            parsed = await self.runner.parse(result.body, feed_id=feed.id, url=result.url,
                                             now=now, content_type=result.content_type)
            entries, problems = await self._fulltext(feed, list(parsed.entries))
            new = await self.store.add_entries(entries, now)
        except ParseError as exc:
            return self._failed(feed, state, str(exc), flog)
        warnings = [parsed.warning] if parsed.warning else []
        if problems:
            warnings.append(f"full text failed for {len(problems)} item(s): {problems[0]}")
        flog.info("feed.fetched", entries=len(entries), new=len(new),
                  elapsed_s=round(result.elapsed_s, 3), kib=round(result.wire_bytes / 1024, 1))
        published = [e.published for e in entries if e.published is not None]
        return self._done(feed, state, result, tuple(new), published,
                          "; ".join(warnings) or None, parsed.ttl_minutes)

    async def _fulltext(self, feed: Feed, entries: list[Entry]) -> tuple[list[Entry], list[str]]:
        """For ``fulltext: true`` feeds: the linked articles' text for entries not seen
        before (a poll never fetches an article twice)."""
        if not feed.fulltext or not entries:
            return entries, []
        known = await self.store.known_keys(feed.id, [e.key for e in entries])
        fresh = [e for e in entries if e.key not in known]
        if not fresh:
            return entries, []
        enriched, problems = await with_fulltext(fresh, fetcher=self.fetcher,
                                                 settings=self.settings.fulltext,
                                                 run_cpu=self.runner.run_cpu,
                                                 deadline_s=2 * self.settings.polling.timeout)
        by_key = {e.key: e for e in enriched}
        return [by_key.get(e.key, e) for e in entries], problems

    def _done(self, feed: Feed, state: FeedState, result: FetchResult,
              new: tuple[StoredEntry, ...], published: list[datetime], warning: str | None,
              ttl_minutes: int | None) -> RefreshOutcome:
        now = self.clock()
        record = feedstate.succeeded(feed, state, result, now=now,
                                     polling=self.settings.polling, new_entries=len(new),
                                     published=published, ttl_minutes=ttl_minutes,
                                     warning=warning, jitter=draw_jitter())
        record, notice = judge(feed, record, new_entries=len(new), now=now,
                               settings=self.settings.health)
        return RefreshOutcome(feed.id, "not-modified" if result.not_modified else "new",
                              record, new, notice=notice, fetch_s=result.elapsed_s)

    def _failed(self, feed: Feed, state: FeedState, error: str,
                flog: structlog.typing.FilteringBoundLogger, status: int | None = None,
                retry_after: str | None = None) -> RefreshOutcome:
        now = self.clock()
        record = feedstate.failed(feed, state, error, now=now, polling=self.settings.polling,
                                  status=status, retry_after=retry_after, jitter=draw_jitter())
        record, notice = judge(feed, record, new_entries=0, now=now,
                               settings=self.settings.health)
        flog.warning("feed.error", error=error, consecutive=record.state.error_count,
                     next_poll_at=record.state.next_poll_at.isoformat()
                     if record.state.next_poll_at else None)
        return RefreshOutcome(feed.id, "error", record, error=error, notice=notice)
