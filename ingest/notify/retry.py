"""When to retry a failed delivery: pure arithmetic over the attempt count."""

from __future__ import annotations

from datetime import datetime, timedelta

FIRST_RETRY_S = 30.0
MAX_RETRY_S = 3600.0


def retry_at(now: datetime, attempts: int, *, first_s: float = FIRST_RETRY_S,
             max_s: float = MAX_RETRY_S) -> datetime:
    """The earliest time to retry after ``attempts`` failed attempts (1 -> 30 s, 2 -> 60 s …).

    Doubling from ``first_s`` up to ``max_s``: eight attempts wait about an hour in all
    (30 s + 60 s + … + 32 min), long enough to ride out a receiver's restart.
    """
    delay = min(first_s * 2 ** min(max(0, attempts - 1), 30), max_s)
    return now + timedelta(seconds=delay)
