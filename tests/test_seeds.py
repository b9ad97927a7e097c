"""The embedded default: sample feeds, the rules' examples, the real reference article."""

from __future__ import annotations

from datetime import UTC, date, datetime

from conftest import REPO, shared_path

from ingest.inspect import Item, items_from_input, match_items, run_examples
from ingest.nlp.pipeline import Analyzer
from ingest.rules.load import RuleSet

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def matches_by_title(path: str, analyzer: Analyzer, ruleset: RuleSet) -> dict[str, set[str]]:
    data = (REPO / "seeds" / "feeds" / path).read_bytes()
    items = items_from_input(data, path, NOW)
    return {item.label: {m.rule_id for m in ms} for item, _, ms in
            match_items(items, analyzer, ruleset)}


def test_world_wire_only_the_missile_story_alerts(analyzer: Analyzer, ruleset: RuleSet) -> None:
    """In the RSS sample, exactly one story (the missile deployment) matches, and one rule."""
    found = {t: r for t, r in matches_by_title("world-wire.xml", analyzer, ruleset).items() if r}
    assert len(found) == 1
    assert list(found.values()) == [{"missile-deployment"}]


def test_defence_desk_only_the_call_alerts(analyzer: Analyzer, ruleset: RuleSet) -> None:
    """In the Atom sample, exactly one story (the ministers' call) matches, and one rule."""
    found = {t: r for t, r in matches_by_title("defence-desk.atom", analyzer, ruleset).items()
             if r}
    assert len(found) == 1
    assert list(found.values()) == [{"defence-minister-contact"}]


def test_sample_feeds_hold_enough_ordinary_stories(analyzer: Analyzer,
                                                   ruleset: RuleSet) -> None:
    """The samples carry at least a dozen stories that must not alert."""
    quiet = [t for path in ("world-wire.xml", "defence-desk.atom")
             for t, r in matches_by_title(path, analyzer, ruleset).items() if not r]
    assert len(quiet) >= 12


def test_shipped_rule_examples_pass(analyzer: Analyzer, ruleset: RuleSet) -> None:
    """Every `examples` entry of the shipped rules behaves as written."""
    results = run_examples(ruleset, analyzer, date(2026, 11, 25))
    assert results and [r for r in results if not r.ok] == []


def test_reference_article_fires_both_rules(analyzer: Analyzer, ruleset: RuleSet) -> None:
    """The real article in ../shared/seeds fires the missile and the defence-minister rules."""
    path = shared_path("seeds", "austin-belousov-call-2024-07-12.txt")
    item = Item("reference", path.read_text(encoding="utf-8"), date(2024, 7, 12))
    [(_, _, matches)] = list(match_items([item], analyzer, ruleset))
    assert {m.rule_id for m in matches} == {"missile-deployment", "defence-minister-contact"}
