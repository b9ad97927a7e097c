"""This instance's place in the fleet: its id, its heartbeat, the reaper, SQLite's guard.

Every ``ingest run`` process is an instance with an id ``host:pid:random``.  It joins
(a row in ``instances``), renews that row and its leases every ``fleet.heartbeat``, frees
what dead instances held (see :mod:`ingest.store.leases`), refreshes the fleet-wide
gauges, and on a clean stop leaves: every lease released, the row marked ``stopped``.

A SQLite database serves one instance: :class:`SqliteGuard` holds an exclusive lock on
a file beside it for the life of the process (the kernel drops it if the process dies),
so a second ``ingest run`` on the same file is refused with a clear message instead of
interleaving with the first.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import structlog

from ingest.config import FleetSettings
from ingest.errors import StorageError
from ingest.service import sdnotify
from ingest.service.metrics import DELIVERY_STATES, LEASE_KINDS, Metrics, package_version
from ingest.store.base import InstanceRow, Store

log = structlog.get_logger("ingest.fleet")


def new_instance_id() -> str:
    """``host:pid:random``; delivery claim tokens start with it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class SqliteGuard:
    """An exclusive lock on ``<database>.instance-lock`` while this process runs."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = Path(f"{database}.instance-lock")
        self._handle: IO[bytes] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StorageError naming who holds it (a no-op when held)."""
        if self._handle is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+b")  # noqa: SIM115 - held for the process's life
        except OSError as exc:
            raise StorageError(f"cannot create {self.path}: {exc.strerror}; check "
                               "database_url and the folder's permissions") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().decode(errors="replace").strip() or "another process"
            handle.close()
            raise StorageError(
                f"another ingest instance ({holder}) is running on {self.database}: "
                "a SQLite database serves one instance. Stop it first, or, to run several "
                "instances, put them on PostgreSQL (database_url: postgresql://…)") from None
        handle.truncate(0)
        handle.write(f"{socket.gethostname()} pid {os.getpid()}".encode())
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class Membership:
    """Join, heartbeat, reap and leave, for one instance."""

    def __init__(self, store: Store, settings: FleetSettings, clock: Callable[[], datetime],
                 metrics: Metrics, instance: str) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.instance = instance
        self.state = "running"  # "stopping" once the daemon stops claiming
        self._beat_at = time.monotonic()

    @property
    def log(self) -> Any:
        """Bound at each use, so that a reload's log levels apply."""
        return log.bind(instance=self.instance)

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.lease)

    async def join(self) -> None:
        await self.store.register_instance(
            InstanceRow.joining(self.instance, package_version(), self.clock()))
        self._beat_at = time.monotonic()
        self.log.info("instance.joined", heartbeat_s=self.settings.heartbeat,
                      lease_s=self.settings.lease)

    def current(self) -> bool:
        """Whether this instance may claim work: its last heartbeat is recent enough that
        no other instance can have taken it for dead (less than half a lease ago)."""
        return time.monotonic() - self._beat_at < self.settings.lease / 2

    async def beat(self) -> None:
        """Renew this instance's row and leases; then free the dead's and refresh the
        gauges (a failure there never holds up the next heartbeat)."""
        now = self.clock()
        held = await self.store.heartbeat(self.instance, now=now,
                                          lease_until=self.lease_until(now), state=self.state)
        self._beat_at = time.monotonic()
        sdnotify.watchdog()
        if held.pop("revived", 0):
            self.log.error("instance.revived", silent_s=self.settings.lease,
                           hint="the others took this instance for dead and took its work "
                                "over; some of it may be done twice")
        self.metrics.set_states(self.metrics.leases_held, held, LEASE_KINDS)
        dead_before = now - timedelta(seconds=self.settings.lease)
        try:
            for dead in await self.store.reap_instances(now=now, dead_before=dead_before):
                self.log.warning("instance.reaped", dead=dead, silent_s=self.settings.lease,
                                 hint="its feeds, entries and deliveries are taken over")
            stats = await self.store.fleet_stats(dead_before)
        except StorageError as exc:
            self.log.warning("instance.reap_failed", error=str(exc), hint="tried again at "
                             "the next heartbeat")
            return
        self.metrics.set_states(self.metrics.deliveries, stats.deliveries, DELIVERY_STATES)
        self.metrics.nlp_queue_depth.set(stats.waiting_entries)
        self.metrics.instances_live.set(stats.live_instances)

    async def run(self) -> None:
        """Beat every ``fleet.heartbeat`` until cancelled; a failed beat is retried."""
        while True:
            started = time.monotonic()
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be back at the next beat
                self.log.error("instance.heartbeat_failed", error=str(exc),
                               hint=f"leases lapse after {self.settings.lease:g}s without one; "
                                    "no new work is claimed meanwhile")
            # Every ``heartbeat`` from start to start, however long reaping took.
            await asyncio.sleep(max(0.0, self.settings.heartbeat - (time.monotonic() - started)))

    async def leave(self) -> None:
        """Release every lease and mark the instance stopped (best effort)."""
        try:
            released = await self.store.retire_instance(self.instance, self.clock())
        except Exception as exc:  # the leases lapse on their own
            self.log.error("instance.leave_failed", error=str(exc),
                           hint=f"its leases lapse within {self.settings.lease:g}s")
            return
        self.log.info("instance.left", released=released)
