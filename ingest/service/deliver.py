"""The delivery loop: one worker per channel claims due outbox rows, sends, settles.

Each channel has its own worker, concurrency limit and rate limit, so a slow or dead
receiver only ever delays its own channel.  A worker claims a batch (the claim is a
lease, see :mod:`ingest.store.outbox`), sends it under its limits, and records every
outcome in one transaction.  Workers run when woken: by a new alert, by the
periodic ``deliveries`` job (retries coming due), or by a digest channel's schedule.
``drain`` runs them once to completion instead (``ingest run --once``, tests).
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiolimiter import AsyncLimiter
from apscheduler.triggers.base import BaseTrigger

from ingest.config import DeliverySettings, Settings
from ingest.errors import DeliveryError, StorageError
from ingest.notify.base import ChannelOptions, DigestNotifier, Notifier
from ingest.notify.digest import digest_trigger, previous_digest
from ingest.notify.retry import settle_failure
from ingest.service.fleet import new_instance_id
from ingest.service.metrics import Metrics
from ingest.store.base import DeliveryResult, PendingDelivery, Store

log = structlog.get_logger("ingest.deliver")

_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)
RECORD_EVERY_S = 0.05  # outcomes of a batch are written at least this often…
RECORD_AT_MOST = 64  # …and in groups of at most this many


class ChannelWorker:
    """Sends one channel's due deliveries under its concurrency and rate limits."""

    def __init__(self, name: str, notifier: Notifier, options: ChannelOptions,
                 defaults: DeliverySettings, store: Store, clock: Callable[[], datetime],
                 instance: str, metrics: Metrics | None = None,
                 may_claim: Callable[[], bool] | None = None) -> None:
        self.name = name
        self.metrics = metrics
        self.may_claim = may_claim or (lambda: True)
        self.notifier = notifier
        self.store = store
        self.clock = clock
        self.instance = instance
        self.max_attempts = options.max_attempts or defaults.max_attempts
        self.max_age_s = options.max_age if options.max_age is not None else defaults.max_age
        self.concurrency = options.concurrency
        self.limiter = AsyncLimiter(*options.rate_limit) if options.rate_limit else None
        spec = getattr(options, "digest", None)
        self.trigger: BaseTrigger | None = (
            digest_trigger(spec, getattr(options, "digest_timezone", "UTC")) if spec else None)
        self.timeout_s = defaults.timeout
        # Big batches keep ``concurrency`` sends in flight for long stretches; claiming is
        # cheap and the lease covers the batch, whatever its receivers do.
        self.batch = 500 if self.trigger else min(500, self.concurrency * 16)
        self.wake = asyncio.Event()
        self._gate = asyncio.Semaphore(self.concurrency)

    def _lease(self, count: int) -> timedelta:
        """How long a claim of ``count`` rows is held: every wave of sends may take the
        whole timeout (twice for SMTP), plus the rate limit's spacing, plus a margin."""
        waves = 1 if self.trigger else math.ceil(count / self.concurrency)
        limiter = self.limiter
        spacing = count * limiter.time_period / limiter.max_rate if limiter else 0.0
        return timedelta(seconds=(waves + 1) * 2 * self.timeout_s + spacing + 30)

    async def drain(self, stop: asyncio.Event | None = None) -> tuple[int, int]:
        """Send batches until nothing is due (or ``stop``); return (delivered, failed)."""
        delivered = failed = 0
        while (stop is None or not stop.is_set()) and self.may_claim():
            now = self.clock()
            held_after = (previous_digest(self.trigger, now) or _LONG_AGO
                          if self.trigger else None)
            token = f"{self.instance}:{uuid.uuid4().hex[:12]}"
            batch = await self.store.claim_deliveries(
                self.name, now=now, lease_until=now + self._lease(self.batch), token=token,
                limit=self.batch, max_attempts=self.max_attempts, held_after=held_after)
            if not batch:
                break
            try:
                if self.trigger:
                    results = await self._send_digest(batch, held_after)
                    await self.store.finish_deliveries(token, results, self.clock())
                else:
                    results = await self._send_batch(batch, token)
            except BaseException:  # a stop or a failed write mid-batch: unsettled rows are
                await self._release(token)  # due again now, not when the lease runs out
                raise
            self._count(results)
            ok = sum(r.state == "delivered" for r in results)
            delivered, failed = delivered + ok, failed + len(results) - ok
            self.log.info("delivery.batch", sent=len(results), delivered=ok,
                          failed=len(results) - ok)
        return delivered, failed

    @property
    def log(self) -> Any:
        """Bound at each use, so that a reload's log levels apply (a bound logger keeps the
        configuration it was made with)."""
        return log.bind(channel=self.name)

    def _count(self, results: Sequence[DeliveryResult]) -> None:
        if self.metrics is None:
            return
        for r in results:
            self.metrics.delivery_attempts.labels(self.name, r.state).inc()
            self.metrics.delivery_duration.labels(self.name).observe(
                max(0.0, (r.finished_at - r.started_at).total_seconds()))

    async def _release(self, token: str) -> None:
        try:
            await asyncio.shield(self.store.release_deliveries(token, self.clock()))
        except Exception as exc:  # the lease still brings them back, later
            self.log.error("delivery.release_failed", error=str(exc),
                           hint="the rows are sent again when their claim runs out")

    async def run(self, stop: asyncio.Event) -> None:
        """Drain whenever woken, until ``stop``; a failing database is retried later."""
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.drain(stop)
            except StorageError as exc:
                self.log.error("delivery.storage_failed", error=str(exc))
            except Exception:  # a worker must never die: the next wake tries again
                self.log.exception("delivery.worker_crashed")
            waiter = asyncio.ensure_future(self.wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()

    async def _send_batch(self, batch: Sequence[PendingDelivery],
                          token: str) -> list[DeliveryResult]:
        """Send a batch concurrently, recording outcomes as they come (every ``RECORD_EVERY_S``
        or ``RECORD_AT_MOST`` outcomes): a crash re-sends at most the sends in flight and
        the few not yet recorded, and the database sees a handful of writes a second."""
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(self._send(p)) for p in batch]
        results: list[DeliveryResult] = []
        unsaved: list[DeliveryResult] = []
        recorded_at = loop.time()
        try:
            for left, next_done in enumerate(asyncio.as_completed(tasks), 1 - len(tasks)):
                unsaved.append(await next_done)
                if (not left or len(unsaved) >= RECORD_AT_MOST  # ``left``: 0 at the last one
                        or loop.time() - recorded_at >= RECORD_EVERY_S):
                    await self.store.finish_deliveries(token, unsaved, self.clock())
                    results += unsaved
                    unsaved = []
                    recorded_at = loop.time()
        finally:
            for task in tasks:
                task.cancel()
        return results

    async def _send(self, p: PendingDelivery) -> DeliveryResult:
        async with self._gate:
            if self.limiter is not None:
                await self.limiter.acquire()
            started = self.clock()
            try:
                receipt = await self.notifier.send(p.alert)
            except Exception as exc:
                return self._failed([p], exc, started)[0]
        # Each success at debug (the row keeps its receipt); the batch is summed up at info.
        self.log.debug("delivery.done", alert_id=p.alert.id, rule_id=p.alert.rule_id,
                      attempt=p.attempts, receipt=receipt)
        return DeliveryResult(p.id, p.attempts, "delivered", receipt, started, self.clock())

    async def _send_digest(self, batch: Sequence[PendingDelivery],
                           fired_at: datetime | None) -> list[DeliveryResult]:
        started = self.clock()
        notifier = self.notifier
        try:
            if not isinstance(notifier, DigestNotifier):
                raise DeliveryError(self.name, "this channel type cannot send digests")
            if self.limiter is not None:
                await self.limiter.acquire()
            receipt = await notifier.send_digest([p.alert for p in batch])
        except Exception as exc:  # recorded on the rows, never lost
            # Held alerts age from the digest's time, not from when they were made.
            return self._failed(batch, exc, started, age_from=fired_at)
        self.log.info("delivery.digest_done", alerts=len(batch), receipt=receipt)
        finished = self.clock()
        return [DeliveryResult(p.id, p.attempts, "delivered", f"digest of {len(batch)}: "
                               f"{receipt}", started, finished) for p in batch]

    def _failed(self, batch: Sequence[PendingDelivery], exc: Exception, started: datetime,
                age_from: datetime | None = None) -> list[DeliveryResult]:
        now = self.clock()
        if isinstance(exc, DeliveryError):
            detail, permanent, wait = str(exc), exc.permanent, exc.retry_after_s
        else:  # a channel bug: retried like any failure, and logged with its traceback
            detail, permanent, wait = f"unexpected {type(exc).__name__}: {exc}", False, None
            self.log.error("delivery.crashed", error=detail, exc_info=exc)
        results = []
        for p in batch:
            born = max(p.created_at, age_from) if p.created_at and age_from else p.created_at
            state, when, why = settle_failure(
                attempts=p.attempts, created_at=born, now=now,
                max_attempts=self.max_attempts, max_age_s=self.max_age_s, permanent=permanent,
                retry_after_s=wait, jitter=random.random())
            if len(batch) == 1 or state == "dead":  # a digest's retry is logged once, below
                self.log.warning("delivery.failed", alert_id=p.alert.id,
                                 rule_id=p.alert.rule_id, attempt=p.attempts, error=detail,
                                 state=state, retry_at=when.isoformat() if when else None,
                                 why=why or None)
            results.append(DeliveryResult(p.id, p.attempts, state,
                                          f"{detail} [{why}]" if why else detail, started, now,
                                          when))
        if len(batch) > 1:
            self.log.warning("delivery.digest_failed", alerts=len(batch), error=detail,
                             dead=sum(r.state == "dead" for r in results))
        return results


class Dispatcher:
    """Every configured channel's worker, driven together."""

    def __init__(self, settings: Settings, notifiers: Mapping[str, Notifier], store: Store,
                 clock: Callable[[], datetime], instance: str | None = None,
                 metrics: Metrics | None = None,
                 may_claim: Callable[[], bool] | None = None) -> None:
        self.instance = instance or new_instance_id()
        self.workers = {name: ChannelWorker(name, notifiers[name], ch, settings.delivery, store,
                                            clock, self.instance, metrics, may_claim)
                        for name, ch in settings.channels.items() if name in notifiers}
        self.running = False

    def wake(self, channels: Iterable[str] | None = None) -> None:
        for name in self.workers if channels is None else channels:
            if name in self.workers:
                self.workers[name].wake.set()

    def digest_triggers(self) -> dict[str, BaseTrigger]:
        return {n: w.trigger for n, w in self.workers.items() if w.trigger is not None}

    async def drain(self) -> tuple[int, int]:
        """Every channel once, concurrently, until nothing is due; (delivered, failed)."""
        results = await asyncio.gather(*(w.drain() for w in self.workers.values()),
                                       return_exceptions=True)
        delivered = failed = 0
        for name, result in zip(self.workers, results, strict=True):
            if isinstance(result, BaseException):
                log.error("delivery.drain_failed", channel=name, error=repr(result))
                failed += 1
                continue
            delivered, failed = delivered + result[0], failed + result[1]
        return delivered, failed

    async def run(self, stop: asyncio.Event) -> None:
        """Run every worker until ``stop``; each finishes the batch it is sending."""
        self.running = True
        try:
            results = await asyncio.gather(*(w.run(stop) for w in self.workers.values()),
                                           return_exceptions=True)
        finally:
            self.running = False
        for name, result in zip(self.workers, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(
                    result, asyncio.CancelledError):
                log.error("delivery.worker_died", channel=name, error=repr(result))
