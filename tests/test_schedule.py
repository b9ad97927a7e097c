"""The poll schedule, feed state after a poll, and feed health: pure functions, hand-set clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ingest import httpdates
from ingest.config import HealthSettings, PollingSettings
from ingest.fetch import schedule
from ingest.fetch.schedule import Bounds
from ingest.model import Feed, FeedState, FetchResult
from ingest.notify import retry
from ingest.service import feedstate
from ingest.service.health import expected_interval_s, judge

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
B = Bounds(initial_s=900, min_s=120, max_s=6 * 3600)
POLLING = PollingSettings()
FEED = Feed("wire", "https://news.example/rss")
STATE = FeedState("wire", FEED.url)
OK = FetchResult(FEED.url, 200, b"<rss/>", etag='"v1"',
                 last_modified="Mon, 02 Mar 2026 11:00:00 GMT")


def delay(when: datetime) -> float:
    return (when - NOW).total_seconds()


# -- schedule arithmetic ------------------------------------------------------------------

def test_unknown_rate_uses_the_first_interval_within_bounds() -> None:
    assert delay(schedule.after_success(NOW, B, None)) == 900
    assert delay(schedule.after_success(NOW, Bounds(30, 120, 3600), None)) == 120
    assert delay(schedule.after_success(NOW, Bounds(99_999, 120, 3600), None)) == 3600


@pytest.mark.parametrize(("per_hour", "expected"), [
    (60, 120),  # one a minute: held at min_interval
    (4, 900),  # four an hour: every 15 minutes
    (1, 3600),
    (0.01, 6 * 3600),  # a few a week: held at max_interval
])
def test_learned_rate_gives_one_expected_entry_per_poll(per_hour: float, expected: float) -> None:
    assert delay(schedule.after_success(NOW, B, per_hour / 3600)) == pytest.approx(expected)


def test_rate_from_publication_dates() -> None:
    dates = [NOW - timedelta(hours=h) for h in range(0, 20, 2)]  # 10 entries over 18 h
    assert schedule.rate_from_dates(dates) == pytest.approx(9 / (18 * 3600))
    assert schedule.rate_from_dates(dates[:2]) is None  # too few to learn from
    assert schedule.rate_from_dates([NOW] * 5) is None  # all at one instant


def test_update_rate_moves_toward_what_polls_observe() -> None:
    rate = 1 / 3600
    after_quiet_day = schedule.update_rate(rate, 0, 86400)
    assert after_quiet_day is not None
    assert after_quiet_day == pytest.approx(rate / 4)  # two half-lives of silence
    busy = schedule.update_rate(rate, 12, 3600)  # twelve in an hour
    assert busy is not None and busy > rate
    assert schedule.update_rate(None, 0, 600) is None  # nothing learned yet
    assert schedule.update_rate(rate, 3, 0) == rate  # no time passed: no information


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"ttl_minutes": 60}, 3600.0),
    ({"cache_control": "public, max-age=1800"}, 1800.0),
    ({"cache_control": "max-age=600", "ttl_minutes": 30}, 1800.0),  # the longest hint
    ({"cache_control": "no-cache, max-age=1800"}, None),
    ({"expires": "Mon, 02 Mar 2026 13:00:00 GMT", "date": "Mon, 02 Mar 2026 12:30:00 GMT"},
     1800.0),
    ({"expires": "Mon, 02 Mar 2026 13:00:00 GMT"}, 3600.0),  # no Date: against now
    ({"expires": "0"}, None),  # unreadable
    ({}, None),
])
def test_freshness_hints(kwargs: dict[str, object], expected: float | None) -> None:
    assert schedule.freshness_hint(now=NOW, **kwargs) == expected  # type: ignore[arg-type]


def test_hints_lengthen_the_interval_but_never_past_max_interval() -> None:
    assert delay(schedule.after_success(NOW, B, None, hint_s=3600)) == 3600
    assert delay(schedule.after_success(NOW, B, None, hint_s=60)) == 900  # shorter: ignored
    assert delay(schedule.after_success(NOW, B, None, hint_s=86400 * 7)) == 6 * 3600


def test_errors_back_off_exponentially_up_to_max_interval_and_keep_trying() -> None:
    delays = [delay(schedule.after_error(NOW, B, None, n)) for n in range(1, 12)]
    assert delays[:5] == [900, 1800, 3600, 7200, 14400]
    assert delays[5:] == [6 * 3600] * 6


def test_retry_after_is_honoured_within_min_interval_and_a_day() -> None:
    assert delay(schedule.after_error(NOW, B, None, 1, retry_after=600)) == 600
    assert delay(schedule.after_error(NOW, B, None, 1, retry_after=5)) == 120
    assert delay(schedule.after_error(NOW, B, None, 1, retry_after=10**7)) == 86400
    assert schedule.retry_after_s("120", NOW) == 120
    assert schedule.retry_after_s("Mon, 02 Mar 2026 12:10:00 GMT", NOW) == 600
    assert schedule.retry_after_s("soon", NOW) is None


def test_feeds_and_deliveries_read_retry_after_alike() -> None:
    """One reader of Retry-After and HTTP dates serves the schedule and delivery retries."""
    assert schedule.retry_after_s is retry.parse_retry_after is httpdates.retry_after_s
    assert schedule.http_date is httpdates.http_date
    assert httpdates.retry_after_s(" 30 ", NOW) == 30
    assert httpdates.retry_after_s("Mon, 02 Mar 2026 11:00:00 GMT", NOW) == 0.0  # past
    assert httpdates.retry_after_s("", NOW) is None
    assert httpdates.retry_after_s("\u0661\u0662", NOW) is None  # Arabic-Indic digits
    assert httpdates.http_date("Mon, 02 Mar 2026 12:10:00") == NOW + timedelta(minutes=10)
    assert httpdates.http_date("yesterday") is None


def test_jitter_adds_at_most_ten_percent() -> None:
    assert delay(schedule.after_success(NOW, B, None, jitter=0.999)) == pytest.approx(
        900 * 1.0999)
    assert delay(schedule.after_error(NOW, B, None, 1, jitter=0.5)) == pytest.approx(945)


# -- feed state after a poll ----------------------------------------------------------------

def test_first_success_learns_from_dates_and_stores_validators() -> None:
    dates = [NOW - timedelta(hours=h) for h in range(10)]  # 10 entries over 9 h: 1 an hour
    record = feedstate.succeeded(FEED, STATE, OK, now=NOW, polling=POLLING, new_entries=10,
                                 published=dates)
    s = record.state
    assert record.ok
    assert s.update_interval_s == pytest.approx(3600)
    assert delay(s.next_poll_at) == pytest.approx(3600)  # type: ignore[arg-type]
    assert (s.etag, s.last_modified) == ('"v1"', OK.last_modified)
    assert s.last_success_at == s.last_new_entry_at == NOW
    assert s.error_count == 0


def test_304_keeps_validators_and_slows_a_quiet_feed() -> None:
    state = replace(STATE, etag='"v1"', last_modified="x", last_success_at=NOW - timedelta(hours=6),
                    update_interval_s=3600.0)
    result = FetchResult(FEED.url, 304)
    record = feedstate.succeeded(FEED, state, result, now=NOW, polling=POLLING, new_entries=0,
                                 published=[])
    assert (record.state.etag, record.state.last_modified) == ('"v1"', "x")
    assert record.state.update_interval_s == pytest.approx(3600 * 2 ** 0.5)  # half a half-life


def test_permanent_redirect_moves_the_feed_and_says_to_update_the_config() -> None:
    moved = replace(OK, url="https://new.example/rss", moved_to="https://new.example/rss")
    record = feedstate.succeeded(FEED, STATE, moved, now=NOW, polling=POLLING, new_entries=0,
                                 published=[])
    assert record.state.url == "https://new.example/rss"
    assert record.warning is not None and "update the configured URL" in record.warning
    temporary = replace(OK, url="https://elsewhere.example/rss")  # 302/307: no moved_to
    assert feedstate.succeeded(FEED, STATE, temporary, now=NOW, polling=POLLING,
                               new_entries=0, published=[]).state.url == FEED.url


def test_410_disables_at_once_and_404_after_the_configured_days() -> None:
    gone = feedstate.failed(FEED, STATE, "HTTP 410 Gone", now=NOW, polling=POLLING, status=410)
    assert gone.state.disabled_reason is not None and "410 Gone" in gone.state.disabled_reason
    state = STATE
    for day in range(8):
        record = feedstate.failed(FEED, state, "HTTP 404 Not Found",
                                  now=NOW + timedelta(days=day), polling=POLLING, status=404)
        state = record.state
        assert (state.disabled_reason is None) == (day < 7), day
    assert state.not_found_since == NOW
    assert "reset wire" in (state.disabled_reason or "")
    other = feedstate.failed(FEED, replace(STATE, not_found_since=NOW), "HTTP 500", now=NOW,
                             polling=POLLING, status=500)
    assert other.state.not_found_since is None  # a different error breaks the 404 run


def test_failure_counts_and_keeps_failing_since() -> None:
    first = feedstate.failed(FEED, STATE, "boom", now=NOW, polling=POLLING)
    second = feedstate.failed(FEED, first.state, "boom again", now=NOW + timedelta(hours=1),
                              polling=POLLING)
    assert second.state.error_count == 2
    assert second.state.failing_since == NOW
    assert second.state.last_error == "boom again"
    assert not second.ok


def test_429_waits_as_the_server_asks() -> None:
    record = feedstate.failed(FEED, STATE, "HTTP 429", now=NOW, polling=POLLING, status=429,
                              retry_after="1800")
    assert delay(record.state.next_poll_at) == 1800  # type: ignore[arg-type]


# -- health ---------------------------------------------------------------------------------

HEALTH = HealthSettings(channel="ops", failing_after=86400, silent_factor=4, silent_min=86400)


def test_failing_for_a_day_raises_one_notice() -> None:
    state = replace(STATE, failing_since=NOW - timedelta(hours=23))
    early = feedstate.failed(FEED, state, "HTTP 500", now=NOW, polling=POLLING)
    assert judge(FEED, early, new_entries=0, now=NOW, settings=HEALTH)[1] is None
    later = NOW + timedelta(hours=2)
    record, notice = judge(FEED, feedstate.failed(FEED, state, "HTTP 500", now=later,
                                                  polling=POLLING),
                           new_entries=0, now=later, settings=HEALTH)
    assert notice is not None and notice.kind == "failing" and notice.channel == "ops"
    assert "HTTP 500" in notice.message
    assert record.state.health == "failing"
    again = feedstate.failed(FEED, record.state, "HTTP 500", now=later, polling=POLLING)
    assert judge(FEED, again, new_entries=0, now=later, settings=HEALTH)[1] is None


def test_recovery_after_failing_raises_a_notice() -> None:
    state = replace(STATE, health="failing", error_count=9, failing_since=NOW - timedelta(days=2),
                    last_success_at=NOW - timedelta(days=2))
    ok = feedstate.succeeded(FEED, state, OK, now=NOW, polling=POLLING, new_entries=0,
                             published=[])
    record, notice = judge(FEED, ok, new_entries=0, now=NOW, settings=HEALTH)
    assert notice is not None and notice.kind == "recovered"
    assert record.state.health == "ok"


def test_disabled_feed_raises_a_notice() -> None:
    gone = feedstate.failed(FEED, STATE, "HTTP 410 Gone", now=NOW, polling=POLLING, status=410)
    record, notice = judge(FEED, gone, new_entries=0, now=NOW, settings=HEALTH)
    assert notice is not None and notice.kind == "disabled"
    assert record.state.health == "disabled"


def test_silent_past_its_usual_pace_raises_a_notice_then_recovers() -> None:
    """An hourly feed silent for a day and a half: measured against its hourly pace (the
    learned rate decays while it is silent; the judge undoes that), not the decayed one."""
    state = replace(STATE, last_success_at=NOW - timedelta(hours=1), update_interval_s=3600.0,
                    last_new_entry_at=NOW - timedelta(hours=36))
    quiet = feedstate.succeeded(FEED, state, OK, now=NOW, polling=POLLING, new_entries=0,
                                published=[])
    record, notice = judge(FEED, quiet, new_entries=0, now=NOW, settings=HEALTH)
    assert notice is not None and notice.kind == "silent"
    assert "36 h" in notice.message
    back = feedstate.succeeded(FEED, record.state, OK, now=NOW + timedelta(hours=1),
                               polling=POLLING, new_entries=2, published=[])
    record, notice = judge(FEED, back, new_entries=2, now=NOW + timedelta(hours=1),
                           settings=HEALTH)
    assert notice is not None and notice.kind == "recovered"


def test_a_weekly_feed_quiet_for_two_days_is_not_silent() -> None:
    state = replace(STATE, last_success_at=NOW - timedelta(hours=6),
                    update_interval_s=7 * 86400.0, last_new_entry_at=NOW - timedelta(days=2))
    quiet = feedstate.succeeded(FEED, state, OK, now=NOW, polling=POLLING, new_entries=0,
                                published=[])
    assert judge(FEED, quiet, new_entries=0, now=NOW, settings=HEALTH)[1] is None


def test_expected_interval_undoes_the_decay_of_silence() -> None:
    decayed = 3600 * 2 ** 3  # an hourly feed after three half-lives of silence
    assert expected_interval_s(decayed, 3 * schedule.RATE_HALF_LIFE_S) == pytest.approx(3600)
    assert expected_interval_s(None, 100) is None
