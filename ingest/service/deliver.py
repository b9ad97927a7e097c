"""Delivering pending alerts to their channels and recording each outcome."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from datetime import datetime

import structlog

from ingest.errors import DeliveryError
from ingest.notify.base import Notifier
from ingest.notify.retry import retry_at
from ingest.store.base import PendingDelivery, Store

log = structlog.get_logger("ingest.deliver")


async def deliver_pending(store: Store, notifiers: Mapping[str, Notifier], *, max_attempts: int,
                          clock: Callable[[], datetime], limit: int = 500) -> tuple[int, int]:
    """Attempt every pending delivery once; return (delivered, failed)."""
    pending = await store.pending_deliveries(max_attempts, limit, now=clock())
    results = await asyncio.gather(*(_deliver_one(store, notifiers, d, max_attempts, clock)
                                     for d in pending), return_exceptions=True)
    for d, result in zip(pending, results, strict=True):
        if isinstance(result, BaseException):  # recording the outcome failed: retried later
            log.error("delivery.unrecorded", alert_id=d.alert.id, channel=d.channel,
                      error=repr(result))
    delivered = sum(1 for r in results if r is True)
    return delivered, len(results) - delivered


async def _deliver_one(store: Store, notifiers: Mapping[str, Notifier], d: PendingDelivery,
                       max_attempts: int, clock: Callable[[], datetime]) -> bool:
    dlog = log.bind(alert_id=d.alert.id, rule_id=d.alert.rule_id, channel=d.channel,
                    attempt=d.attempts + 1)
    notifier = notifiers.get(d.channel)
    if notifier is None:
        await store.record_delivery(d.id, ok=False, now=clock(), dead=True,
                                    detail=f"channel {d.channel!r} is no longer configured")
        dlog.error("delivery.dead", error="channel not configured")
        return False
    try:
        receipt = await notifier.send(d.alert)
    except DeliveryError as exc:
        dead = exc.permanent or d.attempts + 1 >= max_attempts
        now = clock()
        wait = retry_at(now, d.attempts + 1, retry_after_s=exc.retry_after_s,
                        jitter=random.random())
        await store.record_delivery(d.id, ok=False, detail=str(exc), now=now, dead=dead,
                                    retry_at=wait)
        dlog.warning("delivery.failed", error=str(exc), dead=dead)
        return False
    except Exception as exc:  # a channel bug must not lose the alert or stop the others
        now = clock()
        await store.record_delivery(d.id, ok=False, now=now, dead=d.attempts + 1 >= max_attempts,
                                    detail=f"unexpected {type(exc).__name__}: {exc}",
                                    retry_at=retry_at(now, d.attempts + 1,
                                                      jitter=random.random()))
        dlog.exception("delivery.crashed")
        return False
    await store.record_delivery(d.id, ok=True, detail=receipt, now=clock())
    dlog.info("delivery.done", receipt=receipt)
    return True
