"""What one poll makes of a feed's state: pure, from the old state and the outcome.

HTTP semantics applied here (README, "Polling and the schedule"):

* a permanent redirect (301/308 all the way) moves the feed: it is polled at the new
  URL from now on, and the status says to update the configuration;
* ``410 Gone`` disables the feed at once; ``404`` counts as an error, and disables the
  feed once it has lasted ``polling.not_found_disable_after``;
* ``429``/``503`` with ``Retry-After`` wait as asked; other errors back off.

A disabled feed is never dropped silently: a notice goes out (service/health.py) and
``ingest feeds status`` shows why; ``ingest feeds reset ID`` polls it again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ingest.config import PollingSettings
from ingest.fetch import schedule
from ingest.fetch.schedule import Bounds
from ingest.model import Feed, FeedState, FetchResult
from ingest.store.base import PollRecord

FETCH_TIME_WEIGHT = 0.2  # moving average of fetch times: weight of the newest


def bounds_for(feed: Feed, polling: PollingSettings) -> Bounds:
    """The feed's own interval settings, else the defaults."""
    return Bounds(initial_s=feed.interval_s or polling.interval,
                  min_s=feed.min_interval_s or polling.min_interval,
                  max_s=feed.max_interval_s or polling.max_interval)


def _rate(state: FeedState) -> float | None:
    return 1.0 / state.update_interval_s if state.update_interval_s else None


def succeeded(feed: Feed, state: FeedState, result: FetchResult, *, now: datetime,
              polling: PollingSettings, new_entries: int, published: list[datetime],
              ttl_minutes: int | None = None, warning: str | None = None,
              jitter: float = 0.0) -> PollRecord:
    """The record of a poll that got a document (200) or was told nothing changed (304)."""
    if state.last_success_at is None:  # first poll: learn from the entries' dates
        rate = schedule.rate_from_dates(published)
        last_new = now
    else:
        elapsed = (now - state.last_success_at).total_seconds()
        rate = schedule.update_rate(_rate(state), new_entries, elapsed)
        last_new = now if new_entries else state.last_new_entry_at or now
    url = result.moved_to or state.url  # a 301/308 chain moves the feed; nothing else does
    if url != feed.url:
        moved = (f"moved permanently to {url}: polled there from now on; update the "
                 f"configured URL ({feed.url})"
                 + ("; its headers are not sent to the new host" if feed.headers else ""))
        warning = f"{moved}; {warning}" if warning else moved
    hint = schedule.freshness_hint(now=now, ttl_minutes=ttl_minutes,
                                   cache_control=result.cache_control, expires=result.expires,
                                   date=result.date)
    average = state.fetch_time_avg_s
    average = result.elapsed_s if average is None else (
        average + FETCH_TIME_WEIGHT * (result.elapsed_s - average))
    new_state = replace(
        state, url=url,
        etag=(result.etag or state.etag) if result.not_modified else result.etag,
        last_modified=(result.last_modified or state.last_modified) if result.not_modified
        else result.last_modified,
        next_poll_at=schedule.after_success(now, bounds_for(feed, polling), rate, hint_s=hint,
                                            jitter=jitter),
        error_count=0, failing_since=None, not_found_since=None, last_success_at=now,
        last_new_entry_at=last_new, update_interval_s=1.0 / rate if rate else None,
        fetch_time_avg_s=round(average, 4))
    return PollRecord(new_state, now, ok=True, warning=warning,
                      document=not result.not_modified, config_url=feed.url)


def failed(feed: Feed, state: FeedState, error: str, *, now: datetime,
           polling: PollingSettings, status: int | None = None,
           retry_after: str | None = None, jitter: float = 0.0) -> PollRecord:
    """The record of a failed poll: counted, backed off, and disabled when the server
    says the feed is gone (410) or it has answered 404 for too long."""
    consecutive = state.error_count + 1
    not_found_since = (state.not_found_since or now) if status == 404 else None
    disabled = state.disabled_reason
    if status == 410:
        disabled = ("410 Gone: the server says this feed was removed for good; remove it "
                    f"from the configuration, or run `ingest feeds reset {feed.id}` to try again")
    elif not_found_since is not None and (
            (now - not_found_since).total_seconds() >= polling.not_found_disable_after):
        days = (now - not_found_since).total_seconds() / 86400
        disabled = (f"404 Not Found for {days:.0f} days: check the feed's address, then run "
                    f"`ingest feeds reset {feed.id}`")
    wait = schedule.retry_after_s(retry_after, now) if status in (429, 503) else None
    new_state = replace(
        state, error_count=consecutive, last_error=error,
        failing_since=state.failing_since or now, not_found_since=not_found_since,
        disabled_reason=disabled,
        next_poll_at=schedule.after_error(now, bounds_for(feed, polling), _rate(state),
                                          consecutive, retry_after=wait, jitter=jitter))
    return PollRecord(new_state, now, ok=False, config_url=feed.url)
