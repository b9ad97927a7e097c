"""The alert policy (pure): updates, thresholds, dedupe, silences, and dedupe keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.model import Hit, Mention, RuleMatch
from ingest.rules.policy import (
    AlertRef,
    Decision,
    History,
    MatchEvent,
    PriorMatch,
    Silence,
    decide,
    dedupe_key,
    entity_keys,
    threshold_met,
)
from ingest.rules.spec import RuleSpec

NOW = datetime(2024, 7, 11, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def spec(**extra: object) -> RuleSpec:
    return RuleSpec.model_validate({"id": "missiles", "title": "Missiles",
                                    "tags": ["military", "missiles"],
                                    "when": {"keyword": "missile"}, **extra})


def event(entry_id: int = 10, story_id: int = 10, feed_id: str = "wire",
          rule_id: str = "missiles", key: str = "rule=missiles",
          tags: tuple[str, ...] = ("military", "missiles"),
          entities: frozenset[str] = frozenset({"lloyd-austin", "lloyd austin"})) -> MatchEvent:
    return MatchEvent(rule_id, entry_id, story_id, feed_id, NOW, key, tags, entities)


def silence(rule_id: str | None = None, tag: str | None = None, entity: str | None = None,
            created: datetime = NOW - HOUR, expires: datetime = NOW + HOUR,
            silence_id: int = 1) -> Silence:
    return Silence(silence_id, rule_id, tag, entity, "quiet please", created, expires)


THRESHOLD_3 = {"threshold": {"count": 3, "window": "6h"}}


# --- update -----------------------------------------------------------------------------

def test_update_is_silent_by_default() -> None:
    """A later copy of an alerted story updates that alert without notifying."""
    out = decide(spec(), event(), History(story_alert=AlertRef("a1", "fired")), NOW)
    assert out == Decision("update", "a1", notify=False)


def test_update_notifies_with_on_update_notify() -> None:
    """`on_update: notify` sends the update of a fired alert."""
    out = decide(spec(on_update="notify"), event(), History(story_alert=AlertRef("a1", "fired")),
                 NOW)
    assert out == Decision("update", "a1", notify=True)


def test_update_of_a_silenced_alert_is_never_sent() -> None:
    """An alert recorded while silenced stays quiet even with `on_update: notify`."""
    out = decide(spec(on_update="notify"), event(),
                 History(story_alert=AlertRef("a1", "silenced")), NOW)
    assert out == Decision("update", "a1", notify=False)


def test_update_comes_before_threshold_dedupe_and_silences() -> None:
    """A story that has its alert is an update whatever else the history holds."""
    rule = spec(on_update="notify", **THRESHOLD_3, dedupe={"key": "rule", "window": "1d"})
    history = History(story_alert=AlertRef("a1", "fired"), window=(),
                      dedupe_alert=AlertRef("a0", "fired"), silences=(silence(),))
    assert decide(rule, event(), history, NOW) == Decision("update", "a1", notify=True)


# --- threshold --------------------------------------------------------------------------

def test_threshold_counts_the_current_event() -> None:
    """`count: 1` is met by the match itself, with nothing before it."""
    rule = spec(threshold={"count": 1, "window": "1h"})
    assert decide(rule, event(), History(), NOW) == Decision("new", notify=True)


def test_threshold_below_count() -> None:
    """Two entries (one earlier, this one) do not reach a count of three."""
    history = History(window=(PriorMatch(1, "wire", 1),))
    assert decide(spec(**THRESHOLD_3), event(), history, NOW) == Decision("below-threshold")


def test_threshold_reached_with_the_current_event() -> None:
    """Two earlier entries and this one reach a count of three."""
    history = History(window=(PriorMatch(1, "wire", 1), PriorMatch(2, "wire", 2)))
    assert decide(spec(**THRESHOLD_3), event(), history, NOW).state == "new"


def test_threshold_does_not_count_the_same_entry_twice() -> None:
    """The entry re-matched (already in the window) and duplicates count once."""
    history = History(window=(PriorMatch(10, "wire", 10), PriorMatch(1, "wire", 1),
                              PriorMatch(1, "wire", 1)))
    assert decide(spec(**THRESHOLD_3), event(entry_id=10), history, NOW).state \
        == "below-threshold"


def test_threshold_distinct_source() -> None:
    """`distinct: source` counts feeds, not entries: many from one feed are one."""
    rule = spec(threshold={"count": 2, "window": "6h", "distinct": "source"})
    same_feed = History(window=(PriorMatch(1, "wire", 1), PriorMatch(2, "wire", 2)))
    other_feed = History(window=(PriorMatch(1, "bbc", 1),))
    assert decide(rule, event(feed_id="wire"), same_feed, NOW).state == "below-threshold"
    assert decide(rule, event(feed_id="wire"), other_feed, NOW).state == "new"


def test_threshold_distinct_story() -> None:
    """`distinct: story` counts stories: copies of one story are one."""
    rule = spec(threshold={"count": 2, "window": "6h", "distinct": "story"})
    same_story = History(window=(PriorMatch(1, "bbc", 10), PriorMatch(2, "dw", 10)))
    other_story = History(window=(PriorMatch(1, "wire", 3),))
    assert decide(rule, event(story_id=10), same_story, NOW).state == "below-threshold"
    assert decide(rule, event(story_id=10), other_story, NOW).state == "new"


def test_threshold_distinct_source_ignores_the_recounted_entry() -> None:
    """A re-matched entry from another feed in the window does not add its feed twice."""
    rule = spec(threshold={"count": 2, "window": "6h", "distinct": "source"})
    history = History(window=(PriorMatch(10, "bbc", 10),))  # this very entry, stale feed id
    assert not threshold_met(rule, event(entry_id=10, feed_id="wire"), history.window)


def test_threshold_met_without_threshold() -> None:
    """A rule without a threshold always meets it."""
    assert threshold_met(spec(), event(), ())


def test_threshold_comes_before_dedupe() -> None:
    """Below threshold wins over an existing dedupe alert."""
    rule = spec(**THRESHOLD_3, dedupe={"key": "rule", "window": "1d"})
    history = History(dedupe_alert=AlertRef("a0", "fired"))
    assert decide(rule, event(), history, NOW) == Decision("below-threshold")


# --- dedupe -----------------------------------------------------------------------------

def test_dedupe_suppresses_with_the_earlier_alert() -> None:
    """An alert with the same key in the window suppresses this one and is named."""
    rule = spec(dedupe={"key": "rule", "window": "1d"})
    out = decide(rule, event(), History(dedupe_alert=AlertRef("a0", "fired")), NOW)
    assert out == Decision("deduped", "a0")


def test_dedupe_alert_ignored_without_dedupe() -> None:
    """A rule without `dedupe` is not suppressed by another alert of the same key."""
    out = decide(spec(), event(), History(dedupe_alert=AlertRef("a0", "fired")), NOW)
    assert out.state == "new"


def test_dedupe_comes_before_silences() -> None:
    """A deduped match is recorded as deduped, not as silenced."""
    rule = spec(dedupe={"key": "rule", "window": "1d"})
    history = History(dedupe_alert=AlertRef("a0", "fired"), silences=(silence("missiles"),))
    assert decide(rule, event(), history, NOW).state == "deduped"


# --- silences ---------------------------------------------------------------------------

def test_silence_by_rule() -> None:
    """A silence of this rule silences it (recorded, not sent); another rule's does not."""
    ours = History(silences=(silence(rule_id="missiles", silence_id=7),))
    theirs = History(silences=(silence(rule_id="sanctions"),))
    assert decide(spec(), event(), ours, NOW) == Decision("silenced", silence_id=7)
    assert decide(spec(), event(), theirs, NOW) == Decision("new", notify=True)


def test_silence_by_tag() -> None:
    """A silence of a tag covers rules carrying that tag only."""
    assert decide(spec(), event(), History(silences=(silence(tag="missiles"),)), NOW).state \
        == "silenced"
    assert decide(spec(), event(), History(silences=(silence(tag="cyber"),)), NOW).state \
        == "new"


def test_silence_by_entity_id() -> None:
    """A silence naming an entity id covers matches of that entity."""
    assert decide(spec(), event(), History(silences=(silence(entity="lloyd-austin"),)),
                  NOW).state == "silenced"
    assert decide(spec(), event(), History(silences=(silence(entity="pete-hegseth"),)),
                  NOW).state == "new"


def test_silence_by_entity_name_is_folded() -> None:
    """A silence naming an entity matches its name in any case and spacing."""
    for written in ("Lloyd Austin", "LLOYD  austin", "lloyd austin"):
        history = History(silences=(silence(entity=written),))
        assert decide(spec(), event(), history, NOW).state == "silenced", written


def test_silence_entity_folds_defense_spelling() -> None:
    """Silences and entity keys share one spelling of defence."""
    keys = entity_keys([Mention("US Defense Department", 0, 21, "ORG", 0,
                                "US Defense Department")])
    history = History(silences=(silence(entity="us defence department"),))
    assert decide(spec(), event(entities=keys), history, NOW).state == "silenced"


def test_silence_needs_every_field_to_match() -> None:
    """A silence of rule and tag covers only matches with both."""
    both = History(silences=(silence(rule_id="missiles", tag="cyber"),))
    assert decide(spec(), event(), both, NOW).state == "new"


def test_expired_silence_is_ignored() -> None:
    """A silence that ended (expiry is exclusive) no longer applies."""
    ended = silence(rule_id="missiles", created=NOW - 2 * HOUR, expires=NOW - HOUR)
    at_expiry = silence(rule_id="missiles", created=NOW - 2 * HOUR, expires=NOW)
    assert decide(spec(), event(), History(silences=(ended,)), NOW).state == "new"
    assert decide(spec(), event(), History(silences=(at_expiry,)), NOW).state == "new"


def test_future_silence_is_ignored() -> None:
    """A silence that starts later does not apply yet; one starting now does."""
    later = silence(rule_id="missiles", created=NOW + HOUR, expires=NOW + 2 * HOUR)
    starting = silence(rule_id="missiles", created=NOW, expires=NOW + HOUR)
    assert decide(spec(), event(), History(silences=(later,)), NOW).state == "new"
    assert decide(spec(), event(), History(silences=(starting,)), NOW).state == "silenced"


def test_first_active_covering_silence_is_named() -> None:
    """Among several silences the first active one that covers the match is reported."""
    history = History(silences=(
        silence(rule_id="missiles", expires=NOW - HOUR, created=NOW - 2 * HOUR, silence_id=1),
        silence(tag="cyber", silence_id=2),
        silence(tag="military", silence_id=3),
        silence(rule_id="missiles", silence_id=4)))
    assert decide(spec(), event(), history, NOW) == Decision("silenced", silence_id=3)


def test_new_alert_is_sent() -> None:
    """With nothing recorded a match is a new alert to notify."""
    assert decide(spec(), event(), History(), NOW) == Decision("new", None, True, None)


# --- entity keys and dedupe keys ---------------------------------------------------------

def minister(name: str, start: int, ident: str | None, country: str) -> Mention:
    return Mention(name, start, start + len(name), "PERSON", 0, name, ident, country,
                   ("defence-minister",), "gazetteer")


AUSTIN = minister("Lloyd Austin", 0, "lloyd-austin", "US")
PISTORIUS = minister("Boris Pistorius", 20, "boris-pistorius", "DE")
SHOIGU = minister("Sergei Shoigu", 40, "sergei-shoigu", "RU")
BERLIN = Mention("Berlin", 60, 66, "GPE", 0, "Germany", "country:de", "DE", (), "gazetteer")
NOBODY = Mention("John Smith", 70, 80, "PERSON", 0, "John Smith")


def match(*entities: Mention) -> RuleMatch:
    hits = tuple(Hit("entity", m.text, m.start, m.end, "when.entity") for m in entities)
    return RuleMatch("missiles", entities, (), hits, "")


def test_entity_keys_hold_ids_and_folded_names() -> None:
    """Entity keys are each mention's id (when known) and folded name."""
    assert entity_keys([AUSTIN, NOBODY]) == {"lloyd-austin", "lloyd austin", "john smith"}


def test_dedupe_key_defaults_to_the_rule() -> None:
    """Without `dedupe` the key is the rule alone."""
    assert dedupe_key(spec(), match(AUSTIN), 5, "wire") == "rule=missiles"


def test_dedupe_key_rule_story_source() -> None:
    """rule, story and source (or feed) parts resolve in the order written."""
    rule = spec(dedupe={"key": ["source", "rule", "story"], "window": "1d"})
    assert dedupe_key(rule, match(), 5, "wire") == "source=wire|rule=missiles|story=5"
    rule = spec(dedupe={"key": "feed", "window": "1d"})
    assert dedupe_key(rule, match(), 5, "wire") == "source=wire"


def test_dedupe_key_by_role_differs_per_pair_of_ministers() -> None:
    """`entity.role:defence-minister`: another pair of ministers is another key."""
    rule = spec(dedupe={"key": ["rule", "entity.role:defence-minister"], "window": "1d"})
    us_de = dedupe_key(rule, match(AUSTIN, PISTORIUS), 1, "wire")
    us_ru = dedupe_key(rule, match(AUSTIN, SHOIGU), 1, "wire")
    assert us_de == "rule=missiles|entity.role:defence-minister=boris-pistorius,lloyd-austin"
    assert us_de != us_ru


def test_dedupe_key_by_role_ignores_order_and_others() -> None:
    """The same pair in another order, with other entities about, is the same key."""
    rule = spec(dedupe={"key": "entity.role:defence-minister", "window": "1d"})
    assert dedupe_key(rule, match(AUSTIN, PISTORIUS), 1, "wire") \
        == dedupe_key(rule, match(BERLIN, PISTORIUS, AUSTIN, NOBODY), 2, "bbc")


def test_dedupe_key_by_role_uses_folded_name_without_id() -> None:
    """A role holder the gazetteer does not know is keyed by its folded name."""
    rule = spec(dedupe={"key": "entity.role:defence-minister", "window": "1d"})
    unknown = minister("Jane DOE", 0, None, "GB")
    assert dedupe_key(rule, match(unknown), 1, "w") == "entity.role:defence-minister=jane doe"


def test_dedupe_key_by_label() -> None:
    """`entity.label:gpe` selects mentions by label, whatever case the label is written in."""
    rule = spec(dedupe={"key": "entity.label:gpe", "window": "1d"})
    assert dedupe_key(rule, match(AUSTIN, BERLIN), 1, "w") == "entity.label:gpe=country:de"


def test_dedupe_key_by_id() -> None:
    """`entity.id` lists every matched entity's id (or folded name), sorted."""
    rule = spec(dedupe={"key": "entity.id", "window": "1d"})
    assert dedupe_key(rule, match(PISTORIUS, NOBODY, AUSTIN), 1, "w") \
        == "entity.id=boris-pistorius,john smith,lloyd-austin"


def test_dedupe_key_by_country() -> None:
    """`entity.country` is the sorted set of the matched entities' countries."""
    rule = spec(dedupe={"key": "entity.country", "window": "1d"})
    assert dedupe_key(rule, match(PISTORIUS, AUSTIN, BERLIN), 1, "w") == "entity.country=DE,US"
    assert dedupe_key(rule, match(AUSTIN, SHOIGU), 1, "w") == "entity.country=RU,US"


def test_dedupe_key_by_country_ignores_entities_without_one() -> None:
    """A matched entity with no known country does not change the country key."""
    rule = spec(dedupe={"key": "entity.country", "window": "1d"})
    assert dedupe_key(rule, match(PISTORIUS, AUSTIN, NOBODY), 1, "w") \
        == dedupe_key(rule, match(PISTORIUS, AUSTIN), 1, "w")


def test_dedupe_key_by_given_country() -> None:
    """`entity.country:us` keeps only entities of that country."""
    rule = spec(dedupe={"key": "entity.country:us", "window": "1d"})
    assert dedupe_key(rule, match(PISTORIUS, AUSTIN), 1, "w") == "entity.country:us=US"
    assert dedupe_key(rule, match(PISTORIUS), 1, "w") == "entity.country:us="


def test_dedupe_key_by_name() -> None:
    """`entity.name:Lloyd Austin` selects that entity by name (folded) or id."""
    rule = spec(dedupe={"key": "entity.name:LLOYD austin", "window": "1d"})
    assert dedupe_key(rule, match(AUSTIN, PISTORIUS), 1, "w") \
        == "entity.name:LLOYD austin=lloyd-austin"
    by_id = spec(dedupe={"key": "entity.name:boris-pistorius", "window": "1d"})
    assert dedupe_key(by_id, match(AUSTIN, PISTORIUS), 1, "w") \
        == "entity.name:boris-pistorius=boris-pistorius"
