"""Qualifiers before a title: who holds the office on the story's date and who does not."""

from __future__ import annotations

from datetime import date

import pytest

from ingest.nlp.pipeline import Analyzer

DEFENCE = "defence-minister"


def roles_of(analyzer: Analyzer, text: str, person: str, on: date) -> tuple[str, ...]:
    """The roles of the mention whose text ends with ``person``."""
    found = [m for m in analyzer.analyze([text], [on])[0].mentions if m.text.endswith(person)]
    assert found, f"{person!r} not found in {text!r}"
    return found[0].roles


NOT_HOLDERS = [
    "Former Defence Minister Ivan Petrov arrived in Kyiv.",
    "Ex-Defence Minister Ivan Petrov arrived in Kyiv.",
    "ex-defence minister Ivan Petrov arrived in Kyiv.",
    "Then-Defence Minister Ivan Petrov arrived in Kyiv.",
    "Incoming Defence Minister Ivan Petrov arrived in Kyiv.",
    "Defence Minister-designate Ivan Petrov arrived in Kyiv.",
    "Deputy Defence Minister Ivan Petrov arrived in Kyiv.",
    "First Deputy Defence Minister Ivan Petrov arrived in Kyiv.",
    "Vice Defence Minister Ivan Petrov arrived in Kyiv.",
    "Shadow Defence Secretary Ivan Petrov arrived in Kyiv.",
    "Russia's former defence minister Ivan Petrov arrived in Kyiv.",
]


@pytest.mark.parametrize("text", NOT_HOLDERS)
def test_qualifier_means_not_in_office(analyzer: Analyzer, text: str) -> None:
    """former, ex-, then-, incoming, -designate, deputy, vice, shadow: no role."""
    assert DEFENCE not in roles_of(analyzer, text, "Petrov", date(2024, 7, 12))


HOLDERS = [
    "Outgoing Defence Minister Ivan Petrov arrived in Kyiv.",
    "Acting Defence Minister Ivan Petrov arrived in Kyiv.",
    "Caretaker Defence Minister Ivan Petrov arrived in Kyiv.",
    "Interim Defence Minister Ivan Petrov arrived in Kyiv.",
    "New Defence Minister Ivan Petrov arrived in Kyiv.",
    "Troops under Defence Minister Ivan Petrov advanced.",
]


@pytest.mark.parametrize("text", HOLDERS)
def test_outgoing_and_acting_still_hold_office(analyzer: Analyzer, text: str) -> None:
    """An outgoing, acting, caretaker or interim minister is still in office."""
    assert DEFENCE in roles_of(analyzer, text, "Petrov", date(2024, 7, 12))


def test_outgoing_keeps_country_modifier(analyzer: Analyzer) -> None:
    """'Germany's outgoing chancellor X' is a German head of government."""
    found = analyzer.analyze(["Germany's outgoing chancellor Ivan Petrov met reporters."],
                             [date(2024, 7, 12)])[0].mentions
    assert [(m.country, m.roles) for m in found if m.roles] == [("DE", ("head-of-government",))]


def test_outgoing_known_minister_keeps_dated_role(analyzer: Analyzer) -> None:
    """'Outgoing Defense Secretary Lloyd Austin' in December 2024 is still defence minister."""
    text = "Outgoing Defense Secretary Lloyd Austin visited Tokyo."
    assert DEFENCE in roles_of(analyzer, text, "Austin", date(2024, 12, 10))


@pytest.mark.parametrize("qualifier", ["Former", "Ex-", "Then-", "Incoming", "Deputy"])
def test_qualifier_withdraws_dated_role(analyzer: Analyzer, qualifier: str) -> None:
    """A not-in-office qualifier wins over gazetteer dates that say in office."""
    text = f"{qualifier} Defense Secretary Lloyd Austin visited Tokyo."
    assert DEFENCE not in roles_of(analyzer, text, "Austin", date(2024, 7, 12))


# Not (or no longer, or not yet) the defence minister, on that day.
NOT_MINISTER_ON = [
    # 'X, who was defence minister' is a former minister.
    ("Sergei Shoigu, who was defence minister, met Chinese officials.", "Shoigu",
     date(2023, 6, 1)),
    # 'X, the former defence minister, ...' is not a defence minister.
    ("Sergei Shoigu, the former defence minister, met Chinese officials.", "Shoigu",
     date(2023, 6, 1)),
    # 'defense secretary pick Pete Hegseth' before his confirmation is not a minister.
    ("Trump's defense secretary pick Pete Hegseth met senators.", "Hegseth", date(2024, 12, 3)),
    # An Under Secretary of Defense is not the Secretary of Defense.
    ("US Under Secretary of Defense Colin Kahl visited Kyiv.", "Kahl", date(2022, 9, 1)),
]


@pytest.mark.parametrize(("text", "name", "on"), NOT_MINISTER_ON)
def test_not_the_minister_on_that_day(analyzer: Analyzer, text: str, name: str,
                                      on: date) -> None:
    """Past, apposed 'former', nominees and under-secretaries hold no defence role."""
    assert DEFENCE not in roles_of(analyzer, text, name, on)


def test_president_elect_is_not_head_of_state(analyzer: Analyzer) -> None:
    """'President-elect X' is not yet head of state; 'President Y' next to him is."""
    text = "President-elect Ivan Petrov met President Joe Biden at the White House."
    on = date(2024, 11, 13)
    assert "head-of-state" not in roles_of(analyzer, text, "Petrov", on)
    assert "head-of-state" in roles_of(analyzer, text, "Biden", on)


def test_then_as_adverb_is_not_a_qualifier(analyzer: Analyzer) -> None:
    """'and then President Macron' is the sitting president, not 'then-President'."""
    text = "Zelensky met Blinken and then President Macron in Paris."
    assert "head-of-state" in roles_of(analyzer, text, "Macron", date(2024, 6, 6))
