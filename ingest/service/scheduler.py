"""The daemon: an APScheduler job runs a cycle every tick until a signal stops it.

SIGHUP reloads the rules and the gazetteer (a broken file is reported and the rules
in force stay).  SIGTERM/SIGINT stop claiming new work; the cycle in flight gets ``grace_s`` to
finish, then is cancelled.  Cancelling is safe: an entry is marked processed in the
same transaction as its alerts, and a delivery is marked done only after the
receiver accepted it, so anything interrupted is simply done again next time.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ingest.errors import IngestError
from ingest.service.app import App, load_rule_files

log = structlog.get_logger("ingest.scheduler")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Daemon:
    def __init__(self, app: App, grace_s: float = 20.0) -> None:
        self.app = app
        self.grace_s = grace_s
        self.stop = asyncio.Event()
        self._current: asyncio.Task[object] | None = None
        self._reloads: set[asyncio.Task[bool]] = set()

    async def _cycle_job(self) -> None:
        if self.stop.is_set():
            return
        self._current = asyncio.current_task()
        try:
            await self.app.run_cycle()
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad cycle must never stop the daemon
            log.exception("cycle.crashed")
        finally:
            self._current = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        scheduler.add_job(self._cycle_job, "interval", seconds=self.app.settings.polling.tick,
                          id="cycle", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(scheduler.timezone), misfire_grace_time=None)
        scheduler.start()
        log.info("daemon.running", tick_s=self.app.settings.polling.tick)
        try:
            await self.stop.wait()
        finally:
            # Stop new cycles first, let the one in flight finish (or cancel it after the
            # grace period), and only then shut the scheduler down: its shutdown cancels
            # running jobs at once.
            scheduler.pause()
            await self._drain()
            scheduler.shutdown(wait=False)
            for sig in (*STOP_SIGNALS, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("daemon.stopped")

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("daemon.stopping", signal=sig.name)
        self.stop.set()

    def _request_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Reload rules and gazetteer; on any error keep the rules in force and say why."""
        try:
            gaz, rules = await asyncio.to_thread(load_rule_files, self.app.settings)
        except IngestError as exc:
            log.error("rules.reload_failed", error=str(exc), kept=len(self.app.rules))
            return False
        self.app.apply_rules(gaz, rules)
        return True

    async def _drain(self) -> None:
        task = self._current
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=self.grace_s)
        if not done:
            log.warning("daemon.cancel_inflight", grace_s=self.grace_s)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
