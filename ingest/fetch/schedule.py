"""When to poll a feed next: pure arithmetic over its interval and error history."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

MAX_BACKOFF_S = 24 * 3600.0


def next_poll(now: datetime, interval_s: float, error_count: int, *,
              jitter: float = 0.0, max_backoff_s: float = MAX_BACKOFF_S) -> datetime:
    """The next poll time: ``interval`` after ``now``, doubled per consecutive error.

    ``jitter`` is a fraction in [0, 1) drawn by the caller (so this stays pure); it
    adds up to 10 % of the delay so feeds added together drift apart.
    """
    delay = interval_s * (2 ** min(error_count, 16)) if error_count else interval_s
    delay = min(delay, max(max_backoff_s, interval_s))
    return now + timedelta(seconds=delay * (1 + 0.1 * jitter))


def draw_jitter(rng: random.Random | None = None) -> float:
    """A jitter fraction for :func:`next_poll`."""
    return (rng or random).random()
