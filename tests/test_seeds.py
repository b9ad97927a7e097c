"""The embedded default: sample feeds, the rules' examples, the real reference article."""

from __future__ import annotations

from datetime import UTC, date, datetime
from itertools import combinations

import pytest
from conftest import REPO, shared_path

from ingest.config import StorySettings
from ingest.inspect import Item, items_from_input, match_items, run_examples
from ingest.nlp.pipeline import Analyzer
from ingest.parse.normalize import parse_document
from ingest.rules.load import RuleSet
from ingest.stories.minhash import fingerprint, similarity

NOW = datetime(2026, 11, 25, tzinfo=UTC)
FEEDS = ("world-wire.xml", "defence-desk.atom")

# Each sample story, by title, and the exact set of rules it must fire (empty: it must
# fire nothing).  The quiet stories are near misses of one or more rules, named in the
# comment.  This table is what `ingest demo` shows: keep it in step with seeds/feeds/.
WORLD_WIRE: dict[str, set[str]] = {
    "Israel-Hezbollah ceasefire takes effect after 14 months of fighting":
        {"ceasefire-agreed"},
    "U.S. shuts Kyiv embassy for a day over warning of major air attack":
        {"embassy-closure"},
    # soldiers sent to clear mud: a disaster-relief deployment; volunteers "mobilised"
    "Volunteers flock to Valencia to dig out towns after Spain's deadliest floods in decades":
        set(),
    # economic retaliation (tariffs, trade inquiries), not military
    "China vows to protect its carmakers as EU tariffs on electric vehicles kick in": set(),
    # the wire copy of the airspace story; the Defence Desk runs the other copy
    "Japan protests after Chinese military plane enters its airspace": {"airspace-violation"},
    "Nikkei plunges 12% as yen surges & U.S. growth fears mount": set(),
    # foreign ministers, not defence ministers or heads of government
    "Blinken and Wang Yi hold talks on sidelines of ASEAN meetings in Laos": set(),
    # a software fix "deployed"; "not a cyber-attack"
    "Faulty security update knocks out computers worldwide": set(),
    # health ministers, not defence ministers
    "German and French health ministers discuss vaccine supplies by phone": set(),
    "Spain beat England 2-1 to win record fourth European Championship": set(),
    "U.S. to send long-range missiles to Germany from 2026": {"missile-deployment"},
    "EU adopts new Russia sanctions, targeting gas exports for first time":
        {"sanctions-announced"},
    # a ceasefire only called for
    "UN Security Council demands end to siege of Sudan's El Fasher": set(),
    # a drug "test" and "trial"; shares "rocketed"
    "Experimental heart drug passes key test in late-stage trial": set(),
    # a club "sanctioned" by a sports commission
    "Nottingham Forest docked four points for breaking spending rules": set(),
}
DEFENCE_DESK: dict[str, set[str]] = {
    # a former defence secretary, and no counterpart
    "Former Defense Secretary Lloyd Austin lectures students on alliances": set(),
    # a mobilisation denied
    "Kremlin says it has no plans for a new round of mobilisation": set(),
    "Chinese and Philippine coastguard ships collide near disputed shoal": {"naval-incident"},
    # the Defence Desk copy of the wire's airspace story: one story, one alert, two sources
    "Chinese spy plane breaches Japanese airspace for first time, Tokyo says":
        {"airspace-violation"},
    # a hacking campaign that nobody attributes to a state
    "Agencies warn defence suppliers of fake job-offer phishing campaign": set(),
    # Austin, Texas; missile guidance firms at a trade show
    "Drone makers crowd defence technology expo in Austin, Texas": set(),
    # company earnings and orders, not an arms transfer
    "European defence shares climb as Northvale Aerospace lifts forecast": set(),
    # one defence minister, no contact with another country's
    "German defence minister visits troops, vows to press for bigger budget": set(),
    "Austin and Belousov hold phone call, Pentagon says": {"defence-minister-contact"},
    "North Korea test-fires ballistic missiles into sea, Seoul says": {"weapons-test"},
    # commentary: what a truce would need, breaches, failed talks
    "Analysis: What it would take for a Gaza truce to hold": set(),
    "Germany blames Russian military hackers for attack on Social Democrats":
        {"state-cyberattack"},
    # airspace closed and reopened, airlines rerouted: civil aviation
    "Airlines reroute flights around Middle East after Iran's attack on Israel": set(),
}
EXPECTED = {**WORLD_WIRE, **DEFENCE_DESK}
WIRE_COPIES = ("Japan protests after Chinese military plane enters its airspace",
               "Chinese spy plane breaches Japanese airspace for first time, Tokyo says")


def matches_by_title(path: str, analyzer: Analyzer, ruleset: RuleSet) -> dict[str, set[str]]:
    data = (REPO / "seeds" / "feeds" / path).read_bytes()
    items = items_from_input(data, path, NOW)
    return {item.label: {m.rule_id for m in ms} for item, _, ms in
            match_items(items, analyzer, ruleset)}


@pytest.fixture(scope="module")
def found(analyzer: Analyzer, ruleset: RuleSet) -> dict[str, dict[str, set[str]]]:
    """The rules each sample story fires, per feed file."""
    return {path: matches_by_title(path, analyzer, ruleset) for path in FEEDS}


def test_table_lists_every_sample_story(found: dict[str, dict[str, set[str]]]) -> None:
    """The table names each story of each feed once, no more and no fewer."""
    assert set(found["world-wire.xml"]) == set(WORLD_WIRE)
    assert set(found["defence-desk.atom"]) == set(DEFENCE_DESK)
    assert 24 <= len(EXPECTED) <= 30


@pytest.mark.parametrize("title", sorted(EXPECTED))
def test_sample_story_fires_exactly_its_rules(title: str,
                                              found: dict[str, dict[str, set[str]]]) -> None:
    """Each sample story fires the rules in the table, and only those."""
    [rules] = [by_title[title] for by_title in found.values() if title in by_title]
    assert rules == EXPECTED[title]


def test_samples_show_the_library_and_its_near_misses() -> None:
    """Positive stories cover at least seven rules; most stories are quiet near misses."""
    positive = {t: r for t, r in EXPECTED.items() if r}
    assert len(set().union(*positive.values())) >= 7
    assert all(len(r) == 1 for r in positive.values())
    assert sum(1 for r in EXPECTED.values() if not r) >= 15


def test_sample_feeds_are_dated_and_keyed() -> None:
    """Every entry has a unique key, a link and a publication date."""
    for path in FEEDS:
        parsed = parse_document((REPO / "seeds" / "feeds" / path).read_bytes(), feed_id="s",
                                url=path, now=NOW)
        assert parsed.entries
        assert len({e.key for e in parsed.entries}) == len(parsed.entries)
        assert all(e.published is not None and e.link for e in parsed.entries)


def test_only_the_wire_copies_are_one_story() -> None:
    """The two outlets' copies are near-duplicates (one story); no other pair of stories is."""
    threshold = StorySettings().similarity
    entries = {e.title: e for path in FEEDS for e in parse_document(
        (REPO / "seeds" / "feeds" / path).read_bytes(), feed_id=path, url=path, now=NOW).entries}
    prints = {t: fingerprint(e.document(), threshold).signature for t, e in entries.items()}
    same = {frozenset((a, b)) for a, b in combinations(prints, 2)
            if similarity(prints[a], prints[b]) >= threshold}
    assert same == {frozenset(WIRE_COPIES)}
    first, second = (entries[t] for t in WIRE_COPIES)
    assert first.feed_id != second.feed_id and first.link != second.link
    assert similarity(prints[WIRE_COPIES[0]], prints[WIRE_COPIES[1]]) >= threshold + 0.1


def test_shipped_rule_examples_pass(analyzer: Analyzer, ruleset: RuleSet) -> None:
    """Every `examples` entry of the shipped rules behaves as written."""
    results = run_examples(ruleset, analyzer, date(2026, 11, 25))
    assert results and [r for r in results if not r.ok] == []


def test_reference_article_fires_its_three_rules(analyzer: Analyzer,
                                                 ruleset: RuleSet) -> None:
    """The real article in ../shared/seeds fires exactly three rules.

    It reports the Austin-Belousov call (defence-minister-contact), the planned US
    long-range missile deployments to Germany (missile-deployment), and the Kremlin's
    answer that "Russia will retaliate" and Ryabkov's promise of "a military response"
    (retaliation-threat: a state's threat of a military response, not yet carried out).
    The deployment is of missiles only, so force-deployment stays quiet, and nothing is
    handed to another state, so arms-transfer does too.
    """
    path = shared_path("seeds", "austin-belousov-call-2024-07-12.txt")
    item = Item("reference", path.read_text(encoding="utf-8"), date(2024, 7, 12))
    [(_, _, matches)] = list(match_items([item], analyzer, ruleset))
    assert {m.rule_id for m in matches} == {
        "missile-deployment", "defence-minister-contact", "retaliation-threat"}
