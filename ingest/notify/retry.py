"""When to retry a failed delivery: pure arithmetic over the attempt count."""

from __future__ import annotations

from datetime import datetime, timedelta

from ingest import httpdates

FIRST_RETRY_S = 30.0
MAX_RETRY_S = 3600.0
MAX_RETRY_AFTER_S = 86400.0  # a receiver asking for more than a day is capped at a day

# Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None.
parse_retry_after = httpdates.retry_after_s


def retry_at(now: datetime, attempts: int, *, first_s: float = FIRST_RETRY_S,
             max_s: float = MAX_RETRY_S, retry_after_s: float | None = None,
             jitter: float = 0.0) -> datetime:
    """The earliest time to retry after ``attempts`` failed attempts (1 -> 30 s, 2 -> 60 s …).

    Doubling from ``first_s`` up to ``max_s``: eight attempts wait about an hour in all
    (30 s + 60 s + … + 32 min), long enough to ride out a receiver's restart.  A
    receiver's ``Retry-After`` (``retry_after_s``) is honoured when it asks for longer
    (up to a day).  ``jitter`` in [0, 1) stretches the wait by up to 10 % so that many
    deliveries failed together do not retry in one burst.
    """
    delay = min(first_s * 2 ** min(max(0, attempts - 1), 30), max_s)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return now + timedelta(seconds=delay * (1 + 0.1 * min(max(jitter, 0.0), 1.0)))


def settle_failure(*, attempts: int, created_at: datetime | None, now: datetime,
                   max_attempts: int, max_age_s: float, permanent: bool = False,
                   retry_after_s: float | None = None,
                   jitter: float = 0.0) -> tuple[str, datetime | None, str]:
    """What a failed attempt makes of its delivery: ``(state, retry_at, why)``.

    ``dead`` (with the reason) when the failure is permanent, when ``attempts`` has
    reached ``max_attempts``, or when the next try would come later than ``max_age_s``
    after the delivery was created; else ``failed``, due again at ``retry_at``.
    """
    if permanent:
        return "dead", None, "permanent failure"
    if attempts >= max_attempts:
        return "dead", None, f"{attempts} attempts made (max_attempts {max_attempts})"
    when = retry_at(now, attempts, retry_after_s=retry_after_s, jitter=jitter)
    if created_at is not None and (when - created_at).total_seconds() > max_age_s:
        return "dead", None, f"older than max_age ({max_age_s:g}s) by the next try"
    return "failed", when, ""
