"""Digest schedules: when a channel that batches its alerts sends the next message.

A schedule is written as a duration (``15m``: every quarter hour, on the quarter
hour) or as a five-field cron expression (``"0 8 * * 1-5"``: 08:00 on weekdays), in
the channel's ``digest_timezone``.  APScheduler's triggers do the calendar
arithmetic; this module only builds them and asks them, with ``now`` passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ingest.durations import parse_duration

# Interval digests are anchored here, so a restart keeps the same boundaries.
_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday, midnight UTC
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def digest_trigger(spec: str, timezone: str = "UTC") -> BaseTrigger:
    """The trigger for ``spec``; ``ValueError`` with an example when it is neither form."""
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {timezone!r}; write e.g. UTC or "
                         "Europe/Berlin") from exc
    text = str(spec).strip()
    fields = text.split()
    if len(fields) == 5:
        minute, hour, day, month, weekday = fields
        try:  # crontab numbers weekdays from Sunday (0 or 7); APScheduler from Monday (0)
            return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                               day_of_week=_weekday_names(weekday), timezone=tz)
        except ValueError as exc:
            raise ValueError(f"digest {text!r} is not a valid cron expression: {exc}") from exc
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"digest {text!r} is neither a duration (15m, 1h) nor a cron "
                         "expression (\"0 8 * * 1-5\")") from exc
    if seconds < 60:
        raise ValueError(f"digest {text!r} is shorter than a minute; batch for 1m or more")
    return IntervalTrigger(seconds=int(seconds), start_date=_EPOCH, timezone=tz)


def _weekday_names(field: str) -> str:
    """A crontab day-of-week field with its numbers as names (``1-5`` -> ``mon-fri``);
    step values (``*/2``) stay numbers."""
    def names(part: str) -> str:
        base, slash, step = part.partition("/")
        base = re.sub(r"\d+", lambda m: _DAYS[int(m.group()) % 7]
                      if int(m.group()) <= 7 else m.group(), base)
        return base + slash + step
    return ",".join(names(part) for part in field.split(","))


def next_digest(trigger: BaseTrigger, now: datetime) -> datetime:
    """The first fire time strictly after ``now`` (timezone-aware UTC)."""
    fire = trigger.get_next_fire_time(None, now + timedelta(microseconds=1))
    if fire is None:
        raise ValueError("the digest schedule never fires again")
    return fire.astimezone(UTC)


def previous_digest(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The last fire time at or before ``now`` (within a year), or None.

    A digest holds the alerts made before this time: the ones it is due to send.
    """
    for back in (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=366)):
        last = None
        fire = trigger.get_next_fire_time(None, now - back)
        steps = 0
        while fire is not None and fire <= now and steps < 10_000:
            fire = fire.astimezone(UTC)  # wall-clock arithmetic would lose a DST fold
            last, steps = fire, steps + 1
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
        if last is not None:
            return last.astimezone(UTC)
    return None
