"""The daemon: an APScheduler job polls due feeds every tick until a signal stops it.

Polling never waits on NLP: the ``cycle`` job only fetches, parses and stores, then
wakes the processor task, which analyses, matches and records whatever is stored and
unprocessed (batch by batch, in the worker processes) while the next polls go on.

SIGTERM/SIGINT stop claiming new work (feeds, entries, deliveries); the polls, the
batch and the delivery batches in flight get ``shutdown_timeout`` (less a margin for
releasing leases) to finish, then are cancelled, and ``App.close`` releases every lease.
Cancelling is safe: an entry is marked processed in the same transaction as its alerts,
and a delivery is marked done only after the receiver accepted it, so anything
interrupted is simply done again, here next time or by another instance now.

Deliveries are sent by the dispatcher's per-channel workers (``service/deliver.py``),
woken when a cycle writes alerts, by the ``deliveries`` job every ``delivery.tick``
(retries coming due), and by each digest channel's own trigger.

Hot reload.  SIGHUP, and with ``watch`` any change to the rule files, the term lists
or the gazetteer (:mod:`ingest.service.watch`), asks for a reload; SIGHUP also reads the
config file again first (:meth:`Daemon.reload_config`, :mod:`ingest.service.reconfig`).
One reload task serves the requests: any number made while it works are served by one more reload
after it, never by two at once, and :meth:`Daemon.reload` holds a lock, so direct
callers cannot interleave either.  A reload reads and compiles every file off the
loop.  A broken file logs ``rules.reload_failed`` with ``file:line`` and the rules in
force stay; a good change is put in force (``rules.reloaded``); a reload that finds
nothing changed (a save without edits, the catch-up when watching starts) logs
``rules.unchanged`` and changes nothing.

Why a reload never drops or repeats an entry in flight (checked against
``App.run_cycle``, ``process_entries`` and the store): the cycle reads ``app.rules``
once per batch of stored entries and hands it to ``process_entries``, which uses
that one rule set for the whole batch; a reload only rebinds ``app.rules``, so the
batch in flight finishes with the rules it started with and the next batch gets the
new ones.  The store records a batch's outcomes (matches, alerts, deliveries) and
marks its entries processed in one transaction, under unique constraints, so each
entry is either done once, with the rules of its batch, or left unprocessed and done
by the next cycle.  One caveat: the gazetteer is not held per batch like the rules.
The analyzer reads ``analyzer.gaz`` for each document in its worker thread, so a
reload landing mid-batch can analyse the rest of that batch with the new gazetteer
and match it against rules compiled with the old one.  That can change what those
entries match, never whether they are processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import datetime
from pathlib import Path

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ingest.config import DEFAULTS_SOURCE, Settings, load_config
from ingest.errors import IngestError
from ingest.logs import configure_logging
from ingest.model import Feed
from ingest.service import sdnotify
from ingest.service.app import App, load_rule_files
from ingest.service.reconfig import plan_reload
from ingest.service.watch import targets_for
from ingest.service.watch import watch as watch_files

log = structlog.get_logger("ingest.scheduler")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
CLEANUP_S = 2.0  # after cancelling: how long clean-up may take before the stop goes on
CLOSE_S = 3.0  # then closing: leaving the fleet, closing the database (App.close)


def _read_config(path: Path) -> tuple[Settings, list[Feed]]:
    settings = load_config(path)
    return settings, settings.all_feeds()


class Daemon:
    def __init__(self, app: App, grace_s: float | None = None, *, watch: bool = True) -> None:
        self.app = app
        self._grace_s = grace_s
        self.watch = watch
        self.stop = asyncio.Event()
        self.running = False  # the scheduler runs and the daemon is not stopping (/readyz)
        self._current: asyncio.Task[object] | None = None
        self._processing: asyncio.Task[None] | None = None
        self._process_wanted = asyncio.Event()
        self._notices: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._reload_wanted = asyncio.Event()
        self._triggers: set[str] = set()

    @property
    def grace_s(self) -> float:
        """How long in-flight work may take after SIGTERM (``shutdown_timeout``), less a
        margin for releasing leases and closing."""
        total = self._grace_s if self._grace_s is not None else self.app.settings.shutdown_timeout
        return max(0.5 * total, total - CLEANUP_S - CLOSE_S)

    async def _cycle_job(self) -> None:
        if self.stop.is_set():
            return
        self._current = asyncio.current_task()
        try:
            report = await self.app.poll(stop=self.stop)
            if report.new_entries:
                self._process_wanted.set()
            if not self.stop.is_set() and (self._notices is None or self._notices.done()):
                # never holds up a poll; not started once stopping (the drain would miss it)
                self._notices = asyncio.create_task(self._send_notices())
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad cycle must never stop the daemon
            log.exception("cycle.crashed")
        finally:
            self._current = None

    async def _send_notices(self) -> None:
        try:
            await self.app.send_notices()
        except Exception:
            log.exception("notices.failed")

    async def _processor(self) -> None:
        """Process stored entries when polls bring some, and at least every tick (so an
        entry left by a failed pass is not left waiting for the next new one)."""
        tick = self.app.settings.polling.tick
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process_wanted.wait(), tick)
            self._process_wanted.clear()
            if self.stop.is_set():
                return
            try:
                report = await self.app.process_pending(stop=self.stop)
                if report.processed or report.process_failed:
                    await self.app.finish(report)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("process.crashed")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload, "SIGHUP")
        scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        scheduler.add_job(self._cycle_job, "interval", seconds=self.app.settings.polling.tick,
                          id="cycle", max_instances=1, coalesce=True,
                          next_run_time=datetime.now(scheduler.timezone), misfire_grace_time=None)
        dispatcher = self.app.dispatcher

        async def wake(channels: list[str] | None = None) -> None:  # a coroutine: run on
            dispatcher.wake(channels)  # the loop, not in APScheduler's thread pool

        scheduler.add_job(wake, "interval", seconds=self.app.settings.delivery.tick,
                          id="deliveries", coalesce=True, misfire_grace_time=None)
        for name, trigger in dispatcher.digest_triggers().items():
            scheduler.add_job(wake, trigger, args=[[name]], id=f"digest:{name}",
                              coalesce=True, misfire_grace_time=None)
        scheduler.start()
        sender = loop.create_task(dispatcher.run(self.stop))
        self._process_wanted.set()  # entries a previous run stored but did not process
        self._processing = loop.create_task(self._processor())
        reloader = loop.create_task(self._reloader())
        watcher = loop.create_task(self._watch()) if self.watch else None
        self.running = True
        log.info("daemon.running", tick_s=self.app.settings.polling.tick, watch=self.watch,
                 instance=self.app.instance)
        sdnotify.ready(f"polling {self.app.instance}")
        try:
            await self.stop.wait()
        finally:
            self.running = False
            self.app.membership.state = "stopping"
            sdnotify.stopping()
            # Stop new cycles and reloads first, let the cycle in flight finish (or cancel
            # it after the grace period), and only then shut the scheduler down: its
            # shutdown cancels running jobs at once.
            self.stop.set()  # also when cancelled: the watcher stops on it
            scheduler.pause()
            await self._stop_helpers(reloader, watcher)
            await self._drain(sender)
            scheduler.shutdown(wait=False)
            for sig in (*STOP_SIGNALS, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a late reload must not kill it
        log.info("daemon.stopped")

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("daemon.stopping", signal=sig.name)
        self.stop.set()

    def request_reload(self, trigger: str) -> None:
        """Ask for a reload; requests made before it starts are served by one reload."""
        self._triggers.add(trigger)
        self._reload_wanted.set()

    async def _reloader(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            asked, self._triggers = self._triggers, set()
            with structlog.contextvars.bound_contextvars(trigger=",".join(sorted(asked))):
                sdnotify.reloading()
                try:
                    if "SIGHUP" in asked:  # the config file too; file watching: rules only
                        await self.reload_config()
                    await self.reload()
                except Exception as exc:  # e.g. the database failed: the next one may work
                    log.exception("config.reload_failed", error=f"{type(exc).__name__}: {exc}",
                                  hint="what is in force stays; send SIGHUP again")
                finally:
                    sdnotify.ready()

    async def _watch(self) -> None:
        try:
            settings = self.app.settings
            await watch_files(targets_for(settings.rules_dir, settings.gazetteer_path),
                              lambda: self.request_reload("watch"), self.stop)
        except Exception:  # the daemon runs on without it: SIGHUP still reloads
            log.exception("rules.watch_failed", hint="edits are taken up on SIGHUP only")

    async def reload_config(self) -> bool:
        """Read the config file again and put in force what can change without a restart
        (feeds, routes, health, …; see service/reconfig.py).  A broken file changes
        nothing: the settings in force stay, and the problems are logged."""
        old = self.app.settings
        if old.source == DEFAULTS_SOURCE:
            log.info("config.unchanged", reason="no config file: running on the defaults")
            return True
        try:
            new, feeds = await asyncio.to_thread(_read_config, Path(old.source))
        except IngestError as exc:
            log.error("config.reload_failed", config=old.source, error=str(exc),
                      hint="the settings in force stay; fix the file and send SIGHUP again")
            return False
        plan = plan_reload(old, new)
        if plan.restart_needed:
            log.warning("config.restart_needed", config=old.source,
                        settings=list(plan.restart_needed),
                        hint="these take effect on restart; the rest is in force now")
        await self.app.apply_settings(plan.settings, feeds)
        if "log" in plan.changed:
            log_settings = plan.settings.log
            configure_logging(log_settings.level, log_settings.format, log_settings.modules)
        log.info("config.reloaded" if plan.changed else "config.unchanged", config=old.source,
                 changed=list(plan.changed), feeds=len(feeds))
        return True

    async def reload(self) -> bool:
        """Reload rules and gazetteer; on any error keep the rules in force and say why."""
        async with self._reload_lock:
            try:
                gaz, rules = await asyncio.to_thread(load_rule_files, self.app.settings)
            except IngestError as exc:
                log.error("rules.reload_failed", error=str(exc), kept=len(self.app.rules))
                return False
            except Exception as exc:  # e.g. a folder removed while it was read
                log.exception("rules.reload_failed", error=f"{type(exc).__name__}: {exc}",
                              kept=len(self.app.rules))
                return False
            if rules == self.app.rules and gaz == self.app.runner.gaz:
                log.info("rules.unchanged", rules=len(rules))
                return True
            self.app.apply_rules(gaz, rules)
            return True

    @staticmethod
    async def _stop_helpers(reloader: asyncio.Task[None],
                            watcher: asyncio.Task[None] | None) -> None:
        # A reload cut short changes nothing.  The watcher ends on ``stop`` within a
        # fraction of a second; cancelling it would wait for its thread all the same.
        reloader.cancel()
        helpers = {reloader}
        if watcher is not None:
            helpers.add(watcher)
            await asyncio.wait({watcher}, timeout=5)
            watcher.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)

    async def _drain(self, sender: asyncio.Task[None]) -> None:
        """Give the cycle in flight and the batches being sent ``grace_s`` to finish, then
        cancel them (cancelled sends are made due again at once, see deliver.py)."""
        self._process_wanted.set()  # the processor sees ``stop`` and ends after its batch
        tasks = {task for task in (self._current, self._processing, self._notices, sender)
                 if task is not None and not task.done()}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.grace_s)
        if pending:
            log.warning("daemon.cancel_inflight", grace_s=self.grace_s)
            for task in pending:
                task.cancel()
            # Their clean-up (writing what finished, releasing leases) gets a moment; a
            # database that does not answer must not hold the stop up (leases lapse).
            _, stuck = await asyncio.wait(pending, timeout=CLEANUP_S)
            if stuck:
                log.error("daemon.cleanup_timeout", tasks=len(stuck), timeout_s=CLEANUP_S)
