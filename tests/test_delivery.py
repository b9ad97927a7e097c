"""The outbox's delivery loop against hostile receivers on loopback.

Each test writes alerts (and their pending deliveries) to a real SQLite store, then
runs the real :class:`~ingest.service.deliver.Dispatcher` with a hand-driven clock, so
retries come due exactly when the schedule says, while every request is real HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_store import FEEDS, NOW, make_entry, outcome, rule_spec

from ingest.config import Settings
from ingest.model import Alert
from ingest.notify.base import ChannelContext, delivery_client
from ingest.notify.registry import build_notifier
from ingest.service.deliver import Dispatcher
from ingest.store.base import AttemptRow, DeliveryRow
from ingest.store.sql import SqlStore
from ingest.testing import SmtpSink, WebhookReceiver, free_port


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Rig:
    """A store with alerts, channels built from settings, and a dispatcher."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.http = delivery_client("ingest-test")
        self.alerts: list[Alert] = []
        self.dispatcher: Dispatcher | None = None

    async def setup(self, channels: dict[str, dict[str, Any]], alerts: int = 1,
                    **delivery: Any) -> Dispatcher:
        settings = Settings.model_validate({"channels": channels,
                                            "delivery": {"timeout": 1, **delivery}})
        await self.store.sync_feeds(FEEDS, NOW)
        stored = await self.store.add_entries([make_entry(i) for i in range(1, alerts + 1)],
                                              NOW)
        changes = await self.store.record_outcomes(
            [outcome(s, rule_spec(), channels=tuple(channels)) for s in stored], NOW)
        self.alerts = [c.alert for c in changes if c.alert is not None]
        ctx = ChannelContext(self.http, settings.delivery.timeout)
        notifiers = {n: build_notifier(n, ch, ctx) for n, ch in settings.channels.items()}
        self.dispatcher = Dispatcher(settings, notifiers, self.store, self.clock, "test")
        return self.dispatcher

    async def row(self, channel: str = "hook") -> DeliveryRow:
        [row] = [d for d in await self.store.deliveries() if d.channel == channel]
        return row

    async def attempts(self) -> list[AttemptRow]:
        return await self.store.delivery_attempts(self.alerts[0].id)

    async def until_delivered(self, dispatcher: Dispatcher, rounds: int = 10) -> list[float]:
        """Drain; move the clock to each retry time and drain again, until delivered.
        Returns the waits (seconds) the schedule asked for."""
        waits = []
        for _ in range(rounds):
            await dispatcher.drain()
            row = await self.row()
            if row.state != "failed":
                return waits
            assert row.next_attempt_at is not None
            waits.append((row.next_attempt_at - self.clock.now).total_seconds())
            assert await dispatcher.drain() == (0, 0)  # not due before its time
            self.clock.now = row.next_attempt_at
        return waits


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = SqlStore(f"sqlite:///{tmp_path / 'outbox.db'}")
    await store.init()
    rig = Rig(store, Clock(NOW))
    try:
        yield rig
    finally:
        await rig.http.close()
        await store.close()


def hook(receiver: WebhookReceiver, **extra: Any) -> dict[str, dict[str, Any]]:
    return {"hook": {"type": "webhook", "url": receiver.url("/hook"), **extra}}


async def test_500_three_times_then_200_follows_the_backoff(rig: Rig) -> None:
    """Three 500s then 200: four attempts, at 30 s, 60 s and 120 s (+ ≤10 % jitter), one key."""
    with WebhookReceiver() as receiver:
        receiver.statuses = [500, 500, 500]
        waits = await rig.until_delivered(await rig.setup(hook(receiver)))
        keys = {r.headers["Idempotency-Key"] for r in receiver.rejected + receiver.received}
    assert len(receiver.rejected) == 3 and len(receiver.received) == 1
    assert keys == {rig.alerts[0].id}
    for wait, base in zip(waits, (30, 60, 120), strict=True):
        assert base <= wait <= base * 1.1 + 0.01
    row = await rig.row()
    assert (row.state, row.attempts, row.receipt) == ("delivered", 4, "HTTP 200")
    assert [(a.attempt, a.outcome) for a in await rig.attempts()] == [
        (1, "failed"), (2, "failed"), (3, "failed"), (4, "delivered")]


async def test_429_retry_after_is_honoured(rig: Rig) -> None:
    """A 429 with Retry-After: 600 waits 600 s (not the 30 s backoff), then delivers."""
    with WebhookReceiver() as receiver:
        receiver.statuses = [429]
        receiver.response_headers = {"Retry-After": "600"}
        waits = await rig.until_delivered(await rig.setup(hook(receiver)))
    assert len(waits) == 1 and 600 <= waits[0] <= 660.01
    assert (await rig.row()).state == "delivered" and len(receiver.received) == 1
    [failed, _] = await rig.attempts()
    assert "HTTP 429" in failed.detail and "Retry-After: 600s" in failed.detail


async def test_receiver_hanging_past_the_timeout_is_retried(rig: Rig) -> None:
    """A receiver that answers after the timeout is a failure; the retry delivers."""
    with WebhookReceiver() as receiver:
        receiver.statuses = ["hang"]
        receiver.hang_s = 3.0
        waits = await rig.until_delivered(await rig.setup(hook(receiver), timeout="0.5s"))
    assert len(waits) == 1
    [failed, done] = await rig.attempts()
    assert "no complete answer within 0.5s" in failed.detail and done.outcome == "delivered"
    assert len(receiver.received) == 1


async def test_connection_closed_mid_request_is_retried(rig: Rig) -> None:
    """A receiver hanging up before answering is a failure; the retry delivers."""
    with WebhookReceiver() as receiver:
        receiver.statuses = ["close"]
        waits = await rig.until_delivered(await rig.setup(hook(receiver)))
    assert len(waits) == 1 and receiver.closed == 1 and len(receiver.received) == 1
    [failed, _] = await rig.attempts()
    assert "failed" in failed.detail and failed.outcome == "failed"


async def test_receiver_down_for_a_while_then_up(rig: Rig) -> None:
    """Connection refused for three attempts; the receiver comes up; every alert arrives once."""
    port = free_port()
    channels = {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook"}}
    dispatcher = await rig.setup(channels, alerts=5)
    for _ in range(3):
        assert await dispatcher.drain() == (0, 5)
        rows = await rig.store.deliveries()
        rig.clock.now = max(r.next_attempt_at for r in rows if r.next_attempt_at)
    with WebhookReceiver(port=port) as receiver:
        assert await dispatcher.drain() == (5, 0)
    assert sorted(receiver.keys()) == sorted(a.id for a in rig.alerts)
    assert {(r.state, r.attempts) for r in await rig.store.deliveries()} == {("delivered", 4)}


async def test_permanent_4xx_is_dead_at_once(rig: Rig) -> None:
    """404 is permanent: dead after one attempt, never retried."""
    with WebhookReceiver(404) as receiver:
        dispatcher = await rig.setup(hook(receiver))
        assert await dispatcher.drain() == (0, 1)
        rig.clock.now += timedelta(days=1)
        assert await dispatcher.drain() == (0, 0)
    row = await rig.row()
    assert (row.state, row.attempts) == ("dead", 1) and "permanent" in (row.last_error or "")


async def test_max_attempts_then_dead(rig: Rig) -> None:
    """A receiver that always fails gets exactly max_attempts attempts, then the row is dead."""
    with WebhookReceiver(503) as receiver:
        waits = await rig.until_delivered(await rig.setup(hook(receiver, max_attempts=3)))
    row = await rig.row()
    assert (row.state, row.attempts, len(receiver.rejected)) == ("dead", 3, 3)
    assert len(waits) == 2 and "max_attempts 3" in (row.last_error or "")


async def test_max_age_then_dead(rig: Rig) -> None:
    """With max_age 60 s the second failure is final: its retry would come at 90 s."""
    with WebhookReceiver(500) as receiver:
        waits = await rig.until_delivered(await rig.setup(hook(receiver, max_age="60s")))
    row = await rig.row()
    assert (row.state, row.attempts, len(waits)) == ("dead", 2, 1)
    assert "max_age" in (row.last_error or "")


async def test_slow_channel_never_delays_another(rig: Rig) -> None:
    """A receiver taking a second per request holds up only its own channel."""
    with WebhookReceiver(delay_s=1.0) as slow, WebhookReceiver() as fast:
        channels = {"slow": {"type": "webhook", "url": slow.url("/"), "concurrency": 1},
                    "fast": {"type": "webhook", "url": fast.url("/"), "concurrency": 1}}
        dispatcher = await rig.setup(channels, alerts=4, timeout="5s")
        draining = asyncio.create_task(dispatcher.drain())
        for _ in range(200):
            if len(fast.received) == 4 or draining.done():
                break
            await asyncio.sleep(0.02)
        slow_when_fast_done = len(slow.received)
        assert await draining == (8, 0)
    assert len(fast.received) == 4 and slow_when_fast_done < 4


async def test_rate_limit_spaces_sends(rig: Rig) -> None:
    """rate_limit 5/s: ten sends cannot all go within the first second."""
    with WebhookReceiver() as receiver:
        dispatcher = await rig.setup(hook(receiver, rate_limit="5/s"), alerts=10)
        started = asyncio.get_running_loop().time()
        assert await dispatcher.drain() == (10, 0)
        spent = asyncio.get_running_loop().time() - started
    assert len(receiver.received) == 10 and spent >= 0.9  # a lower bound: the limit's floor


async def test_channel_bug_is_recorded_and_retried(rig: Rig) -> None:
    """A channel raising something unexpected fails the attempt (kept, retried), not the loop."""
    with WebhookReceiver() as receiver:
        dispatcher = await rig.setup(hook(receiver))
        worker = dispatcher.workers["hook"]
        real_send = worker.notifier.send

        async def broken(alert: Alert) -> str:
            raise KeyError("bug")

        worker.notifier.send = broken  # type: ignore[method-assign]
        assert await dispatcher.drain() == (0, 1)
        worker.notifier.send = real_send  # type: ignore[method-assign]
        rig.clock.now += timedelta(minutes=1)
        assert await dispatcher.drain() == (1, 0)
    [failed, _] = await rig.attempts()
    assert "unexpected KeyError" in failed.detail
    assert json.loads(receiver.received[0].body)["alert_id"] == rig.alerts[0].id


def digest_channel(sink: SmtpSink) -> dict[str, dict[str, Any]]:
    return {"desk": {"type": "email", "host": "127.0.0.1", "port": sink.port,
                     "security": "none", "from": "ingest@example.org",
                     "to": ["desk@example.org"], "digest": "15m"}}


async def test_digest_waits_for_its_time_and_sends_one_message(rig: Rig) -> None:
    """Ten alerts made at 12:00 on a 15m digest: nothing at 12:01, one message at 12:15
    with both parts and the ten alert ids, every row delivered."""
    with SmtpSink() as sink:
        dispatcher = await rig.setup(digest_channel(sink), alerts=10)
        rig.clock.now = NOW + timedelta(minutes=1)
        assert await dispatcher.drain() == (0, 0) and sink.messages == []
        rig.clock.now = NOW + timedelta(minutes=15)
        assert await dispatcher.drain() == (10, 0)
    [message] = sink.messages
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert sorted(message.get_all("X-Ingest-Alert-Id") or []) == sorted(a.id for a in rig.alerts)
    rows = await rig.store.deliveries()
    assert {r.state for r in rows} == {"delivered"}
    assert all((r.receipt or "").startswith("digest of 10: SMTP") for r in rows)


async def test_failed_digest_is_retried_at_its_retry_time_not_the_next_digest(
        rig: Rig) -> None:
    """A 451 on the digest: the same alerts go again as one message after the backoff."""
    with SmtpSink(defer=1) as sink:
        dispatcher = await rig.setup(digest_channel(sink), alerts=3)
        rig.clock.now = NOW + timedelta(minutes=15)
        assert await dispatcher.drain() == (0, 3)
        rows = await rig.store.deliveries()
        assert {r.state for r in rows} == {"failed"} and sink.deferred == 1
        rig.clock.now = max(r.next_attempt_at for r in rows if r.next_attempt_at)
        assert rig.clock.now < NOW + timedelta(minutes=30)
        assert await dispatcher.drain() == (3, 0)
    [message] = sink.messages
    assert len(message.get_all("X-Ingest-Alert-Id") or []) == 3


async def test_daemon_sends_new_alerts_at_once_not_at_the_tick(
        tmp_path: Path, analyzer: Any, feed_server: Any) -> None:
    """In the daemon, a cycle that writes alerts wakes the channel workers: with a delivery
    tick of an hour, every alert still arrives, once, and a stop leaves nothing sending."""
    from test_service import EXPECTED, seed_feeds, settings_for

    from ingest.service.app import App
    from ingest.service.scheduler import Daemon

    with WebhookReceiver() as receiver:
        settings = settings_for(tmp_path, seed_feeds(feed_server), receiver)
        settings = settings.model_copy(update={
            "delivery": settings.delivery.model_copy(update={"tick": 3600.0}),
            "polling": settings.polling.model_copy(update={"tick": 3600.0})})
        app = await App.start(settings, analyzer=analyzer)
        try:
            daemon = Daemon(app, grace_s=10, watch=False)
            running = asyncio.create_task(daemon.run())
            for _ in range(600):
                if len(receiver.received) >= len(EXPECTED) or running.done():
                    break
                await asyncio.sleep(0.1)
            daemon.stop.set()
            await asyncio.wait_for(running, 30)
            rows = await app.store.deliveries()
        finally:
            await app.close()
    assert len(receiver.received) == len(EXPECTED) == len(set(receiver.keys()))
    assert {r.state for r in rows} == {"delivered"}


async def test_held_digest_alerts_age_from_the_digest_not_their_birth(rig: Rig) -> None:
    """An alert held four days for a weekly digest is not 'too old' when the digest fails
    once: max_age (2d) counts from the digest's time, so the failure is retried."""
    with SmtpSink(defer=1) as sink:
        channels = digest_channel(sink)
        channels["desk"]["digest"] = "0 8 * * 1"  # Mondays 08:00 UTC; NOW is a Wednesday
        dispatcher = await rig.setup(channels, alerts=2)
        rig.clock.now = datetime(2024, 5, 6, 8, 0, 30, tzinfo=UTC)  # the next Monday
        assert await dispatcher.drain() == (0, 2)
        rows = await rig.store.deliveries()
        assert {r.state for r in rows} == {"failed"}
        rig.clock.now = max(r.next_attempt_at for r in rows if r.next_attempt_at)
        assert await dispatcher.drain() == (2, 0)
    assert len(sink.messages) == 1


async def test_webhook_errors_never_carry_the_urls_secrets(rig: Rig) -> None:
    """Userinfo, query and token-like path segments stay out of errors, rows and logs."""
    with WebhookReceiver(500) as receiver:
        url = receiver.url("/services/T0AB12CD3/XyZ987abcDEF?token=s3cret").replace(
            "http://", "http://user:pa55word@")
        dispatcher = await rig.setup({"hook": {"type": "webhook", "url": url}})
        assert await dispatcher.drain() == (0, 1)
    row = await rig.row()
    assert row.last_error and "HTTP 500" in row.last_error
    for secret in ("pa55word", "s3cret", "XyZ987abcDEF", "T0AB12CD3"):
        assert secret not in row.last_error
        assert all(secret not in a.detail for a in await rig.attempts())
