"""Digest schedules (notify/digest.py): crontab weekdays, DST, and rate limits' validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ingest.config import Settings
from ingest.notify.digest import digest_trigger, next_digest, previous_digest


def test_weekdays_are_crontab_weekdays() -> None:
    """"0 8 * * 1-5" is Monday to Friday at 08:00 in the zone, as crontab(5) reads it."""
    trigger = digest_trigger("0 8 * * 1-5", "Europe/Berlin")
    now, days = datetime(2026, 11, 25, 12, tzinfo=UTC), []  # a Wednesday
    for _ in range(10):
        now = next_digest(trigger, now)
        local = now.astimezone(trigger.timezone)
        assert (local.hour, local.minute) == (8, 0)
        days.append(local.strftime("%a"))
    assert days == ["Thu", "Fri", "Mon", "Tue", "Wed", "Thu", "Fri", "Mon", "Tue", "Wed"]
    for field, day in (("0", "Sun"), ("7", "Sun"), ("1", "Mon"), ("6", "Sat"), ("sun", "Sun")):
        fire = next_digest(digest_trigger(f"0 8 * * {field}"), now)
        assert fire.strftime("%a") == day, field


def test_previous_digest_across_the_autumn_dst_change() -> None:
    """Every half hour through the night Berlin turns its clocks back: the last fire time
    is always the latest half hour (UTC arithmetic, no repeated hour lost)."""
    trigger = digest_trigger("*/30 * * * *", "Europe/Berlin")
    start = datetime(2025, 10, 25, 23, 0, tzinfo=UTC)
    for minutes in range(0, 180, 5):
        now = start + timedelta(minutes=minutes)
        expected = now.replace(minute=now.minute // 30 * 30)
        assert previous_digest(trigger, now) == expected, now


def test_interval_digest_keeps_its_boundaries() -> None:
    """A 15m digest fires on the quarter hours, whenever the service started."""
    trigger = digest_trigger("15m")
    now = datetime(2026, 11, 25, 12, 7, 30, tzinfo=UTC)
    assert previous_digest(trigger, now) == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert next_digest(trigger, now) == datetime(2026, 11, 25, 12, 15, tzinfo=UTC)


@pytest.mark.parametrize("spec", ["every tuesday", "30s", "0 25 * * *"])
def test_bad_digest_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        digest_trigger(spec)


@pytest.mark.parametrize("rate", [[0, 1], [-5, 1], [10, 0], "0/s", "ten per second"])
def test_bad_rate_limits_are_config_errors(rate: object) -> None:
    with pytest.raises(ValidationError, match="is not a rate"):
        Settings.model_validate({"channels": {"h": {
            "type": "webhook", "url": "http://127.0.0.1/h", "rate_limit": rate}}})
