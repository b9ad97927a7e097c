"""The daemon's lifecycle with a stand-in service: a stop waits for the cycle in flight."""

from __future__ import annotations

import asyncio
import os
import signal
from types import SimpleNamespace

from ingest.config import Settings
from ingest.service.app import utc_now
from ingest.service.deliver import Dispatcher
from ingest.service.scheduler import Daemon


class SlowService:
    """Stands in for App: one poll takes a second and records that it finished; the
    processing the daemon runs after polls counts its rounds."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(polling=SimpleNamespace(tick=60.0),
                                        delivery=SimpleNamespace(tick=60.0),
                                        shutdown_timeout=20.0)
        self.instance = "test:1:abc"
        self.membership = SimpleNamespace(state="running")
        # No channels: the real dispatcher has no worker and never touches a store.
        self.dispatcher = Dispatcher(Settings(), {}, None, utc_now)  # type: ignore[arg-type]
        self.started = asyncio.Event()
        self.finished = 0
        self.processed = 0

    async def poll(self, stop: asyncio.Event | None = None) -> SimpleNamespace:
        self.started.set()
        await asyncio.sleep(1.0)
        self.finished += 1
        return SimpleNamespace(new_entries=1)

    async def process_pending(self, *, stop: asyncio.Event) -> SimpleNamespace:
        self.processed += 1
        return SimpleNamespace(processed=0, process_failed=False)

    async def send_notices(self) -> int:
        return 0

    async def finish(self, report: SimpleNamespace) -> SimpleNamespace:
        return report


async def test_sigterm_lets_the_cycle_in_flight_finish() -> None:
    """SIGTERM during a cycle: the cycle completes within the grace period, then exit."""
    service = SlowService()
    daemon = Daemon(service, grace_s=10.0, watch=False)  # type: ignore[arg-type]
    running = asyncio.create_task(daemon.run())
    await asyncio.wait_for(service.started.wait(), 10)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(running, 20)
    assert service.finished == 1
    assert service.processed >= 1  # processing ran (at start; the stop may preempt the next)
    assert service.membership.state == "stopping"  # its next heartbeat would say so


async def test_grace_period_cancels_a_stuck_cycle() -> None:
    """A cycle longer than the grace period is cancelled, and the daemon still stops."""
    service = SlowService()
    daemon = Daemon(service, grace_s=0.1, watch=False)  # type: ignore[arg-type]
    running = asyncio.create_task(daemon.run())
    await asyncio.wait_for(service.started.wait(), 10)
    daemon.stop.set()
    await asyncio.wait_for(running, 20)
    assert service.finished == 0
