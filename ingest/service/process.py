"""Processing stored entries: NLP off the loop, rules, alerts written before delivery."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from ingest.config import Settings
from ingest.model import Alert
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
    """
    created: list[Alert] = []
    size = settings.nlp.batch_size
    for i in range(0, len(entries), size):
        batch = entries[i:i + size]
        now = clock()
        texts = [s.entry.document(settings.nlp.max_chars) for s in batch]
        dates = [(s.entry.published or now).date() for s in batch]
        analyses = await runner.analyze(texts, dates)
        results = []
        for stored, analysis in zip(batch, analyses, strict=True):
            alerts = []
            for match in match_all(rules.rules, analysis, stored.entry.feed_id):
                rule = rules.get(match.rule_id)
                assert rule is not None
                channels = settings.channels_for(tuple(rule.spec.notify))
                alerts.append(make_alert(rule, match, stored.entry, clock(), channels))
            results.append((stored.id, alerts))
        new = await store.record_processed_batch(results, clock())
        for alert in new:
            log.info("alert.created", alert_id=alert.id, rule_id=alert.rule_id,
                     feed_id=alert.feed_id, entry_key=alert.entry_key, title=alert.entry_title,
                     channels=list(alert.channels))
        created.extend(new)
    return created
