"""Counterparts: "X met his Russian counterpart" names a Russian holder of X's office."""

from __future__ import annotations

from datetime import date

import pytest

from ingest.nlp.pipeline import Analyzer

ON = date(2024, 6, 1)


Holder = tuple[str, str | None]


def holders(analyzer: Analyzer, text: str, role: str, on: date = ON) -> list[Holder]:
    """(text, country) of the mentions holding ``role``."""
    return [(m.text, m.country) for m in analyzer.analyze([text], [on])[0].mentions
            if role in m.roles]


ONE_PER_ROLE = [
    ("Lloyd Austin met his Russian counterpart in Geneva.", "defence-minister", "RU"),
    ("Antony Blinken met his Chinese counterpart in Beijing.", "foreign-minister", "CN"),
    ("Vladimir Putin met his Chinese counterpart in Moscow.", "head-of-state", "CN"),
    ("Narendra Modi held talks with his Japanese counterpart in Tokyo.",
     "head-of-government", "JP"),
]


@pytest.mark.parametrize(("text", "role", "country"), ONE_PER_ROLE)
def test_counterpart_takes_the_role(analyzer: Analyzer, text: str, role: str,
                                    country: str) -> None:
    """The counterpart holds the role of the person before it, for the country named."""
    assert [c for _, c in holders(analyzer, text, role)][-1] == country


def test_named_counterpart_gets_role_on_own_mention(analyzer: Analyzer) -> None:
    """'his Chinese counterpart, Zhao Lin' gives Zhao Lin the role and China."""
    text = "Austin met his Chinese counterpart, Zhao Lin, in Singapore."
    assert ("Zhao Lin", "CN") in holders(analyzer, text, "defence-minister")


def test_plural_counterparts(analyzer: Analyzer) -> None:
    """'their French counterparts' is a French holder of the role."""
    text = "Blinken and Austin met their French counterparts in Paris."
    found = holders(analyzer, text, "foreign-minister")
    assert ("French counterparts", "FR") in found


def test_plural_counterparts_of_two_offices_and_countries(analyzer: Analyzer) -> None:
    """'Austin and Blinken met their Japanese and Australian counterparts': both offices."""
    text = "Austin and Blinken met their Japanese and Australian counterparts in Tokyo."
    for role in ("defence-minister", "foreign-minister"):
        countries = {c for _, c in holders(analyzer, text, role)}
        assert {"US", "JP", "AU"} <= countries


def test_counterpart_from_country(analyzer: Analyzer) -> None:
    """'her counterpart from Japan' is a Japanese holder."""
    text = "Penny Wong met her counterpart from Japan on Monday."
    assert ("counterpart from Japan", "JP") in holders(analyzer, text, "foreign-minister")


def test_opposite_number(analyzer: Analyzer) -> None:
    """'his opposite number from Turkey' works like counterpart."""
    text = "Lavrov spoke with his opposite number from Turkey."
    assert ("opposite number from Turkey", "TR") in holders(analyzer, text, "foreign-minister")


def test_former_minister_has_no_counterpart(analyzer: Analyzer) -> None:
    """A former minister's 'counterpart' holds nothing: there is no role to give."""
    text = "Former defence minister Ivan Petrov met his Chinese counterpart in Beijing."
    assert holders(analyzer, text, "defence-minister") == []
