"""Running text through extraction and rules outside the daemon: ``match`` and ``rules test``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from ingest.errors import ParseError
from ingest.model import Analysis, Entry, RuleMatch
from ingest.nlp.language import detect
from ingest.nlp.pipeline import Analyzer
from ingest.parse.normalize import parse_document
from ingest.parse.text import normalise_space
from ingest.rules.compile import CompiledRule
from ingest.rules.load import RuleSet
from ingest.rules.match import match_all, match_rule
from ingest.rules.spec import Example


@dataclass(frozen=True)
class Item:
    """One thing to match: a feed entry or a plain text."""

    label: str
    text: str
    on: date
    feed_id: str = "-"


def items_from_input(data: bytes, name: str, now: datetime,
                     max_chars: int = 20_000) -> list[Item]:
    """A saved feed document gives one item per entry; anything else is one plain text.

    Texts are cut to ``max_chars``, as the service cuts entries before NLP.
    """
    head = data.lstrip()[:200].lower()
    if head.startswith(b"<"):
        try:
            parsed = parse_document(data, feed_id="-", url=name, now=now)
        except ParseError:
            parsed = None
        if parsed is not None and parsed.entries:
            return [_entry_item(e, i, now, max_chars) for i, e in enumerate(parsed.entries)]
    text = normalise_space(data.decode("utf-8", errors="replace"))[:max_chars]
    return [Item(name, text, now.date())]


def _entry_item(entry: Entry, index: int, now: datetime, max_chars: int) -> Item:
    return Item(entry.title or f"#{index}", entry.document(max_chars),
                (entry.published or now).date(), entry.feed_id)


def match_items(items: list[Item], analyzer: Analyzer,
                rules: RuleSet) -> Iterator[tuple[Item, Analysis, list[RuleMatch]]]:
    analyses = analyzer.analyze([i.text for i in items], [i.on for i in items])
    for item, analysis in zip(items, analyses, strict=True):
        yield item, analysis, match_all(rules.rules, analysis, item.feed_id, detect(item.text))


def match_json(item: Item, matches: list[RuleMatch]) -> str:
    """The ``--json`` line for one item."""
    return json.dumps({
        "item": item.label,
        "matches": [{
            "rule": m.rule_id,
            "entities": [{"text": e.text, "name": e.name, "label": e.label, "id": e.id,
                          "country": e.country, "roles": list(e.roles),
                          "start": e.start, "end": e.end} for e in m.entities],
            "terms": list(m.terms),
            "snippet": m.snippet,
        } for m in matches],
    }, ensure_ascii=False)


def describe_match(m: RuleMatch) -> list[str]:
    """Human-readable lines explaining a match."""
    lines = [f"  ✓ {m.rule_id}"]
    for e in m.entities:
        extra = ", ".join(x for x in (e.label, e.country, *e.roles) if x)
        lines.append(f"      entity  {e.text!r} → {e.name} ({extra})")
    if m.terms:
        lines.append(f"      terms   {', '.join(repr(t) for t in m.terms)}")
    lines.append(f"      snippet {m.snippet}")
    return lines


@dataclass(frozen=True)
class ExampleResult:
    rule_id: str
    expect_match: bool
    text: str
    matched: bool

    @property
    def ok(self) -> bool:
        return self.matched == self.expect_match


def run_examples(rules: RuleSet, analyzer: Analyzer, today: date) -> list[ExampleResult]:
    """Every rule's ``examples``, checked: match ones must fire, no_match ones must not."""
    cases: list[tuple[CompiledRule, bool, str, date]] = []
    for rule in rules.rules:
        ex = rule.spec.examples
        for expect, texts in ((True, ex.match), (False, ex.no_match)):
            for t in texts:
                text, on = (t.text, t.date) if isinstance(t, Example) else (t, None)
                cases.append((rule, expect, text, on or ex.date or today))
    analyses = analyzer.analyze([c[2] for c in cases], [c[3] for c in cases])
    return [ExampleResult(rule.id, expect, text, match_rule(rule, analysis, "-") is not None)
            for (rule, expect, text, _), analysis in zip(cases, analyses, strict=True)]
