"""Entity extraction: gazetteer names, dated roles, role titles, alias context."""

from __future__ import annotations

from datetime import date

from ingest.model import Mention
from ingest.nlp.pipeline import Analyzer

DURING = date(2024, 7, 12)  # Austin and Belousov both in office
AFTER = date(2026, 3, 4)  # Austin out of office


def mentions(analyzer: Analyzer, text: str, on: date = DURING) -> tuple[Mention, ...]:
    return analyzer.analyze([text], [on])[0].mentions


def role_holders(analyzer: Analyzer, text: str, role: str, on: date = DURING) -> list[Mention]:
    return [m for m in mentions(analyzer, text, on) if role in m.roles]


def test_gazetteer_person_gets_dated_role(analyzer: Analyzer) -> None:
    """A known office-holder mentioned by name holds the role on the story's date."""
    found = role_holders(analyzer, "Lloyd Austin visited Kyiv on Friday.", "defence-minister")
    assert [(m.id, m.country) for m in found] == [("lloyd-austin", "US")]


def test_role_ends_with_the_term(analyzer: Analyzer) -> None:
    """After the end date in the gazetteer, the same name no longer carries the role."""
    assert role_holders(analyzer, "Lloyd Austin visited Kyiv.", "defence-minister", AFTER) == []


def test_former_title_gives_no_role(analyzer: Analyzer) -> None:
    """'former Defense Secretary X' does not make X a defence minister."""
    text = "Former Defense Secretary Lloyd Austin spoke at a university."
    assert role_holders(analyzer, text, "defence-minister", AFTER) == []


def test_title_before_unknown_name_gives_role_and_country(analyzer: Analyzer) -> None:
    """A person introduced by a title gets its role and the title's country."""
    text = "Ruritanian Minister of Defence Ivan Petrovichsky arrived on Monday."
    found = role_holders(analyzer, text, "defence-minister")
    assert found and found[0].text.endswith("Petrovichsky")


def test_title_with_demonym_sets_country(analyzer: Analyzer) -> None:
    """'Russian Minister of Defense Andrey Belousov' is a Russian defence minister."""
    text = "He spoke with Russian Minister of Defense Andrey Belousov on Friday."
    found = role_holders(analyzer, text, "defence-minister")
    assert [(m.name, m.country) for m in found] == [("Andrei Belousov", "RU")]


def test_appositive_title_after_name(analyzer: Analyzer) -> None:
    """'Belousov, Russia's defence minister, ...' attaches the title to Belousov."""
    text = "Andrei Belousov, Russia's defence minister, flew to Minsk."
    found = role_holders(analyzer, text, "defence-minister")
    assert [m.country for m in found] == ["RU"]
    assert found[0].source == "gazetteer"


def test_unnamed_title_is_a_role_mention(analyzer: Analyzer) -> None:
    """'the German defence minister' with no name still counts as a German office-holder."""
    found = role_holders(analyzer, "The German defence minister said talks went well.",
                         "defence-minister")
    assert [(m.source, m.country) for m in found] == [("title", "DE")]


def test_austin_texas_is_a_place(analyzer: Analyzer) -> None:
    """'Austin, Texas' never becomes the US Defense Secretary."""
    found = mentions(analyzer, "Austin, Texas hosted a defense technology expo on Friday.")
    assert not any(m.id == "lloyd-austin" for m in found)


def test_surname_alone_after_full_name(analyzer: Analyzer) -> None:
    """Once 'Lloyd Austin' appears, a later bare 'Austin' is the same person."""
    text = "Lloyd Austin arrived in Tokyo. Later, Austin met Japanese officials."
    found = [m for m in mentions(analyzer, text) if m.id == "lloyd-austin"]
    assert len(found) == 2


def test_health_minister_is_not_defence(analyzer: Analyzer) -> None:
    """A health minister's title gives the health role, never the defence one."""
    text = "German Health Minister Karl Lauterbach spoke with his French counterpart."
    found = mentions(analyzer, text)
    assert not any("defence-minister" in m.roles for m in found)


def test_counterpart_takes_role_and_country(analyzer: Analyzer) -> None:
    """'X met his Chinese counterpart' adds a Chinese holder of X's role."""
    text = "Defence Secretary Lloyd Austin met his Chinese counterpart in Singapore."
    found = role_holders(analyzer, text, "defence-minister")
    assert {m.country for m in found} == {"US", "CN"}


def test_deputy_title_gives_no_role(analyzer: Analyzer) -> None:
    """A deputy minister does not hold the minister's role."""
    text = "Russian Deputy Foreign Minister Sergei Ryabkov criticised the plan."
    assert role_holders(analyzer, text, "foreign-minister") == []


def test_weapon_aliases(analyzer: Analyzer) -> None:
    """Weapon systems are found by name and alias with label WEAPON."""
    found = mentions(analyzer, "Units will field SM-6, Tomahawk and hypersonic missiles.")
    assert {m.id for m in found if m.label == "WEAPON"} == {"sm-6", "tomahawk",
                                                            "hypersonic-weapon"}


def test_offsets_point_into_text(analyzer: Analyzer) -> None:
    """Every mention's offsets select its own text in the document."""
    text = "US Defense Secretary Lloyd J. Austin called Russian Defence Minister Andrei Belousov."
    analysis = analyzer.analyze([text], [DURING])[0]
    assert analysis.mentions
    assert all(analysis.text[m.start:m.end] == m.text for m in analysis.mentions)


def test_former_title_overrides_dated_role(analyzer: Analyzer) -> None:
    """'former Defense Secretary' wins over gazetteer dates that still say in office."""
    text = "Former Defense Secretary Lloyd Austin spoke at a university."
    assert role_holders(analyzer, text, "defence-minister", DURING) == []


def test_other_person_with_same_family_name(analyzer: Analyzer) -> None:
    """'Zhang Wei' is not the gazetteer's Wei Fenghe, though both contain 'Wei'."""
    found = mentions(analyzer, "Officials said Zhang Wei met reporters in Beijing.")
    assert not any(m.id == "wei-fenghe" for m in found)


def test_gazetteer_error_names_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An entity with an undefined role is reported with the gazetteer's file and line."""
    import pytest

    from ingest.errors import RuleError
    from ingest.nlp.gazetteer import load_gazetteer

    bad = tmp_path / "entities.yaml"
    bad.write_text("roles:\n  defence-minister: {titles: [defence minister]}\nentities:\n"
                   "  - id: x\n    name: X Y\n    roles:\n      - {role: king}\n")
    with pytest.raises(RuleError, match=r"entities\.yaml:7: entity x: unknown role 'king'"):
        load_gazetteer(bad)


def test_plural_title_in_apposition(analyzer: Analyzer) -> None:
    """'A and B, the two countries' defence ministers' gives both the role."""
    text = ("Germany's Boris Pistorius and France's Sebastien Lecornu, the two countries' "
            "defence ministers, met in Paris.")
    found = role_holders(analyzer, text, "defence-minister")
    assert {m.country for m in found} == {"DE", "FR"}


def test_plural_title_with_countries(analyzer: Analyzer) -> None:
    """'the Turkish and Greek defence ministers' are two office-holders."""
    found = role_holders(analyzer, "The Turkish and Greek defence ministers met.",
                         "defence-minister")
    assert sorted(m.country or "" for m in found) == ["GR", "TR"]


def test_known_weapon_name_inside_another_name(analyzer: Analyzer) -> None:
    """'Tomahawk' inside 'Tomahawk Steakhouse' is not the missile."""
    found = mentions(analyzer, "The Tomahawk Steakhouse Company opened in Ohio on Monday.")
    assert not any(m.id == "tomahawk" for m in found)


def test_person_and_place_with_one_name(analyzer: Analyzer) -> None:
    """'Lloyd Austin visited Austin, Texas': one mention of the person, not two."""
    found = mentions(analyzer, "Lloyd Austin visited Austin, Texas on Friday.")
    assert [m.text for m in found if m.id == "lloyd-austin"] == ["Lloyd Austin"]


def test_lowercase_words_are_not_countries(analyzer: Analyzer) -> None:
    """'turkey' and 'china' in lower case are food and porcelain, not countries."""
    found = mentions(analyzer, "The family ate turkey and served it on fine china.")
    assert not any(m.country for m in found)


def test_title_before_a_speaker_is_not_theirs(analyzer: Analyzer) -> None:
    """In "... China's defence minister, Austin said", Austin stays American."""
    text = "Belousov will hold talks with China's defence minister, Austin said on Friday."
    austin = [m for m in mentions(analyzer, text) if m.id == "lloyd-austin"]
    assert [m.country for m in austin] == ["US"]


def test_spoke_to_a_surname_is_a_person(analyzer: Analyzer) -> None:
    """'spoke to Austin' is a person, though 'to' before a name usually says place."""
    spoke = mentions(analyzer, "Belousov spoke to Austin by phone on Friday.")
    assert any(m.id == "lloyd-austin" for m in spoke)
