"""From analysed entries to recordable outcomes (pure): fingerprints, stories, rule matches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ingest.config import Settings
from ingest.model import Analysis, Entry, RuleMatch
from ingest.nlp.language import detect
from ingest.nlp.serial import dump_analysis
from ingest.parse.dedup import canonical_url
from ingest.rules.alerts import make_alert
from ingest.rules.load import RuleSet
from ingest.rules.match import match_all
from ingest.rules.policy import MatchEvent, dedupe_key, entity_keys
from ingest.store.base import EntryOutcome, ProposedMatch, StoredEntry
from ingest.stories.cluster import StoryInput
from ingest.stories.minhash import Fingerprint, fingerprint


@dataclass(frozen=True)
class Prepared:
    """What is known about an entry before its story is: fingerprint, link, language."""

    stored: StoredEntry
    analysis: Analysis
    fingerprint: Fingerprint
    words: int
    link: str
    language: str | None
    matches: tuple[RuleMatch, ...] = ()  # its rule matches (they do not depend on its story)
    dumped: bytes = b""  # the compressed analysis, kept for backtests


def event_time(entry: Entry, fetched_at: datetime) -> datetime:
    """When an entry happened for windows: its publication, unless missing or later than
    it was fetched."""
    return min(entry.published, fetched_at) if entry.published else fetched_at


def prepare(batch: Sequence[StoredEntry], analyses: Sequence[Analysis], similarity: float,
            rules: RuleSet) -> list[Prepared]:
    """Everything that does not depend on the entries' stories: fingerprint, language, the
    rules' matches, the compressed analysis (so that little remains to do under the
    story lock)."""
    out = []
    for stored, analysis in zip(batch, analyses, strict=True):
        entry = stored.entry
        text = entry.document()
        language = detect(text) or entry.language
        matches = tuple(match_all(rules.candidates(analysis, entry.feed_id), analysis,
                                  entry.feed_id, language))
        out.append(Prepared(stored, analysis, fingerprint(text, similarity), len(text.split()),
                            canonical_url(entry.link) if entry.link else "", language,
                            matches, dump_analysis(analysis)))
    return out


def story_inputs(prepared: Sequence[Prepared]) -> list[StoryInput]:
    return [StoryInput(p.stored.id, p.link, p.fingerprint.signature, p.fingerprint.bands, p.words)
            for p in prepared]


def outcomes(prepared: Sequence[Prepared], stories: dict[int, int], rules: RuleSet,
             settings: Settings, now: datetime) -> list[EntryOutcome]:
    """Each entry's outcome: its story and the alerts its rule matches would raise."""
    out = []
    for p in prepared:
        stored, entry = p.stored, p.stored.entry
        story = stories.get(stored.id, stored.id)
        at = event_time(entry, stored.fetched_at or now)
        proposed = []
        for match in p.matches:
            rule = rules.get(match.rule_id)
            assert rule is not None
            key = dedupe_key(rule.spec, match, story, entry.feed_id)
            spec = rule.spec
            channels = settings.route(spec.id, spec.severity, tuple(spec.tags),
                                      tuple(spec.notify))
            alert = make_alert(rule, match, entry, now, channels, story, key)
            event = MatchEvent(rule.id, stored.id, story, entry.feed_id, at, key,
                               tuple(rule.spec.tags), entity_keys(match.entities))
            proposed.append(ProposedMatch(rule.spec, event, alert))
        out.append(EntryOutcome(stored.id, entry, story, p.fingerprint, p.link, p.language,
                                p.dumped, tuple(proposed)))
    return out
