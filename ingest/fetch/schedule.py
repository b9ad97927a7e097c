"""When to poll a feed next: pure arithmetic over its history and the server's hints.

The rules (README, "Polling and the schedule"):

* **Learned rate.** Each feed's rate of new entries is a moving average, weighted by
  time (half of it is the last :data:`RATE_HALF_LIFE_S`), seeded on the first poll
  from the spread of the entries' publication dates.  The feed is polled about once per
  expected new entry: ``interval = 1 / rate``.
* **Bounds.** The interval stays within the feed's ``[min_interval, max_interval]``.
  Before anything is learned, the feed's ``interval`` is used.
* **Server hints** lengthen the interval, never beyond ``max_interval``: RSS ``<ttl>``,
  ``Cache-Control: max-age`` and ``Expires`` (against the response's ``Date``).
  ``no-cache``/``no-store`` give no hint.
* **Errors** back off exponentially from the feed's interval (x2 per consecutive
  error) up to ``max_interval``, and keep trying at that pace.  A ``Retry-After`` on
  429 or 503 is honoured as given (at least ``min_interval``, at most a day).
* **Jitter**: up to +10 % on every delay, drawn by the caller, so that feeds added
  together drift apart.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

# Re-exported: callers read them here, with the rest of the schedule.
from ingest.httpdates import http_date as http_date
from ingest.httpdates import retry_after_s as retry_after_s

RATE_HALF_LIFE_S = 12 * 3600.0
MAX_RETRY_AFTER_S = 86400.0
JITTER_FRACTION = 0.1
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*no-(?:cache|store)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Bounds:
    """A feed's interval settings, in seconds."""

    initial_s: float
    min_s: float
    max_s: float

    def clamp(self, seconds: float) -> float:
        return min(max(seconds, self.min_s), max(self.max_s, self.min_s))


def freshness_hint(*, now: datetime, ttl_minutes: int | None = None,
                   cache_control: str | None = None, expires: str | None = None,
                   date: str | None = None) -> float | None:
    """How long (s) the server says the document stays fresh, or None for no hint.

    The longest of RSS ``<ttl>``, ``max-age``, and ``Expires`` minus ``Date``
    (or minus ``now`` without a Date).  ``no-cache``/``no-store`` void the HTTP hints.
    """
    hints: list[float] = []
    if ttl_minutes and ttl_minutes > 0:
        hints.append(ttl_minutes * 60.0)
    if cache_control and _NO_CACHE.search(cache_control):
        return max(hints, default=None)
    max_age = _MAX_AGE.search(cache_control or "")
    if max_age:
        hints.append(float(max_age.group(1)))
    elif expires:
        until, served = http_date(expires), http_date(date) or now
        if until is not None:
            hints.append(max(0.0, (until - served).total_seconds()))
    return max(hints, default=None)


def rate_from_dates(published: list[datetime]) -> float | None:
    """New entries per second implied by a first poll's publication dates, or None.

    ``n`` dated entries spread over ``span`` make ``(n - 1) / span``; fewer than three
    dates, or all at one instant, teach nothing.
    """
    dates = sorted(published)
    if len(dates) < 3:
        return None
    span = (dates[-1] - dates[0]).total_seconds()
    return (len(dates) - 1) / span if span > 0 else None


def update_rate(previous: float | None, new_entries: int, elapsed_s: float) -> float | None:
    """The moving average of new entries per second after a poll ``elapsed_s`` after
    the previous one found ``new_entries``; weighted by the time the poll covers."""
    if elapsed_s <= 0:
        return previous
    observed = new_entries / elapsed_s
    if previous is None:
        return observed if new_entries else None
    weight = 1.0 - math.exp(-elapsed_s * math.log(2) / RATE_HALF_LIFE_S)
    return previous + weight * (observed - previous)


def interval_for(rate: float | None, bounds: Bounds) -> float:
    """The poll interval for a learned rate: one expected new entry per poll."""
    if rate is None:
        return bounds.clamp(bounds.initial_s)
    if rate <= 0:
        return bounds.clamp(bounds.max_s)
    return bounds.clamp(1.0 / rate)


def after_success(now: datetime, bounds: Bounds, rate: float | None, *,
                  hint_s: float | None = None, jitter: float = 0.0) -> datetime:
    """The next poll after a successful one (200 or 304)."""
    delay = interval_for(rate, bounds)
    if hint_s is not None and hint_s > delay:
        delay = min(hint_s, max(bounds.max_s, bounds.min_s))
    return now + timedelta(seconds=delay * (1 + JITTER_FRACTION * jitter))


def after_error(now: datetime, bounds: Bounds, rate: float | None, consecutive: int, *,
                retry_after: float | None = None, jitter: float = 0.0) -> datetime:
    """The next poll after the ``consecutive``-th failure in a row (1 for the first)."""
    if retry_after is not None:
        delay = min(max(retry_after, bounds.min_s), MAX_RETRY_AFTER_S)
    else:
        base = interval_for(rate, bounds)
        delay = min(base * 2 ** min(max(consecutive - 1, 0), 20), max(bounds.max_s, base))
    return now + timedelta(seconds=delay * (1 + JITTER_FRACTION * jitter))


def draw_jitter(rng: random.Random | None = None) -> float:
    """A jitter fraction in [0, 1) for :func:`after_success` and :func:`after_error`."""
    return (rng or random).random()
