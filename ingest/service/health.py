"""Feed health: a feed is never given up on silently.

:func:`judge` (pure) compares a feed's state before and after a poll and decides
whether the operator must hear of it:

* **failing**: errors without a success for ``health.failing_after`` (default 1 day);
* **disabled**: the server said ``410 Gone``, or ``404`` lasted too long;
* **silent**: polls succeed but no new entry has come for ``health.silent_factor``
  times the feed's expected interval (learned from its history), and at least
  ``health.silent_min``;
* **recovered**: a failing feed polled successfully, or a silent feed publishing again.

Each notice is recorded (``ingest feeds status ID`` lists them) and, when
``health.channel`` names a channel, sent there as an alert of the rule ``feed-health``
by :class:`NoticeSender`, retried with backoff until it goes through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from ingest.config import HealthSettings
from ingest.fetch.schedule import RATE_HALF_LIFE_S
from ingest.model import Alert, Feed
from ingest.notify.base import Notifier
from ingest.notify.retry import retry_at
from ingest.parse.dedup import alert_id
from ingest.store.base import Notice, PollRecord, Store

log = structlog.get_logger("ingest.health")

NOTICE_RULE = "feed-health"
_SEVERITY = {"failing": "high", "disabled": "high", "silent": "medium", "recovered": "info"}
MAX_NOTICE_ATTEMPTS = 20
GROUP_FROM = 5  # this many notices of one kind due at once go as one alert


def expected_interval_s(update_interval_s: float | None, silent_s: float) -> float | None:
    """The feed's expected time between entries as it was when its last entry came.

    The learned rate decays with every empty poll; undo the decay over the silence so
    a long silence is measured against the feed's usual pace, not a pace it taught.
    """
    if not update_interval_s:
        return None
    return update_interval_s / math.exp(math.log(2) * silent_s / RATE_HALF_LIFE_S)


def judge(feed: Feed, record: PollRecord, *, new_entries: int, now: datetime,
          settings: HealthSettings) -> tuple[PollRecord, Notice | None]:
    """The record with its health updated, and the notice the change calls for."""
    s = record.state
    kind, message = None, ""
    if s.disabled_reason and s.health != "disabled":
        kind, message = "disabled", f"feed {feed.id} is no longer polled: {s.disabled_reason}"
    elif not record.ok and s.failing_since and s.health not in ("failing", "disabled") and (
            (now - s.failing_since).total_seconds() >= settings.failing_after):
        kind = "failing"
        message = (f"feed {feed.id} has failed every poll since {s.failing_since:%Y-%m-%d %H:%M}"
                   f" UTC ({s.error_count} in a row): {s.last_error}; it is still retried, "
                   f"next at {s.next_poll_at:%H:%M} UTC")
    elif record.ok and s.health == "failing":
        kind, message = "recovered", f"feed {feed.id} is polled successfully again"
    elif record.ok and s.health == "silent" and new_entries:
        kind, message = "recovered", f"feed {feed.id} is publishing again"
    elif record.ok and s.health == "ok" and s.last_new_entry_at is not None:
        silent_s = (now - s.last_new_entry_at).total_seconds()
        expected = expected_interval_s(s.update_interval_s, silent_s)
        limit = max(settings.silent_factor * (expected or 0.0), settings.silent_min)
        if silent_s > limit:
            kind = "silent"
            message = (f"feed {feed.id} has published nothing new for {silent_s / 3600:.0f} h"
                       + (f" (it usually publishes every {expected / 3600:.1f} h)"
                          if expected else "")
                       + "; it is still polled")
    if kind is None:
        return record, None
    health = "ok" if kind == "recovered" else kind
    record = replace(record, state=replace(s, health=health, health_since=now))
    return record, Notice(feed.id, kind, message, now, settings.channel)


def notice_alert(notice: Notice) -> Alert:
    """A notice as the alert channels know how to send."""
    return Alert(
        id=alert_id(NOTICE_RULE, notice.feed_id, f"notice:{notice.id}"),  # 32 hex, as schema
        rule_id=NOTICE_RULE, rule_title=f"Feed {notice.kind}",
        severity=_SEVERITY.get(notice.kind, "medium"), tags=(NOTICE_RULE, notice.kind),
        feed_id=notice.feed_id, entry_key=f"notice:{notice.id}", entry_title=notice.message,
        entry_link="", published=notice.created_at, created_at=notice.created_at,
        snippet=notice.message, channels=(notice.channel,) if notice.channel else ())


def grouped_alert(notices: Sequence[Notice]) -> Alert:
    """Many notices of one kind at once (a network outage, a provider down) as one alert,
    so the health channel gets one message, not one per feed."""
    first = notices[0]
    names = ", ".join(n.feed_id for n in notices[:10])
    more = f" and {len(notices) - 10} more" if len(notices) > 10 else ""
    title = f"{len(notices)} feeds {first.kind}: {names}{more}"
    key = f"notices:{min(n.id or 0 for n in notices)}-{max(n.id or 0 for n in notices)}"
    return replace(notice_alert(first), id=alert_id(NOTICE_RULE, first.kind, key),
                   feed_id="", entry_key=key, entry_title=title,
                   snippet="\n".join(n.message for n in notices[:50]))


class NoticeSender:
    """Sends due notices to their channel; a failure is retried with backoff.  From
    :data:`GROUP_FROM` notices of one kind due at once, they go as one alert."""

    def __init__(self, store: Store, notifiers: dict[str, Notifier]) -> None:
        self._store = store
        self._notifiers = notifiers

    async def send_due(self, now: datetime) -> int:
        groups: dict[tuple[str | None, str], list[Notice]] = {}
        for notice in await self._store.due_notices(now, limit=10_000):
            groups.setdefault((notice.channel, notice.kind), []).append(notice)
        sent = 0
        for (channel, _), notices in groups.items():
            notifier = self._notifiers.get(channel or "")
            if notifier is None:
                for n in notices:
                    await self._store.finish_notice(
                        n.id or 0, state="dead", now=now,
                        error=f"channel {channel!r} is not configured")
                continue
            batches = ([(grouped_alert(notices), notices)] if len(notices) >= GROUP_FROM
                       else [(notice_alert(n), [n]) for n in notices])
            for alert, members in batches:
                sent += await self._send(notifier, alert, members, now)
        return sent

    async def _send(self, notifier: Notifier, alert: Alert, members: list[Notice],
                    now: datetime) -> int:
        nlog = log.bind(notice=members[0].kind, channel=notifier.name,
                        feeds=[n.feed_id for n in members[:20]])
        try:
            await notifier.send(alert)
        except Exception as exc:  # DeliveryError, or a channel's bug: retried alike
            nlog.warning("notice.failed", error=str(exc))
            for n in members:  # each keeps its own count and backoff
                attempts = n.attempts + 1
                state = "dead" if attempts >= MAX_NOTICE_ATTEMPTS else "pending"
                await self._store.finish_notice(
                    n.id or 0, state=state, now=now, error=str(exc)[:2000],
                    next_attempt_at=retry_at(now, attempts) if state == "pending" else None)
            return 0
        for n in members:
            await self._store.finish_notice(n.id or 0, state="sent", now=now)
        nlog.info("notice.sent", notices=len(members))
        return len(members)


def log_notice(notice: Notice) -> None:
    """Every notice is logged, whether or not a channel receives it."""
    log.warning(f"feed.{notice.kind}", feed_id=notice.feed_id, message=notice.message)

