"""Wiring: the running service's parts, built from a Settings object, and one cycle.

Build order is chosen so that nothing is half-started: user files (rules,
gazetteer) are validated first, then the NLP model is loaded, then the database
is opened.  Any failure before the end closes what was opened.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
import structlog

from ingest.config import Settings
from ingest.errors import RuleError, StorageError
from ingest.fetch.client import Fetcher, make_http_client
from ingest.fetch.hosts import host_key
from ingest.model import Alert, Feed, FeedState
from ingest.nlp.gazetteer import Gazetteer, load_gazetteer
from ingest.nlp.pipeline import Analyzer, NlpFeatures, features_needed, load_model
from ingest.notify.base import ChannelContext, Notifier, delivery_client
from ingest.notify.registry import build_notifier
from ingest.rules.load import RuleSet, channel_problems, load_rules
from ingest.service.deliver import Dispatcher
from ingest.service.fleet import Membership, SqliteGuard, new_instance_id
from ingest.service.health import NoticeSender, log_notice
from ingest.service.metrics import Metrics
from ingest.service.pool import ProcessRunner
from ingest.service.process import process_entries
from ingest.service.refresh import Poller, RefreshOutcome
from ingest.service.workers import Runner, ThreadRunner, default_workers
from ingest.store.base import AlertChange, Store, StoredEntry
from ingest.store.sql import open_store

log = structlog.get_logger("ingest.app")

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
PRUNE_EVERY = timedelta(hours=1)
RECORD_BATCH = 200  # feeds' rows written per transaction during a poll…
RECORD_EVERY_S = 2.0  # …and at least this often (what a crash can make an instance redo)
# Entries claimed for processing at a time: enough for a few NLP batches, small enough
# that the instances of a fleet share a backlog.
PROCESS_CLAIM = 128
FORCE_LIMIT = 1_000_000  # ``poll(force=True)`` claims every enabled feed in one go


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class CycleReport:
    """What one cycle did, for the CLI and tests."""

    polled: int = 0
    not_modified: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    new_entries: int = 0
    processed: int = 0
    alerts: list[Alert] = field(default_factory=list)  # new alerts (sent, or silenced)
    updates: int = 0  # matches that added a source to an existing story's alert
    suppressed: int = 0  # matches held back by a threshold or dedupe window
    delivered: int = 0
    failed_deliveries: int = 0
    process_failed: bool = False  # entries were left unprocessed by an error


def load_rule_files(settings: Settings) -> tuple[Gazetteer, RuleSet]:
    """The gazetteer and the rule set named by the settings (raises RuleError)."""
    gaz = load_gazetteer(settings.gazetteer_path)
    rules = load_rules([settings.rules_dir], gaz)
    problems = channel_problems(rules, settings.channels, settings.source)
    if problems:
        raise RuleError(problems)
    return gaz, rules


async def _settle_outbox(store: Store, settings: Settings, now: datetime) -> None:
    """At start: redo what a stopped process left mid-send (when no other instance can
    be sending it), and give up deliveries to channels no longer configured."""
    if store.single_instance:
        interrupted = await store.recover_interrupted(now)
        if interrupted:
            log.warning("delivery.recovered", deliveries=interrupted,
                        hint="sent again now; receivers drop duplicates by Idempotency-Key")
    abandoned = await store.abandon_channels(list(settings.channels), now)
    if abandoned:
        log.warning("delivery.abandoned", deliveries=abandoned,
                    hint="their channels are not configured; see `ingest alerts list "
                         "--state dead`")


async def _start_runner(settings: Settings, gaz: Gazetteer, features: NlpFeatures,
                        analyzer: Analyzer | None) -> Runner:
    """Worker processes (``nlp.workers``, default one per core) with the model loaded in
    one of them, or, with ``nlp.workers: 0`` or a given analyzer, a thread here."""
    workers = settings.nlp.workers
    if analyzer is None and workers != 0:
        pool = ProcessRunner(workers or default_workers(), settings.nlp.model, gaz, features,
                             settings.nlp.batch_size)
        try:
            await pool.start()
        except BaseException:
            pool.close()
            raise
        return pool
    if analyzer is None:
        nlp = await asyncio.to_thread(load_model, settings.nlp.model, features)
        return ThreadRunner(Analyzer(nlp, gaz, settings.nlp.batch_size, features))
    return ThreadRunner(Analyzer(analyzer.nlp, gaz, settings.nlp.batch_size, features))


class App:
    """The service's parts.  Use ``await App.start(settings)`` and ``await app.close()``."""

    def __init__(self, settings: Settings, store: Store, runner: Runner, rules: RuleSet,
                 fetch_http: httpx.AsyncClient, send_http: aiohttp.ClientSession,
                 notifiers: dict[str, Notifier], clock: Callable[[], datetime],
                 feed_headers: dict[str, tuple[tuple[str, str], ...]] | None = None, *,
                 membership: Membership, guard: SqliteGuard | None = None) -> None:
        self.settings = settings
        self.membership = membership
        self.instance = membership.instance
        self.metrics = membership.metrics
        self._guard = guard
        self._heartbeat = asyncio.create_task(membership.run())
        self.store = store
        self.runner = runner
        self.rules = rules
        self.fetcher = Fetcher(fetch_http, settings.polling)
        self.poller = Poller(self.fetcher, store, runner, settings, clock, feed_headers or {})
        self.notices = NoticeSender(store, notifiers)
        self._fetch_http, self._send_http = fetch_http, send_http
        self.notifiers = notifiers
        self.clock = clock
        self.dispatcher = Dispatcher(settings, notifiers, store, clock, self.instance,
                                     self.metrics, self._may_claim)
        self._pruned_at: datetime | None = None

    @classmethod
    async def start(cls, settings: Settings, *, analyzer: Analyzer | None = None,
                    clock: Callable[[], datetime] = utc_now, instance: str | None = None,
                    metrics: Metrics | None = None, guard: SqliteGuard | None = None) -> App:
        """Build and start the service; ``guard``: the SQLite instance lock, when the
        caller took it already (``ingest run`` does, before binding its port)."""
        gaz, rules = load_rule_files(settings)
        feeds = settings.all_feeds()
        if not settings.channels:
            log.warning("config.no_channels", config=settings.source,
                        hint="alerts are stored but not delivered; add a channel under channels:")
        if not feeds:
            log.warning("config.no_feeds", config=settings.source,
                        hint="add feeds under feeds: or feed_files: (YAML or OPML)")
        store = open_store(settings.database_url)
        # One instance per SQLite file: refuse a second before loading anything heavy.
        if guard is None and store.sqlite_path is not None:
            guard = SqliteGuard(store.sqlite_path)
        try:
            if guard is not None:
                guard.acquire()
            runner = await _start_runner(settings, gaz, features_needed(rules.rules), analyzer)
        except BaseException:
            if guard is not None:
                guard.release()
            await store.close()
            raise
        fetch_http = make_http_client(settings.polling)
        send_http = delivery_client(settings.polling.user_agent)
        instance = instance or new_instance_id()
        metrics = metrics or Metrics(instance)
        metrics.add_channels(settings.channels)
        membership = Membership(store, settings.fleet, clock, metrics, instance)
        try:
            await store.init()
            await store.sync_feeds(feeds, clock())
            ctx = ChannelContext(send_http, settings.delivery.timeout)
            notifiers = {name: build_notifier(name, ch, ctx)
                         for name, ch in settings.channels.items()}
            await _settle_outbox(store, settings, clock())
            await membership.join()
        except BaseException:
            runner.close()
            await fetch_http.aclose()
            await send_http.close()
            await store.close()
            if guard is not None:
                guard.release()
            raise
        log.info("app.started", feeds=len(feeds), rules=len(rules), instance=instance,
                 channels=list(settings.channels), database=store.where)
        return cls(settings, store, runner, rules, fetch_http, send_http, notifiers, clock,
                   {f.id: f.headers for f in feeds if f.headers}, membership=membership,
                   guard=guard)

    async def apply_settings(self, settings: Settings, feeds: list[Feed]) -> None:
        """Put reloaded settings and feeds in force (from the next poll and batch); the
        restart-only settings must be the ones in force (see service/reconfig.py)."""
        await self.store.sync_feeds(feeds, self.clock())
        self.settings = settings
        self.poller = Poller(self.fetcher, self.store, self.runner, settings, self.clock,
                             {f.id: f.headers for f in feeds if f.headers})

    def apply_rules(self, gaz: Gazetteer, rules: RuleSet) -> None:
        """Put a freshly loaded gazetteer and rule set in force (from the next batch on),
        running only the NLP components the new rules need."""
        self.runner.configure(gaz, features_needed(rules.rules))
        self.rules = rules
        log.info("rules.reloaded", rules=len(rules), entities=len(gaz.entities))

    async def _prune_now_and_then(self) -> None:
        """Forget old entries' text and analysis (``retention``), at most once an hour."""
        now = self.clock()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            pruned = await self.store.prune(now - timedelta(seconds=self.settings.retention))
        except StorageError:
            log.exception("prune.failed")
            return
        if pruned:
            log.info("entries.pruned", entries=pruned, retention_s=self.settings.retention)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Leave the fleet (every lease released) and close every part, within about
        ``timeout_s`` even when the database does not answer (leases then lapse)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._heartbeat.cancel()
        await asyncio.wait({self._heartbeat}, timeout=timeout_s / 3)
        try:
            async with asyncio.timeout_at(max(deadline - timeout_s / 3, loop.time() + 0.1)):
                await self.membership.leave()
        except TimeoutError:
            log.error("instance.leave_failed", error=f"no answer in {timeout_s:g}s",
                      hint=f"its leases lapse within {self.settings.fleet.lease:g}s")
        try:
            for notifier in self.notifiers.values():
                try:
                    await notifier.aclose()
                except Exception:
                    log.exception("channel.close_failed", channel=notifier.name)
            await self._fetch_http.aclose()
            await self._send_http.close()
        finally:
            self.runner.close()
            try:
                async with asyncio.timeout_at(max(deadline, loop.time() + 0.1)):
                    await self.store.close()
            except TimeoutError:
                log.error("database.close_timeout", timeout_s=timeout_s)
            finally:
                if self._guard is not None:
                    self._guard.release()

    async def poll(self, *, force: bool = False,
                   stop: asyncio.Event | None = None) -> CycleReport:
        """Poll due feeds (every enabled feed when ``force``) and store their new entries:
        fetch, parse, dedup, store; no NLP, rules or delivery.

        Feeds are claimed in chunks as polls finish (a lease each, so that no other
        instance polls them meanwhile), at most ``2 × polling.concurrency`` in hand;
        ``force`` claims every enabled feed at once instead (each polled once, at most
        ``2 × polling.concurrency`` at a time).  ``stop`` ends the claiming; the polls in
        hand finish.
        Feeds' rows (and their health notices, in the same transaction) are written in
        batches as polls finish (200 rows, or every 2 s), which also ends their leases, so
        a 304 costs no transaction of its own; a crash loses only unwritten rows, and those
        feeds are simply polled again once their leases lapse.
        """
        report = CycleReport()
        pending: list[RefreshOutcome] = []
        store_failed = False
        flushed_at = time.monotonic()

        async def flush() -> None:
            nonlocal store_failed, flushed_at
            batch = pending[:]
            pending.clear()
            flushed_at = time.monotonic()
            try:
                fenced = await self.store.record_polls([o.record for o in batch],
                                                       [o.notice for o in batch if o.notice],
                                                       holder=self.instance)
            except StorageError:
                pending.extend(batch)  # tried once more at the end of the poll
                store_failed = True
                raise
            if fenced:
                log.warning("poll.records_fenced", feeds=sorted(fenced), hint="another "
                            "instance took them over (or a reload changed them) meanwhile")
            for outcome in batch:
                if outcome.notice is not None and outcome.feed_id not in fenced:
                    log_notice(outcome.notice)

        async def one(feed: Feed, state: FeedState) -> None:
            outcome = await self.poller.refresh(feed, state)
            report.polled += 1
            report.new_entries += len(outcome.new_entries)
            self._count_poll(outcome)
            if outcome.status == "not-modified":
                report.not_modified += 1
            elif outcome.status == "error" and outcome.error:
                report.errors[outcome.feed_id] = outcome.error
            pending.append(outcome)
            if not store_failed and (len(pending) >= RECORD_BATCH
                                     or time.monotonic() - flushed_at >= RECORD_EVERY_S):
                await flush()

        async def guarded(feed: Feed, state: FeedState) -> None:
            try:
                async with gate:
                    await one(feed, state)
            except Exception as exc:  # e.g. the database failed while recording
                log.error("poll.record_failed", feed_id=feed.id, error=repr(exc))
                report.errors[feed.id] = f"{type(exc).__name__}: {exc}"

        # The fetcher limits requests in flight (overall and per host); ``cap`` bounds
        # the documents held in memory at once and what this instance takes from the
        # fleet's queue.  Each chunk is interleaved by host, so that many feeds on one
        # host do not take every place while they wait for that host.
        cap = self.settings.polling.concurrency * 2
        gate = asyncio.Semaphore(cap)
        running: set[asyncio.Task[None]] = set()
        exhausted = False
        try:
            while True:
                room = cap - len(running)
                if not exhausted and (room >= cap // 2 or not running):
                    if stop is not None and stop.is_set():
                        exhausted = True
                    else:
                        limit = FORCE_LIMIT if force else room
                        claimed = await self._claim_feeds(limit, force)
                        exhausted = force or len(claimed) < limit
                        running.update(asyncio.ensure_future(guarded(f, s))
                                       for f, s in by_host(claimed))
                if not running:
                    break
                _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in running:  # cancelled from outside: stop what is in hand
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await asyncio.shield(self._end_poll(flush))
        log.info("poll.done", polled=report.polled, not_modified=report.not_modified,
                 errors=len(report.errors), new_entries=report.new_entries)
        return report

    async def _claim_feeds(self, limit: int, force: bool) -> list[tuple[Feed, FeedState]]:
        if not self._may_claim():
            return []
        now = self.clock()
        return await self.store.claim_feeds(
            now=now, due_by=FAR_FUTURE if force else now, limit=limit, instance=self.instance,
            lease_until=self.membership.lease_until(now))

    async def _end_poll(self, flush: Callable[[], Awaitable[None]]) -> None:
        """Write the rows not yet written, then free the feeds still held (polls cut
        short): they are due again at once, for any instance."""
        try:
            await flush()
        finally:
            try:
                await self.store.release_leases(self.instance, feeds=True)
            except StorageError as exc:
                log.error("poll.release_failed", error=str(exc),
                          hint=f"the leases lapse within {self.settings.fleet.lease:g}s")

    def _may_claim(self) -> bool:
        """No new work while heartbeats fail: the others may be about to take this
        instance for dead, and what it claimed would be done twice."""
        if self.membership.current():
            return True
        log.warning("claims.paused", hint="the last heartbeat is too old; claiming resumes "
                    "once one succeeds")
        return False

    def _count_poll(self, outcome: RefreshOutcome) -> None:
        kind = {"not-modified": "not_modified", "error": "error"}.get(outcome.status, "ok")
        self.metrics.feeds_polled.labels(kind).inc()
        if outcome.fetch_s is not None:
            self.metrics.fetch_duration.observe(outcome.fetch_s)
        if outcome.new_entries:
            self.metrics.entries_ingested.inc(len(outcome.new_entries))

    async def send_notices(self) -> int:
        """Send due feed notices to the health channel (retried with backoff)."""
        return await self.notices.send_due(self.clock())

    async def process_pending(self, report: CycleReport | None = None, *,
                              stop: asyncio.Event | None = None) -> CycleReport:
        """Analyse, match and record stored entries not yet processed (until ``stop``),
        claiming them in chunks so that each is processed by one instance."""
        report = report or CycleReport()
        try:
            while not (stop and stop.is_set()) and (batch := await self._claim_entries()):
                started = time.monotonic()
                # One rule set and gazetteer for the whole batch, whatever reloads do.
                changes = await process_entries(
                    batch, runner=self.runner, rules=self.rules, store=self.store,
                    settings=self.settings, clock=self.clock, gaz=self.runner.gaz)
                self._count_processed(len(batch), changes, time.monotonic() - started)
                if self.dispatcher.running and any(c.notify for c in changes):
                    self.dispatcher.wake()  # new alerts go out now, not after the cycle
                report.alerts += [c.alert for c in changes
                                  if c.alert is not None and c.state in ("new", "silenced")]
                report.updates += sum(c.state == "update" for c in changes)
                report.suppressed += sum(c.state in ("below-threshold", "deduped")
                                         for c in changes)
                report.processed += len(batch)
        except Exception:  # the entries stay unprocessed; alerts already made still go out
            log.exception("process.failed")
            report.process_failed = True
        finally:  # entries claimed but not processed (a failure, a stop) are free at once
            try:
                await asyncio.shield(self.store.release_leases(self.instance, entries=True))
            except StorageError as exc:
                log.error("process.release_failed", error=str(exc))
        return report

    async def _claim_entries(self) -> list[StoredEntry]:
        if not self._may_claim():
            return []
        now = self.clock()
        return await self.store.claim_entries(
            now=now, limit=max(PROCESS_CLAIM, self.settings.nlp.batch_size), instance=self.instance,
            lease_until=self.membership.lease_until(now))

    def _count_processed(self, entries: int, changes: list[AlertChange], seconds: float) -> None:
        self.metrics.entries_processed.inc(entries)
        self.metrics.nlp_batch_duration.observe(seconds)
        for change in changes:
            self.metrics.rule_matches.labels(change.rule_id, change.state).inc()
            if change.state in ("new", "update", "silenced"):
                self.metrics.alerts.labels(change.state).inc()

    async def run_cycle(self, *, force: bool = False) -> CycleReport:
        """Poll due feeds (every enabled feed when ``force``), process, deliver: one pass,
        for ``ingest run --once`` and tests (the daemon runs these parts side by side)."""
        report = await self.process_pending(await self.poll(force=force))
        await self.send_notices()
        return await self.finish(report, drain=not self.dispatcher.running)

    async def finish(self, report: CycleReport, *, drain: bool = False) -> CycleReport:
        """After processing: prune now and then, hand alerts to delivery (``drain``: send
        them here and now, when no daemon's workers do), log the cycle."""
        await self._prune_now_and_then()
        if drain:
            report.delivered, report.failed_deliveries = await self.dispatcher.drain()
        elif self.dispatcher.running:  # the daemon's workers send; tell them there is work
            self.dispatcher.wake()
        log.info("cycle.done", polled=report.polled, errors=len(report.errors),
                 new_entries=report.new_entries, processed=report.processed,
                 alerts=len(report.alerts),
                 delivered=report.delivered, failed=report.failed_deliveries)
        return report


def by_host(due: list[tuple[Feed, FeedState]]) -> list[tuple[Feed, FeedState]]:
    """Due feeds interleaved by host (round robin), each host's in their own order."""
    queues: dict[str, list[tuple[Feed, FeedState]]] = {}
    for item in due:
        try:
            host = host_key(httpx.URL(item[1].url))
        except httpx.InvalidURL:  # a local path httpx cannot read: no host to spare
            host = ""
        queues.setdefault(host, []).append(item)
    return [item for rank in itertools.zip_longest(*queues.values()) for item in rank
            if item is not None]
