"""Replaying rules over stored entries (pure): what would have fired, per rule and day.

The same policy as the live service decides (stories, thresholds, dedupe), with its
history kept in memory instead of the database.  Silences are not applied: the
question is what the rules would have raised.  Nothing is sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from ingest.model import Analysis, Entry
from ingest.rules.compile import CompiledRule
from ingest.rules.match import match_all
from ingest.rules.policy import (
    AlertRef,
    History,
    MatchEvent,
    PriorMatch,
    decide,
    dedupe_key,
    entity_keys,
)


@dataclass(frozen=True)
class ReplayItem:
    entry_id: int
    entry: Entry
    story_id: int
    at: datetime
    analysis: Analysis
    language: str | None = None


@dataclass
class Fired:
    """An alert the rules would have raised, with the story's later copies folded in."""

    rule_id: str
    story_id: int
    at: datetime
    title: str
    link: str
    feeds: list[str] = field(default_factory=list)


@dataclass
class RuleReport:
    rule_id: str
    fired: list[Fired] = field(default_factory=list)
    matches: int = 0
    updates: int = 0
    suppressed: int = 0  # below threshold or deduped

    def per_day(self) -> dict[date, int]:
        days: dict[date, int] = defaultdict(int)
        for f in self.fired:
            days[f.at.date()] += 1
        return dict(sorted(days.items()))


@dataclass
class _Memory:
    story_alerts: dict[tuple[str, int], Fired] = field(default_factory=dict)
    matches: dict[str, list[tuple[datetime, PriorMatch]]] = field(default_factory=dict)
    keyed: dict[tuple[str, str], datetime] = field(default_factory=dict)


def replay(items: Iterable[ReplayItem], rules: Sequence[CompiledRule]) -> dict[str, RuleReport]:
    """Each rule's report over ``items`` (taken in time order)."""
    reports = {r.id: RuleReport(r.id) for r in rules}
    by_id = {r.id: r for r in rules}
    mem = _Memory()
    for item in sorted(items, key=lambda i: (i.at, i.entry_id)):
        feed = item.entry.feed_id
        for match in match_all(rules, item.analysis, feed, item.language):
            rule = by_id[match.rule_id]
            key = dedupe_key(rule.spec, match, item.story_id, feed)
            event = MatchEvent(rule.id, item.entry_id, item.story_id, feed, item.at, key,
                               tuple(rule.spec.tags), entity_keys(match.entities))
            decision = decide(rule.spec, event, _history(rule, event, mem), item.at)
            report = reports[rule.id]
            report.matches += 1
            mem.matches.setdefault(rule.id, []).append(
                (item.at, PriorMatch(item.entry_id, feed, item.story_id)))
            if decision.state == "update":
                report.updates += 1
                fired = mem.story_alerts[(rule.id, item.story_id)]
                if feed not in fired.feeds:
                    fired.feeds.append(feed)
            elif decision.state in ("below-threshold", "deduped"):
                report.suppressed += 1
            else:
                fired = Fired(rule.id, item.story_id, item.at, item.entry.title, item.entry.link,
                              [feed])
                report.fired.append(fired)
                mem.story_alerts[(rule.id, item.story_id)] = fired
                mem.keyed[(rule.id, key)] = item.at
    return reports


def _history(rule: CompiledRule, event: MatchEvent, mem: _Memory) -> History:
    fired = mem.story_alerts.get((rule.id, event.story_id))
    if fired is not None:
        return History(story_alert=AlertRef(f"{rule.id}/{event.story_id}", "fired"))
    window: tuple[PriorMatch, ...] = ()
    if rule.spec.threshold is not None:
        since = event.at - timedelta(seconds=rule.spec.threshold.window)
        window = tuple(p for at, p in mem.matches.get(rule.id, ()) if since <= at <= event.at)
    dedupe = None
    if rule.spec.dedupe is not None:
        last = mem.keyed.get((rule.id, event.dedupe_key))
        if last is not None and event.at - last <= timedelta(seconds=rule.spec.dedupe.window):
            dedupe = AlertRef(f"{rule.id}/{event.dedupe_key}", "fired")
    return History(None, window, dedupe)
