"""What a rule match becomes (pure): a new alert, an update, or a recorded suppression.

The store reads the history a decision needs inside the transaction that records
it and calls :func:`decide`; the backtest keeps the same history in memory.  Order:

1. the story already has this rule's alert -> ``update`` (sent only with ``on_update: notify``);
2. ``threshold`` not yet reached in its window -> ``below-threshold``;
3. ``dedupe``: an alert with the same key within the window -> ``deduped``;
4. an active silence covers it -> ``silenced`` (an alert is recorded, never sent);
5. otherwise -> ``new``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ingest.model import Mention, RuleMatch
from ingest.nlp.gazetteer import fold
from ingest.rules.spec import RuleSpec

State = Literal["new", "update", "below-threshold", "deduped", "silenced"]


@dataclass(frozen=True)
class MatchEvent:
    """One rule's match on one entry, placed in time and in its story."""

    rule_id: str
    entry_id: int
    story_id: int
    feed_id: str
    at: datetime  # when the entry was published (or fetched, when earlier or unknown)
    dedupe_key: str
    tags: tuple[str, ...] = ()
    entity_keys: frozenset[str] = frozenset()  # ids and folded names of matched entities


@dataclass(frozen=True)
class AlertRef:
    id: str
    state: str  # fired | silenced
    revision: int = 0


@dataclass(frozen=True)
class PriorMatch:
    """An earlier recorded match of the same rule inside the threshold window."""

    entry_id: int
    feed_id: str
    story_id: int
    at: datetime | None = None  # None: known to be inside the window ending at the match


@dataclass(frozen=True)
class Silence:
    """Alerts matching every given field are recorded as silenced until ``expires_at``."""

    id: int
    rule_id: str | None
    tag: str | None
    entity: str | None
    reason: str
    created_at: datetime
    expires_at: datetime

    def covers(self, event: MatchEvent) -> bool:
        return ((self.rule_id is None or self.rule_id == event.rule_id)
                and (self.tag is None or self.tag in event.tags)
                and (self.entity is None or fold(self.entity) in event.entity_keys
                     or self.entity in event.entity_keys))

    def active(self, now: datetime) -> bool:
        return self.created_at <= now < self.expires_at


@dataclass(frozen=True)
class History:
    """What is already recorded that bears on one match."""

    story_alert: AlertRef | None = None
    window: tuple[PriorMatch, ...] = ()
    dedupe_alert: AlertRef | None = None
    silences: tuple[Silence, ...] = ()


@dataclass(frozen=True)
class Decision:
    state: State
    alert_id: str | None = None  # the alert updated, or the one that suppressed this match
    notify: bool = False
    silence_id: int | None = None


def decide(rule: RuleSpec, event: MatchEvent, history: History, now: datetime) -> Decision:
    """The fate of ``event`` given what is recorded (see the module docstring for the order)."""
    if history.story_alert is not None:
        ref = history.story_alert
        return Decision("update", ref.id,
                        notify=rule.on_update == "notify" and ref.state == "fired")
    if rule.threshold is not None and not threshold_met(rule, event, history.window):
        return Decision("below-threshold")
    if rule.dedupe is not None and history.dedupe_alert is not None:
        return Decision("deduped", history.dedupe_alert.id)
    for silence in history.silences:
        if silence.active(now) and silence.covers(event):
            return Decision("silenced", silence_id=silence.id)
    return Decision("new", notify=True)


def threshold_met(rule: RuleSpec, event: MatchEvent, window: Iterable[PriorMatch]) -> bool:
    """Whether the match and the earlier ones in the window reach the rule's threshold."""
    spec = rule.threshold
    if spec is None:
        return True
    prior = [p for p in window if p.entry_id != event.entry_id]
    span = timedelta(seconds=spec.window)
    # Any window of the rule's length holding the match will do, also one that reaches past
    # it: a slow feed's entry can be published before matches recorded earlier.
    times = [p.at for p in prior if p.at is not None]
    starts = {s for s in (event.at - span, event.at, *times, *(t - span for t in times))
              if event.at - span <= s <= event.at}
    return any(len(_distinct(spec.distinct, event, [
        p for p in prior if p.at is None or start <= p.at <= start + span])) >= spec.count
        for start in starts)


def _distinct(kind: str, event: MatchEvent, prior: Sequence[PriorMatch]) -> set[object]:
    if kind == "source":
        return {p.feed_id for p in prior} | {event.feed_id}
    if kind == "story":
        return {p.story_id for p in prior} | {event.story_id}
    return {p.entry_id for p in prior} | {event.entry_id}


def entity_keys(mentions: Sequence[Mention]) -> frozenset[str]:
    keys = set()
    for m in mentions:
        keys.add(fold(m.name))
        if m.id:
            keys.add(m.id)
    return frozenset(keys)


def dedupe_key(rule: RuleSpec, match: RuleMatch, story_id: int, feed_id: str) -> str:
    """The throttling key of a match: the rule's ``dedupe.key`` parts, resolved and joined.

    ``entity.role:defence-minister`` resolves to the sorted ids (or names) of the matched
    entities holding that role, so a different pair of ministers is a different key.
    """
    parts = rule.dedupe.key if rule.dedupe is not None else ["rule"]
    out = []
    for part in parts:
        head, _, value = part.partition(":")
        if head == "rule":
            out.append(f"rule={rule.id}")
        elif head == "story":
            out.append(f"story={story_id}")
        elif head in ("source", "feed"):
            out.append(f"source={feed_id}")
        else:
            attr = head.removeprefix("entity.")
            selected = [m for m in match.entities if _entity_has(m, attr, value)]
            if attr == "role":  # a title ("defence chiefs") adds no one its country's
                named = {m.country for m in selected if m.id and m.country}  # holder is not
                selected = [m for m in selected if m.id or m.country not in named]
            chosen = sorted({v for m in selected
                             if (v := _entity_value(m, "name" if attr in ("role", "label")
                                                    else attr))})
            out.append(f"{part}={','.join(chosen)}")
    return "|".join(out)


def _entity_has(m: Mention, attr: str, value: str) -> bool:
    if not value:
        return True
    if attr == "role":
        return value in m.roles
    if attr == "label":
        return m.label == value.upper()
    if attr == "country":
        return (m.country or "") == value.upper()
    if attr == "name":
        return fold(m.name) == fold(value) or m.id == value
    return (m.id or "") == value


def _entity_value(m: Mention, attr: str) -> str:
    if attr == "country":
        return m.country or ""
    if attr == "id":
        return m.id or fold(m.name)
    return m.id or fold(m.name)
