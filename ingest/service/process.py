"""Processing stored entries: NLP off the loop, stories, rules, alerts written before delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog

from ingest.config import Settings
from ingest.errors import StorageError
from ingest.model import Analysis
from ingest.nlp.gazetteer import Gazetteer
from ingest.rules.load import RuleSet
from ingest.service.outcome import event_time, outcomes, prepare, story_inputs
from ingest.service.workers import Runner
from ingest.store.base import AlertChange, Store, StoredEntry
from ingest.stories.cluster import assign_stories

log = structlog.get_logger("ingest.process")


async def process_entries(entries: Sequence[StoredEntry], *, runner: Runner, rules: RuleSet,
                          store: Store, settings: Settings, clock: Callable[[], datetime],
                          gaz: Gazetteer | None = None) -> list[AlertChange]:
    """Analyse, group into stories, match and record each entry; return what the matches did.

    A batch of entries is marked processed in the same transaction that stores their
    stories, matches and alerts, so a crash in between leaves them unprocessed and they
    are simply done again.  The batch keeps the rule set and gazetteer it started with
    (``rules``, ``gaz``), so a reload in the middle neither drops nor repeats an entry.
    When a batch fails, its entries are retried one by one; an entry that fails on its
    own is marked processed with the error on its row, so it cannot block the others.
    """
    changes: list[AlertChange] = []
    size = settings.nlp.batch_size
    # Oldest news first, so a story's alert is raised by its earliest copy at hand.
    now = clock()
    entries = sorted(entries, key=lambda s: (event_time(s.entry, s.fetched_at or now), s.id))
    batches = [list(entries[i:i + size]) for i in range(0, len(entries), size)]
    # NLP for every batch at once: the runner spreads them over its worker processes.
    # Stories, matching and recording then go batch by batch, in order.
    analysed = await asyncio.gather(*(_analyze(b, runner, settings, now, gaz) for b in batches),
                                    return_exceptions=True)
    for batch, analyses in zip(batches, analysed, strict=True):
        try:
            if isinstance(analyses, BaseException):  # this batch's NLP failed
                raise analyses
            changes += await _process_batch(batch, runner, rules, store, settings, clock, gaz,
                                            analyses)
        except (StorageError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("process.batch_failed", entries=len(batch))
            for stored in batch:
                changes += await _process_alone(stored, runner, rules, store, settings, clock,
                                                gaz)
    return changes


async def _process_alone(stored: StoredEntry, runner: Runner, rules: RuleSet, store: Store,
                         settings: Settings, clock: Callable[[], datetime],
                         gaz: Gazetteer | None) -> list[AlertChange]:
    try:
        return await _process_batch([stored], runner, rules, store, settings, clock, gaz)
    except (StorageError, asyncio.CancelledError):
        raise
    except Exception as exc:
        log.exception("entry.failed", entry_id=stored.id, feed_id=stored.entry.feed_id)
        await store.record_entry_error(stored.id, f"{type(exc).__name__}: {exc}", clock())
        return []


async def _analyze(batch: list[StoredEntry], runner: Runner, settings: Settings,
                   now: datetime, gaz: Gazetteer | None) -> list[Analysis]:
    texts = [s.entry.document(settings.nlp.max_chars) for s in batch]
    dates = [(s.entry.published or now).date() for s in batch]
    return await runner.analyze(texts, dates, gaz)


async def _process_batch(batch: list[StoredEntry], runner: Runner, rules: RuleSet,
                         store: Store, settings: Settings, clock: Callable[[], datetime],
                         gaz: Gazetteer | None,
                         analyses: list[Analysis] | None = None) -> list[AlertChange]:
    now = clock()
    if analyses is None:
        analyses = await _analyze(batch, runner, settings, now, gaz)
    truncated = {s.id: n for s in batch
                 if (n := len(s.entry.document())) > settings.nlp.max_chars}
    if truncated:  # rules saw only the start of these: say so where the operator looks
        log.info("entries.truncated", entries=sorted(truncated), max_chars=settings.nlp.max_chars)
        await store.record_truncation(truncated)
    # Fingerprints and matching are pure CPU work too: keep them off the event loop.
    prepared = await asyncio.to_thread(prepare, batch, analyses, settings.stories.similarity,
                                       rules)
    # Stories are assigned and recorded under a fleet-wide lock: two instances must not
    # each start a story (and raise an alert) for copies of the same news.
    async with store.story_lock():
        candidates = await store.story_candidates(
            [k for p in prepared for k in p.fingerprint.bands],
            [p.link for p in prepared if p.link], now - timedelta(seconds=settings.stories.window))
        stories = await asyncio.to_thread(assign_stories, story_inputs(prepared), candidates,
                                          settings.stories.similarity)
        results = await asyncio.to_thread(outcomes, prepared, stories, rules, settings, now)
        changes = await store.record_outcomes(results, clock())
    for change in changes:
        alert = change.alert
        log.info(f"alert.{change.state}", rule_id=change.rule_id, entry_id=change.entry_id,
                 alert_id=alert.id if alert else None,
                 story_id=alert.story_id if alert else None,
                 title=alert.entry_title if alert else None,
                 sources=len(alert.sources) if alert else None,
                 notify=change.notify, channels=list(alert.channels) if alert else [])
    return changes
