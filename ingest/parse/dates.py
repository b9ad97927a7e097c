"""When an entry was published: the rules for missing, zone-less, odd and future dates.

* A date without a time zone is read as UTC (feedparser's rule, kept: the zone cannot
  be guessed, and a publisher's local time read as UTC is at most 14 hours off).
* A date feedparser cannot read is tried once more here: RFC 822 with a weekday but no
  zone (feedparser gives up on it), and month names in a few languages besides English
  ("Seg, 24 Set 2018 19:42:40 -0300").  Still unreadable: unknown (None).
* A date before 1995 is a placeholder (1970-01-01, 1900-01-01): unknown (None).
* A date more than :data:`FUTURE_SKEW` after the fetch time is impossible (the entry was
  in the document when it was fetched), usually a zone mistake or a typo: it becomes the
  fetch time, the latest moment the entry can have been published, and is flagged.
  Within :data:`FUTURE_SKEW` it is kept: one of the two clocks is a little off.
* The first usable of published, updated and created wins.

Unknown (None) means "use the fetch time" downstream (``published or fetched_at``).
Pure: the fetch time ``now`` is passed in.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

FUTURE_SKEW = timedelta(minutes=10)
EARLIEST_PLAUSIBLE = datetime(1995, 1, 1, tzinfo=UTC)
_FIELDS = ("published", "updated", "created")

_MONTHS = {
    **dict.fromkeys(("jan", "gen", "ene", "janv"), 1),
    **dict.fromkeys(("feb", "fev", "fév", "févr"), 2),
    **dict.fromkeys(("mar", "mär", "mrz", "mrt", "mars"), 3),
    **dict.fromkeys(("apr", "abr", "avr"), 4),
    **dict.fromkeys(("may", "mai", "mag", "mei"), 5),
    **dict.fromkeys(("jun", "giu", "juin"), 6),
    **dict.fromkeys(("jul", "lug", "juil"), 7),
    **dict.fromkeys(("aug", "ago", "aoû", "aou", "août"), 8),
    **dict.fromkeys(("sep", "set", "sept"), 9),
    **dict.fromkeys(("oct", "out", "ott", "okt"), 10),
    **dict.fromkeys(("nov",), 11),
    **dict.fromkeys(("dec", "dez", "dic", "déc"), 12),
}
# [weekday,] day month year [hh:mm[:ss]] [zone]; any weekday word, month by its name.
_LOOSE = re.compile(
    r"^\s*(?:[^\W\d]+\.?,?\s+)?(\d{1,2})\.?\s+([^\W\d]+)\.?\s+(\d{4})"
    r"(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*([+-]\d{2}:?\d{2}|gmt|utc|ut|z)?\s*$",
    re.IGNORECASE)


class Published(NamedTuple):
    """An entry's publication time (UTC) or None, and whether it was a future date."""

    when: datetime | None
    future: bool = False


def published_at(raw: Mapping[str, Any], now: datetime) -> Published:
    """The publication time of a feedparser entry, by the rules above."""
    future = False
    for name in _FIELDS:
        when = _field_time(raw, name)
        if when is None or when < EARLIEST_PLAUSIBLE:
            continue
        if when > now + FUTURE_SKEW:
            future = True
            continue
        return Published(when)
    return Published(now, True) if future else Published(None)


def _field_time(raw: Mapping[str, Any], name: str) -> datetime | None:
    parsed = _get(raw, name + "_parsed")
    if parsed:
        try:
            return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
        except (OverflowError, ValueError, TypeError, OSError):
            return None
    text = _get(raw, name)
    return loose_date(text) if isinstance(text, str) else None


def _get(raw: Mapping[str, Any], key: str) -> Any:
    # dict.get: FeedParserDict's own lookup maps updated->published with a warning.
    return dict.get(raw, key) if isinstance(raw, dict) else raw.get(key)


def loose_date(text: str) -> datetime | None:
    """An RFC 822-like date feedparser gave up on, in UTC (no zone: UTC), or None."""
    match = _LOOSE.match(text[:80])
    if not match:
        return None
    day, month_name, year, hour, minute, second, zone = match.groups()
    name = month_name.lower()
    month = _MONTHS.get(name) or _MONTHS.get(name[:4]) or _MONTHS.get(name[:3])
    if month is None:
        return None
    try:
        when = datetime(int(year), month, int(day), int(hour or 0), int(minute or 0),
                        int(second or 0), tzinfo=_zone(zone))
    except ValueError:
        return None
    return when.astimezone(UTC)


def _zone(zone: str | None) -> timezone:
    if not zone or zone[0] not in "+-":
        return UTC
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return timezone(-offset if zone[0] == "-" else offset)
