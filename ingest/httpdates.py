"""HTTP date headers and ``Retry-After``, read the same way for feeds and for deliveries.

Pure: the current time is passed in, nothing here reads the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def http_date(value: str | None) -> datetime | None:
    """An HTTP date header as an aware datetime (UTC when it names no zone), or None
    when absent or unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for, or None when absent or unreadable.

    Delta-seconds (``120``) as given; an HTTP date as the time left until it from
    ``now`` (0 when already past).
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    when = http_date(value)
    return None if when is None else max(0.0, (when - now).total_seconds())
