"""Processing stored entries: NLP off the loop, rules, alerts written before delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from ingest.config import Settings
from ingest.errors import StorageError
from ingest.model import Alert, Analysis
from ingest.nlp.runner import NlpRunner
from ingest.rules.alerts import make_alert
from ingest.rules.load import RuleSet
from ingest.rules.match import match_all
from ingest.store.base import Store, StoredEntry

log = structlog.get_logger("ingest.process")


async def process_entries(entries: Sequence[StoredEntry], *, runner: NlpRunner, rules: RuleSet,
                          store: Store, settings: Settings,
                          clock: Callable[[], datetime]) -> list[Alert]:
    """Analyse, match and record each entry; return the alerts that are new.

    A batch of entries is marked processed in the same transaction that stores their
    alerts, so a crash in between leaves them unprocessed and they are simply done again.
    When a batch fails, its entries are retried one by one; an entry that fails on its
    own is marked processed with the error on its row, so it cannot block the others.
    """
    created: list[Alert] = []
    size = settings.nlp.batch_size
    for i in range(0, len(entries), size):
        batch = list(entries[i:i + size])
        try:
            created += await _process_batch(batch, runner, rules, store, settings, clock)
        except (StorageError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("process.batch_failed", entries=len(batch))
            for stored in batch:
                created += await _process_alone(stored, runner, rules, store, settings, clock)
    return created


async def _process_alone(stored: StoredEntry, runner: NlpRunner, rules: RuleSet, store: Store,
                         settings: Settings, clock: Callable[[], datetime]) -> list[Alert]:
    try:
        return await _process_batch([stored], runner, rules, store, settings, clock)
    except (StorageError, asyncio.CancelledError):
        raise
    except Exception as exc:
        log.exception("entry.failed", entry_id=stored.id, feed_id=stored.entry.feed_id)
        await store.record_entry_error(stored.id, f"{type(exc).__name__}: {exc}", clock())
        return []


async def _process_batch(batch: list[StoredEntry], runner: NlpRunner, rules: RuleSet,
                         store: Store, settings: Settings,
                         clock: Callable[[], datetime]) -> list[Alert]:
    now = clock()
    texts = [s.entry.document(settings.nlp.max_chars) for s in batch]
    dates = [(s.entry.published or now).date() for s in batch]
    analyses = await runner.analyze(texts, dates)
    # Matching is pure CPU work too: keep it off the event loop.
    results = await asyncio.to_thread(decide, batch, analyses, rules, settings, now)
    new = await store.record_processed_batch(results, clock())
    for alert in new:
        log.info("alert.created", alert_id=alert.id, rule_id=alert.rule_id,
                 feed_id=alert.feed_id, entry_key=alert.entry_key, title=alert.entry_title,
                 channels=list(alert.channels))
    return new


def decide(batch: Sequence[StoredEntry], analyses: Sequence[Analysis], rules: RuleSet,
           settings: Settings, now: datetime) -> list[tuple[int, list[Alert]]]:
    """The alerts each analysed entry raises (pure)."""
    results = []
    for stored, analysis in zip(batch, analyses, strict=True):
        alerts = []
        for match in match_all(rules.rules, analysis, stored.entry.feed_id):
            rule = rules.get(match.rule_id)
            assert rule is not None
            channels = settings.channels_for(tuple(rule.spec.notify))
            alerts.append(make_alert(rule, match, stored.entry, now, channels))
        results.append((stored.id, alerts))
    return results
