"""Fleet coordination in the store (SQLite and a fresh PostgreSQL database): feed and entry
leases, heartbeats, the reaper, a clean leave; concurrent claims on PostgreSQL never
overlap.  And what a SIGHUP may change (``service/reconfig.py``, pure)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import empty_database

from ingest.config import FleetSettings, PollingSettings, Settings
from ingest.model import Entry, Feed
from ingest.service.reconfig import RESTART_ONLY, plan_reload
from ingest.store.base import InstanceRow, PollRecord
from ingest.store.sql import SqlStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with empty_database(request.param, tmp_path) as url:
        s = SqlStore(url)
        await s.init()
        try:
            yield s
        finally:
            await s.close()


def feeds(n: int) -> list[Feed]:
    return [Feed(f"f{i:05d}", f"http://127.0.0.1:9/f{i:05d}.xml") for i in range(n)]


async def join(store: SqlStore, name: str, at: datetime = NOW) -> str:
    instance = f"host-{name}:{len(name)}:abc{name}"
    await store.register_instance(InstanceRow(instance, f"host-{name}", len(name), "test",
                                              at, at, "running", {}))
    return instance


async def claim(store: SqlStore, instance: str, limit: int = 100,
                now: datetime = NOW) -> set[str]:
    got = await store.claim_feeds(now=now, due_by=now, limit=limit, instance=instance,
                                  lease_until=now + LEASE)
    return {f.id for f, _ in got}


async def test_a_leased_feed_is_due_for_no_one_else_until_its_lease_ends(store: SqlStore) -> None:
    await store.sync_feeds(feeds(10), NOW)
    a, b = await join(store, "a"), await join(store, "b")
    first = await claim(store, a, limit=6)
    second = await claim(store, b)
    assert len(first) == 6 and len(second) == 4 and not first & second
    assert await claim(store, b) == set()  # all held
    later = await claim(store, b, now=NOW + LEASE + timedelta(seconds=1))
    assert later == first | second  # every lease has lapsed: due again for anyone


async def test_heartbeats_extend_leases_and_report_them(store: SqlStore) -> None:
    await store.sync_feeds(feeds(3), NOW)
    a, b = await join(store, "a"), await join(store, "b")
    await claim(store, a)
    beat_at = NOW + timedelta(seconds=50)
    held = await store.heartbeat(a, now=beat_at, lease_until=beat_at + LEASE)
    assert held == {"feeds": 3, "entries": 0, "deliveries": 0}
    # Past the first lease's end, but within the renewed one: still a's.
    assert await claim(store, b, now=NOW + LEASE + timedelta(seconds=5)) == set()


async def test_recording_a_poll_ends_its_lease(store: SqlStore) -> None:
    await store.sync_feeds(feeds(2), NOW)
    a = await join(store, "a")
    claimed = await store.claim_feeds(now=NOW, due_by=NOW, limit=10, instance=a,
                                      lease_until=NOW + LEASE)
    feed, state = claimed[0]
    await store.record_polls([PollRecord(replace(state, next_poll_at=NOW), NOW, True)])
    held = await store.heartbeat(a, now=NOW, lease_until=NOW + LEASE)
    assert held["feeds"] == 1  # the other one
    assert await claim(store, await join(store, "b")) == {feed.id}


async def test_a_dead_instance_is_reaped_and_its_work_taken_over(store: SqlStore) -> None:
    await store.sync_feeds(feeds(4), NOW)
    entries = [Entry("f00000", f"k{i}", f"t{i}", f"http://x/{i}", "s", "", NOW) for i in range(5)]
    await store.add_entries(entries, NOW)
    dead, alive = await join(store, "dead"), await join(store, "alive")
    assert len(await claim(store, dead)) == 4
    taken = await store.claim_entries(now=NOW, limit=3, instance=dead, lease_until=NOW + LEASE)
    assert len(taken) == 3
    rest = await store.claim_entries(now=NOW, limit=10, instance=alive,
                                     lease_until=NOW + LEASE)
    assert {s.id for s in rest}.isdisjoint({s.id for s in taken}) and len(rest) == 2
    # ``alive`` beats on; ``dead`` has been silent for longer than the lease.
    later = NOW + timedelta(seconds=30)
    await store.heartbeat(alive, now=later, lease_until=later + LEASE)
    assert await store.reap_instances(now=later, dead_before=later - LEASE) == []
    much_later = NOW + LEASE + timedelta(seconds=10)
    await store.heartbeat(alive, now=much_later, lease_until=much_later + LEASE)
    assert await store.reap_instances(now=much_later, dead_before=much_later - LEASE) == [dead]
    # Freed at once (not only when the leases lapse), for anyone.
    assert len(await claim(store, alive, now=much_later)) == 4
    again = await store.claim_entries(now=much_later, limit=10, instance=alive,
                                      lease_until=much_later + LEASE)
    assert {s.id for s in again} == {s.id for s in taken}
    states = {r.id: r.state for r in await store.instances(include_stopped=True)}
    assert states == {dead: "dead", alive: "running"}
    assert [r.id for r in await store.instances()] == [alive]


async def test_a_clean_leave_releases_everything(store: SqlStore) -> None:
    await store.sync_feeds(feeds(3), NOW)
    a = await join(store, "a")
    await claim(store, a)
    released = await store.retire_instance(a, NOW)
    assert released == {"feeds": 3, "entries": 0, "deliveries": 0}
    assert len(await claim(store, await join(store, "b"))) == 3
    [row] = [r for r in await store.instances(include_stopped=True) if r.id == a]
    assert row.state == "stopped" and row.stopped_at == NOW


async def test_concurrent_claims_never_overlap(store: SqlStore) -> None:
    """Eight instances claiming 500 feeds at once, in small chunks: every feed claimed
    exactly once (PostgreSQL: SKIP LOCKED; SQLite: one writer at a time)."""
    await store.sync_feeds(feeds(500), NOW)
    names = [await join(store, str(i)) for i in range(8)]

    async def drain(instance: str) -> list[str]:
        mine: list[str] = []
        while got := await claim(store, instance, limit=7):
            mine.extend(got)
        return mine

    results = await asyncio.gather(*(drain(n) for n in names))
    everything = [f for r in results for f in r]
    assert len(everything) == len(set(everything)) == 500
    assert sum(1 for r in results if r) >= 2  # the work was actually shared


def test_a_reload_keeps_restart_only_settings_and_names_them() -> None:
    old = Settings(database_url="sqlite:///a.db", retention=86400.0)
    new = Settings(database_url="sqlite:///b.db", retention=3600.0,
                   polling=PollingSettings(concurrency=8), fleet=FleetSettings(lease=30.0),
                   shutdown_timeout=5.0)
    plan = plan_reload(old, new)
    assert plan.restart_needed == ("database_url", "polling", "fleet")
    assert plan.changed == ("retention", "shutdown_timeout")
    assert plan.settings.database_url == "sqlite:///a.db"
    assert plan.settings.polling == old.polling and plan.settings.fleet == old.fleet
    assert plan.settings.retention == 3600.0 and plan.settings.shutdown_timeout == 5.0
    assert plan_reload(old, old).changed == () == plan_reload(old, old).restart_needed
    assert set(RESTART_ONLY) <= set(Settings.model_fields)


async def test_instances_starting_together_sync_the_feeds_in_turn(store: SqlStore) -> None:
    """Several instances syncing the same new feeds at once: no duplicate-key failure."""
    await asyncio.gather(*(store.sync_feeds(feeds(200), NOW) for _ in range(4)))
    assert len(await store.feeds(NOW)) == 200


def test_a_reload_naming_a_channel_not_yet_running_waits_for_the_restart() -> None:
    """A new channel starts only on restart: routes, default channels and the health
    channel naming it wait too, instead of sending alerts nowhere meanwhile."""
    from ingest.config import HealthSettings
    from ingest.notify.stdout import Settings as StdoutSettings
    from ingest.routing import Route

    out = {"out": StdoutSettings(type="stdout")}
    old = Settings(channels=out)
    pager = {**out, "pager": StdoutSettings(type="stdout")}
    new = Settings(channels=pager, default_channels=["pager"],
                   routes=[Route(channels=["pager"])], health=HealthSettings(channel="pager"),
                   retention=60.0)
    plan = plan_reload(old, new)
    assert set(plan.restart_needed) == {"channels", "default_channels", "routes", "health"}
    assert plan.changed == ("retention",)
    assert plan.settings.default_channels is None and plan.settings.routes == []
    # Naming only running channels: live at once.
    ok = plan_reload(old, Settings(channels=out, default_channels=["out"]))
    assert ok.changed == ("default_channels",) and ok.restart_needed == ()


async def test_a_poll_recorded_after_its_lease_was_taken_over_is_not_written(
        store: SqlStore) -> None:
    """Instance a was taken for dead and b re-claimed the feed: a's late record must not
    clear b's lease or overwrite b's poll; a record for a URL changed meanwhile neither."""
    await store.sync_feeds(feeds(1), NOW)
    a = await join(store, "a")
    [(feed, state)] = await store.claim_feeds(now=NOW, due_by=NOW, limit=1, instance=a,
                                              lease_until=NOW + LEASE)
    assert await store.reap_instances(now=NOW + 2 * LEASE, dead_before=NOW + LEASE) == [a]
    b = await join(store, "b", at=NOW + 2 * LEASE)
    assert await claim(store, b, now=NOW + 2 * LEASE) == {feed.id}
    late = PollRecord(replace(state, etag="a-stale", next_poll_at=NOW), NOW, True,
                      config_url=feed.url)
    await store.record_polls([late], holder=a)
    [row] = await store.feeds(NOW)
    assert row.state.etag is None  # not a's
    assert await store.heartbeat(b, now=NOW + 2 * LEASE, lease_until=NOW + 3 * LEASE) == {
        "feeds": 1, "entries": 0, "deliveries": 0}  # still b's
    # The feed's URL is edited while b polls it: b's record is for the old URL.
    moved = Feed(feed.id, "http://127.0.0.1:9/new.xml")
    await store.sync_feeds([moved], NOW)
    await store.record_polls([replace(late, state=replace(state, etag="b-old-url"))], holder=b)
    [row] = await store.feeds(NOW)
    assert row.state.etag is None and row.state.url == moved.url


async def test_a_late_record_after_the_new_owner_recorded_is_fenced_with_its_notice(
        store: SqlStore) -> None:
    """b took the feed over and recorded its poll (no lease left on the row); a's record,
    later still, must not overwrite b's, and a's notice about it is dropped too."""
    from ingest.store.base import Notice

    await store.sync_feeds(feeds(1), NOW)
    a = await join(store, "a")
    [(feed, state)] = await store.claim_feeds(now=NOW, due_by=NOW, limit=1, instance=a,
                                              lease_until=NOW + LEASE)
    await store.reap_instances(now=NOW + 2 * LEASE, dead_before=NOW + LEASE)
    b = await join(store, "b", at=NOW + 2 * LEASE)
    [(_, state_b)] = await store.claim_feeds(now=NOW + 2 * LEASE, due_by=NOW + 2 * LEASE,
                                             limit=1, instance=b,
                                             lease_until=NOW + 3 * LEASE)
    fresh = PollRecord(replace(state_b, etag="b-fresh"), NOW + 2 * LEASE, True,
                       config_url=feed.url)
    assert await store.record_polls([fresh], holder=b) == set()
    stale = PollRecord(replace(state, etag="a-stale", error_count=5), NOW, False,
                       config_url=feed.url)
    notice = Notice(feed.id, "failing", "a's stale view", NOW)
    assert await store.record_polls([stale], [notice], holder=a) == {feed.id}
    [row] = await store.feeds(NOW)
    assert row.state.etag == "b-fresh" and row.state.error_count == 0
    assert await store.notices(feed.id) == []


async def test_a_reaped_instance_learns_it_at_its_next_heartbeat(store: SqlStore) -> None:
    a = await join(store, "a")
    assert await store.reap_instances(now=NOW + 2 * LEASE, dead_before=NOW + LEASE) == [a]
    back = NOW + 2 * LEASE
    held = await store.heartbeat(a, now=back, lease_until=back + LEASE)
    assert held.pop("revived") == 1
    assert [(r.id, r.state) for r in await store.instances()] == [(a, "running")]
    assert "revived" not in await store.heartbeat(a, now=back, lease_until=back + LEASE)


async def test_claiming_thousands_of_feeds_at_once(store: SqlStore) -> None:
    """``run --once`` claims every feed in one go: more ids than one statement may bind."""
    await store.sync_feeds(feeds(12_000), NOW)
    a = await join(store, "a")
    got = await store.claim_feeds(now=NOW, due_by=NOW, limit=1_000_000, instance=a,
                                  lease_until=NOW + LEASE)
    assert len(got) == 12_000
    assert (await store.heartbeat(a, now=NOW, lease_until=NOW + LEASE))["feeds"] == 12_000
