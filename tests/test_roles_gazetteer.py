"""The gazetteer's dated office-holders and its title rules (only_for, not_for, abbreviations)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ingest.errors import RuleError
from ingest.nlp.gazetteer import Gazetteer, load_gazetteer
from ingest.nlp.pipeline import Analyzer

G20 = ["US", "GB", "RU", "CN", "FR", "DE", "IT", "JP", "CA", "IN", "BR", "AR", "MX", "AU", "KR",
       "ID", "SA", "ZA", "TR"]
NATO = ["AL", "BE", "BG", "CA", "HR", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IS", "IT",
        "LV", "LT", "LU", "ME", "NL", "MK", "NO", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "TR",
        "GB", "US"]
# Presidential systems where the president also heads the government (no separate role).
NO_HEAD_OF_GOVERNMENT = {"US", "BR", "AR", "MX", "ID", "TR", "ZA"}


def holders_on(gaz: Gazetteer, role: str, country: str, day: date) -> list[str]:
    return [e.id for e in gaz.entities.values() for r in e.roles
            if r.role == role and r.active_on(day) and (r.country or e.country) == country]


@pytest.mark.parametrize("day", [date(2019, 6, 1), date(2021, 3, 1), date(2023, 1, 15),
                                 date(2024, 7, 1)])
def test_every_g20_and_nato_country_has_its_office_holders(gazetteer: Gazetteer,
                                                           day: date) -> None:
    """On each date, every G20 and NATO country has exactly one holder of each office."""
    problems = []
    for country in sorted(set(G20) | set(NATO)):
        for role in ("head-of-state", "head-of-government", "foreign-minister",
                     "defence-minister"):
            if (role == "head-of-government" and country in NO_HEAD_OF_GOVERNMENT) or (
                    role == "defence-minister" and country == "IS"):  # Iceland has none
                continue
            found = holders_on(gazetteer, role, country, day)
            if len(found) != 1:
                problems.append(f"{country} {role}: {found}")
    assert problems == []


def test_role_held_for_another_country(analyzer: Analyzer) -> None:
    """Kaja Kallas is Estonia's PM in 2022 and the EU's foreign-policy chief in 2025."""
    texts = ["Kaja Kallas spoke in Brussels."] * 2
    early, late = analyzer.analyze(texts, [date(2022, 6, 1), date(2025, 6, 1)])
    assert [(m.country, m.roles) for m in early.mentions if m.id == "kaja-kallas"] == [
        ("EE", ("head-of-government",))]
    assert [(m.country, m.roles) for m in late.mentions if m.id == "kaja-kallas"] == [
        ("EU", ("foreign-minister",))]


def test_hungarian_surname_is_the_last_word(analyzer: Analyzer) -> None:
    """English text writes 'Viktor Orban'; a bare 'Orban' is him."""
    found = analyzer.analyze(["Orban met Fico in Budapest."], [date(2024, 7, 1)])[0].mentions
    assert [m.id for m in found if m.label == "PERSON"] == ["viktor-orban", "robert-fico"]


def test_month_is_not_a_surname(analyzer: Analyzer) -> None:
    """'until May' is a month, not Theresa May."""
    found = analyzer.analyze(["He served until May, officials said."], [date(2019, 1, 1)])[0]
    assert not any(m.id == "theresa-may" for m in found.mentions)


def test_zero_width_characters_inside_names(analyzer: Analyzer) -> None:
    """Wire copy's 'Keir \u200cStarmer' is Keir Starmer, and offsets still select the text."""
    text = "British Prime Minister Keir \u200cStarmer said on Monday."
    found = analyzer.analyze([text], [date(2026, 4, 13)])[0]
    starmer = [m for m in found.mentions if m.id == "keir-starmer"]
    assert [m.text for m in starmer] == ["Keir \u200cStarmer"]
    assert all(found.text[m.start:m.end] == m.text for m in found.mentions)


def test_title_inside_spacy_person_span(analyzer: Analyzer) -> None:
    """spaCy's 'PM Starmer' is still the gazetteer's Keir Starmer."""
    text = "Former NATO chief targets PM Starmer over defence spending."
    found = analyzer.analyze([text], [date(2026, 4, 13)])[0].mentions
    assert [m.id for m in found if m.label == "PERSON"] == ["keir-starmer"]


def test_surname_inside_a_building_name(analyzer: Analyzer) -> None:
    """'Kennedy Center' is a building, not Robert F. Kennedy Jr."""
    text = "Trump bid to inscribe name on Kennedy Center faces renewed court test."
    found = analyzer.analyze([text], [date(2026, 4, 13)])[0].mentions
    assert not any(m.id == "robert-f-kennedy-jr" for m in found)


def test_only_for_limits_a_title_to_countries(gazetteer: Gazetteer) -> None:
    """'chancellor' is head of government for Germany, not for Britain or an unstated country."""
    assert gazetteer.title_roles_for("chancellor", "DE") == ("head-of-government",)
    assert gazetteer.title_roles_for("chancellor", "GB") == ()
    assert gazetteer.title_roles_for("chancellor", None) == ()
    assert gazetteer.title_roles_for("chancellor", "DE", stated=False) == ()


def test_not_for_excludes_countries(gazetteer: Gazetteer) -> None:
    """India's 'Foreign Secretary' is a civil servant; Britain's is the minister."""
    assert gazetteer.title_roles_for("foreign secretary", "IN") == ()
    assert gazetteer.title_roles_for("foreign secretary", "GB") == ("foreign-minister",)


def test_abbreviations_match_in_exact_case(gazetteer: Gazetteer) -> None:
    """'PM' is a title; 'pm' is a time of day."""
    assert gazetteer.titles is not None
    assert gazetteer.titles.search("Indian PM Modi")
    assert not gazetteer.titles.search("at 3 pm on Friday")


def write(tmp_path: Path, roles: str) -> Path:
    path = tmp_path / "entities.yaml"
    path.write_text('countries:\n  - {code: "DE", name: Germany}\nroles:\n' + roles)
    return path


def test_only_for_must_name_a_title_of_the_role(tmp_path: Path) -> None:
    """`only_for` naming a title the role does not list is an error with a line."""
    path = write(tmp_path, "  hog:\n    titles: [premier]\n    only_for: {chancellor: [DE]}\n")
    with pytest.raises(RuleError, match=r"entities\.yaml:\d+: role hog: only_for names "
                                        r"'chancellor'"):
        load_gazetteer(path)


def test_not_for_countries_must_exist(tmp_path: Path) -> None:
    """`not_for` with an undefined country code is an error."""
    path = write(tmp_path, "  hog:\n    titles: [premier]\n    not_for: {premier: [CA]}\n")
    with pytest.raises(RuleError, match=r"unknown countries \['CA'\]"):
        load_gazetteer(path)


def test_held_role_country_must_exist(tmp_path: Path) -> None:
    """A role held for an undefined country is an error."""
    path = write(tmp_path, "  hog: {titles: [premier]}\nentities:\n  - id: x\n    name: X Y\n"
                           '    roles:\n      - {role: hog, country: "EU"}\n')
    with pytest.raises(RuleError, match=r"entity x: unknown country 'EU'"):
        load_gazetteer(path)
