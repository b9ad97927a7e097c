"""Backtests (pure): replaying rules over stored entries, and the stored analyses they read."""

from __future__ import annotations

import json
import pickle
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from ingest.model import Analysis, Entry, Mention
from ingest.nlp.pipeline import Analyzer
from ingest.nlp.serial import VERSION, dump_analysis, load_analysis
from ingest.rules.backtest import ReplayItem, replay
from ingest.rules.compile import CompiledRule, compile_rule
from ingest.rules.spec import RuleSpec

T0 = datetime(2024, 7, 11, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
MISSILES = "Germany will host US missiles from 2026, the government said."
QUIET = "The weather in Berlin was mild on Thursday."


@pytest.fixture(scope="module")
def texts(analyzer: Analyzer) -> dict[str, Analysis]:
    """The few texts these tests replay, analysed once."""
    docs = [MISSILES, QUIET]
    return dict(zip(docs, analyzer.analyze(docs, [date(2024, 7, 11)] * len(docs)),
                    strict=True))


def rule(rule_id: str = "missiles", **extra: object) -> CompiledRule:
    spec = RuleSpec.model_validate({"id": rule_id, "title": "T",
                                    "when": {"lemma": ["missile"]}, **extra})
    return compile_rule(spec, None)


def make_item(texts: dict[str, Analysis], entry_id: int, story_id: int, feed: str,
              at: datetime, text: str = MISSILES, language: str | None = None) -> ReplayItem:
    entry = Entry(feed, f"k{entry_id}", f"Title {entry_id}", f"https://{feed}.example/{entry_id}",
                  text, "", at)
    return ReplayItem(entry_id, entry, story_id, at, texts[text], language)


# --- replay -----------------------------------------------------------------------------

def test_copies_of_a_story_fold_into_one_alert(texts: dict[str, Analysis]) -> None:
    """Three copies of one story from two feeds: one alert listing both feeds, two updates."""
    items = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 1, "bbc", T0 + HOUR),
             make_item(texts, 3, 1, "wire", T0 + 2 * HOUR)]
    report = replay(items, [rule()])["missiles"]
    assert report.matches == 3 and report.updates == 2 and report.suppressed == 0
    [fired] = report.fired
    assert (fired.story_id, fired.at, fired.feeds) == (1, T0, ["wire", "bbc"])
    assert (fired.title, fired.link) == ("Title 1", "https://wire.example/1")


def test_each_story_fires_once(texts: dict[str, Analysis]) -> None:
    """Different stories are different alerts; entries that do not match are not counted."""
    items = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 2, "bbc", T0 + HOUR),
             make_item(texts, 3, 3, "dw", T0 + HOUR, QUIET)]
    report = replay(items, [rule()])["missiles"]
    assert [f.story_id for f in report.fired] == [1, 2]
    assert report.matches == 2


def test_items_are_replayed_in_time_order(texts: dict[str, Analysis]) -> None:
    """Given out of order, the earliest copy raises the alert and later ones update it."""
    items = [make_item(texts, 2, 1, "bbc", T0 + HOUR), make_item(texts, 1, 1, "wire", T0)]
    [fired] = replay(items, [rule()])["missiles"].fired
    assert fired.at == T0 and fired.feeds == ["wire", "bbc"]


def test_threshold_holds_back_until_reached(texts: dict[str, Analysis]) -> None:
    """`threshold: {count: 2, distinct: source}`: the second source's story fires."""
    r = rule(threshold={"count": 2, "window": "6h", "distinct": "source"})
    items = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 2, "wire", T0 + HOUR),
             make_item(texts, 3, 3, "bbc", T0 + 2 * HOUR)]
    report = replay(items, [r])["missiles"]
    assert [f.story_id for f in report.fired] == [3]
    assert report.suppressed == 2 and report.matches == 3


def test_threshold_window_forgets_old_matches(texts: dict[str, Analysis]) -> None:
    """A match older than the window does not count towards the threshold."""
    r = rule(threshold={"count": 2, "window": "6h"})
    inside = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 2, "bbc", T0 + 6 * HOUR)]
    outside = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 2, "bbc", T0 + 7 * HOUR)]
    assert [f.story_id for f in replay(inside, [r])["missiles"].fired] == [2]
    assert replay(outside, [r])["missiles"].fired == []
    assert replay(outside, [r])["missiles"].suppressed == 2


def test_story_held_back_by_threshold_fires_on_a_later_copy(
        texts: dict[str, Analysis]) -> None:
    """A story below threshold fires when a later copy brings the count up."""
    r = rule(threshold={"count": 2, "window": "6h", "distinct": "source"})
    items = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 1, "bbc", T0 + HOUR),
             make_item(texts, 3, 1, "dw", T0 + 2 * HOUR)]
    report = replay(items, [r])["missiles"]
    [fired] = report.fired
    assert (fired.at, fired.feeds) == (T0 + HOUR, ["bbc", "dw"])
    assert (report.suppressed, report.updates) == (1, 1)


def test_dedupe_suppresses_other_stories_in_the_window(texts: dict[str, Analysis]) -> None:
    """`dedupe: {key: rule, window: 24h}`: one alert a day; copies still update theirs."""
    r = rule(dedupe={"key": "rule", "window": "24h"})
    items = [make_item(texts, 1, 1, "wire", T0),
             make_item(texts, 2, 2, "bbc", T0 + 2 * HOUR),    # deduped
             make_item(texts, 3, 1, "dw", T0 + 3 * HOUR),     # copy of story 1: an update
             make_item(texts, 4, 3, "bbc", T0 + 24 * HOUR),   # exactly 24h: still deduped
             make_item(texts, 5, 4, "wire", T0 + 25 * HOUR)]  # fires
    report = replay(items, [r])["missiles"]
    assert [f.story_id for f in report.fired] == [1, 4]
    assert report.fired[0].feeds == ["wire", "dw"]
    assert (report.matches, report.updates, report.suppressed) == (5, 1, 2)


def test_dedupe_by_source_keeps_sources_apart(texts: dict[str, Analysis]) -> None:
    """`dedupe.key: source` throttles each feed on its own."""
    r = rule(dedupe={"key": "source", "window": "1d"})
    items = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 2, "bbc", T0 + HOUR),
             make_item(texts, 3, 3, "wire", T0 + 2 * HOUR)]
    report = replay(items, [r])["missiles"]
    assert [f.story_id for f in report.fired] == [1, 2]
    assert report.suppressed == 1


def test_per_day_counts_alerts(texts: dict[str, Analysis]) -> None:
    """per_day counts alerts (not matches or updates) by day, in date order."""
    items = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 2, "bbc", T0 + HOUR),
             make_item(texts, 3, 2, "dw", T0 + 2 * HOUR),
             make_item(texts, 4, 3, "wire", T0 + 26 * HOUR)]
    report = replay(list(reversed(items)), [rule()])["missiles"]
    assert report.per_day() == {date(2024, 7, 11): 2, date(2024, 7, 12): 1}
    assert list(report.per_day()) == sorted(report.per_day())


def test_every_rule_gets_a_report(texts: dict[str, Analysis]) -> None:
    """Rules that never match still have an empty report; rules do not share state."""
    quiet = compile_rule(RuleSpec.model_validate(
        {"id": "subs", "title": "S", "when": {"lemma": ["submarine"]}}), None)
    deduped = rule("deduped", dedupe={"key": "rule", "window": "1d"})
    items = [make_item(texts, 1, 1, "wire", T0), make_item(texts, 2, 2, "bbc", T0 + HOUR)]
    reports = replay(items, [rule(), quiet, deduped])
    assert set(reports) == {"missiles", "subs", "deduped"}
    assert (reports["subs"].matches, reports["subs"].fired) == (0, [])
    assert len(reports["missiles"].fired) == 2 and len(reports["deduped"].fired) == 1


def test_language_and_disabled_rules_are_honoured(texts: dict[str, Analysis]) -> None:
    """Items in other languages are skipped by language-bound rules; disabled rules never fire."""
    items = [make_item(texts, 1, 1, "wire", T0, language="fr"),
             make_item(texts, 2, 2, "bbc", T0 + HOUR, language="en")]
    reports = replay(items, [rule("en-only", language=["en"]), rule("off", enabled=False)])
    assert [f.story_id for f in reports["en-only"].fired] == [2]
    assert reports["off"].matches == 0


def test_replay_of_nothing() -> None:
    """No items: empty reports."""
    report = replay([], [rule()])["missiles"]
    assert (report.fired, report.matches, report.per_day()) == ([], 0, {})


# --- stored analyses --------------------------------------------------------------------

ROUND_TRIP = ("U.S. Defense Secretary Lloyd Austin met Germany’s Boris Pistorius in Berlin "
              "on Tuesday.\n\nThey discussed “long-range fires” — SM-6 and Tomahawk missiles — "
              "for 2026. Zürich-based analysts weren't surprised.")


def test_dump_and_load_round_trip(analyzer: Analyzer) -> None:
    """A real analysis survives dump/load exactly: tokens, sentences, mentions and roles."""
    [original] = analyzer.analyze([ROUND_TRIP], [date(2024, 7, 11)])
    assert any(m.roles for m in original.mentions)  # the text exercises roles and ids
    assert any(t.lemma != t.text.lower() for t in original.tokens)
    restored = load_analysis(dump_analysis(original))
    assert restored == original


def test_dump_is_deterministic_and_compact(analyzer: Analyzer) -> None:
    """The same analysis gives the same bytes, a fraction of the pickled size."""
    [a] = analyzer.analyze([ROUND_TRIP], [date(2024, 7, 11)])
    blob = dump_analysis(a)
    assert blob == dump_analysis(a)
    assert len(blob) * 2 < len(pickle.dumps(a))


def test_round_trip_of_an_empty_analysis() -> None:
    """An analysis with no tokens or mentions round-trips too."""
    empty = Analysis("", (), (), ())
    assert load_analysis(dump_analysis(empty)) == empty


def test_round_trip_of_hand_built_mentions() -> None:
    """Mentions without id/country and with several roles round-trip unchanged."""
    m1 = Mention("Boris Pistorius", 0, 15, "PERSON", 0, "Boris Pistorius", "boris-pistorius",
                 "DE", ("defence-minister", "deputy"), "gazetteer")
    m2 = Mention("the minister", 20, 32, "PERSON", 0, "the minister", source="title")
    a = Analysis("Boris Pistorius and the minister", (), ((0, 32),), (m1, m2))
    assert load_analysis(dump_analysis(a)) == a


def _blob(data: object) -> bytes:
    return zlib.compress(json.dumps(data).encode())


@pytest.mark.parametrize("blob", [None, b"", b"not zlib at all", zlib.compress(b"\xff\xfe"),
                                  zlib.compress(b"{not json"), _blob([1, 2, 3]),
                                  _blob({"v": VERSION + 1, "text": "", "sentences": [],
                                         "tokens": [], "mentions": []}),
                                  _blob({"text": "x"})],
                         ids=["none", "empty", "garbage", "not-utf8", "not-json", "not-a-dict",
                              "newer-version", "no-version"])
def test_unreadable_blobs_give_none(blob: bytes | None) -> None:
    """Absent, damaged or other-version blobs read as None (analyse again)."""
    assert load_analysis(blob) is None


def test_truncated_blob_gives_none(analyzer: Analyzer) -> None:
    """A blob cut short (a damaged row) reads as None."""
    [a] = analyzer.analyze([ROUND_TRIP], [date(2024, 7, 11)])
    blob = dump_analysis(a)
    assert load_analysis(blob[: len(blob) // 2]) is None


@pytest.mark.parametrize("data", [
    {"v": VERSION},
    {"v": VERSION, "text": "ab", "sentences": [[0, 2]], "tokens": [[0, 2]], "mentions": []},
    {"v": VERSION, "text": "ab", "sentences": [[0]], "tokens": [], "mentions": []},
    {"v": VERSION, "text": "ab", "sentences": [], "tokens": [], "mentions": [["ab"]]}],
    ids=["fields-missing", "short-token", "short-sentence", "short-mention"])
def test_damaged_content_gives_none(data: dict[str, object]) -> None:
    """A readable blob of the right version whose content is damaged also reads as None."""
    assert load_analysis(_blob(data)) is None


def test_loaded_analysis_feeds_a_replay(analyzer: Analyzer) -> None:
    """A stored analysis replays exactly like the fresh one (backtests need no NLP)."""
    [fresh] = analyzer.analyze([MISSILES], [date(2024, 7, 11)])
    stored = load_analysis(dump_analysis(fresh))
    assert stored is not None
    entry = Entry("wire", "k", "T", "https://wire.example/1", MISSILES, "", T0)
    item = ReplayItem(1, entry, 1, T0, fresh)
    fresh_report = replay([item], [rule()])["missiles"]
    stored_report = replay([replace(item, analysis=stored)], [rule()])["missiles"]
    assert fresh_report == stored_report and len(stored_report.fired) == 1
