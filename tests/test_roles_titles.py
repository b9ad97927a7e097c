"""Role titles as the news writes them, for the four office roles, and titles of other offices."""

from __future__ import annotations

from datetime import date

import pytest

from ingest.nlp.pipeline import Analyzer

ON = date(2024, 7, 12)
DEFENCE, FOREIGN = "defence-minister", "foreign-minister"
STATE, GOVERNMENT = "head-of-state", "head-of-government"


def holders(analyzer: Analyzer, text: str, role: str, on: date = ON) -> list[str | None]:
    """The countries of the mentions that hold ``role`` in ``text``."""
    return [m.country for m in analyzer.analyze([text], [on])[0].mentions if role in m.roles]


DEFENCE_TITLES = [
    ("Secretary of Defense Ivan Petrov arrived in Kyiv.", "US"),
    ("Secretary of War Ivan Petrov arrived in Kyiv.", "US"),
    ("British Defence Secretary Ivan Petrov arrived in Kyiv.", "GB"),
    ("Secretary of State for Defence Ivan Petrov arrived in Kyiv.", "GB"),
    ("Polish Minister of National Defence Ivan Petrov arrived in Kyiv.", "PL"),
    ("France's Minister for the Armed Forces Ivan Petrov arrived in Kyiv.", "FR"),
    ("French Armed Forces Minister Ivan Petrov arrived in Kyiv.", "FR"),
    ("Japan's defence chief Ivan Petrov arrived in Kyiv.", "JP"),
    ("Pentagon chief Ivan Petrov arrived in Kyiv.", "US"),
    ("Pentagon boss Ivan Petrov arrived in Kyiv.", "US"),
    ("Pentagon head Ivan Petrov arrived in Kyiv.", "US"),
    ("Japan's defence minister Ivan Petrov arrived in Kyiv.", "JP"),
    ("Ivan Petrov, Japan's defence minister, arrived in Kyiv.", "JP"),
    ("The Minister of Defence of Japan, Ivan Petrov, arrived in Kyiv.", "JP"),
    ("Ivan Petrov, the defence minister of Japan, arrived in Kyiv.", "JP"),
]

STATE_TITLES = [
    ("President Ivan Petrov of France arrived in Kyiv.", "FR"),
    ("French President Ivan Petrov arrived in Kyiv.", "FR"),
    ("King Ivan Petrov of Spain arrived in Kyiv.", "ES"),
    ("Japanese Emperor Ivan Petrov arrived in Kyiv.", "JP"),
    ("Iran's Supreme Leader Ivan Petrov arrived in Kyiv.", "IR"),
    ("Qatar's Emir Ivan Petrov arrived in Kyiv.", "QA"),
    ("Chinese leader Ivan Petrov arrived in Kyiv.", "CN"),
    ("The Kremlin leader spoke by phone with the Turkish president.", "RU"),
]

GOVERNMENT_TITLES = [
    ("Prime Minister Ivan Petrov of Japan arrived in Kyiv.", "JP"),
    ("Chinese Premier Ivan Petrov arrived in Kyiv.", "CN"),
    ("German Chancellor Ivan Petrov arrived in Kyiv.", "DE"),
    ("Taoiseach Ivan Petrov arrived in Kyiv.", "IE"),
    ("Indian PM Ivan Petrov arrived in Kyiv.", "IN"),
    ("Hungarian leader Ivan Petrov arrived in Kyiv.", "HU"),
    ("Iranian President Ivan Petrov arrived in Kyiv.", "IR"),
]

FOREIGN_TITLES = [
    ("Foreign Minister Ivan Petrov of Japan arrived in Kyiv.", "JP"),
    ("Secretary of State Ivan Petrov arrived in Kyiv.", "US"),
    ("Britain's Foreign Secretary Ivan Petrov arrived in Kyiv.", "GB"),
    ("China's top diplomat Ivan Petrov arrived in Kyiv.", "CN"),
    ("Indian FM Ivan Petrov arrived in Kyiv.", "IN"),
    ("EU foreign policy chief Ivan Petrov arrived in Kyiv.", "EU"),
]


@pytest.mark.parametrize(("text", "country"), DEFENCE_TITLES)
def test_defence_minister_titles(analyzer: Analyzer, text: str, country: str) -> None:
    """Each way of writing a defence minister's title gives the role and the country."""
    assert holders(analyzer, text, DEFENCE) == [country]


@pytest.mark.parametrize(("text", "country"), STATE_TITLES)
def test_head_of_state_titles(analyzer: Analyzer, text: str, country: str) -> None:
    """Presidents, monarchs, supreme leaders and "Chinese leader" are heads of state."""
    assert country in holders(analyzer, text, STATE)


@pytest.mark.parametrize(("text", "country"), GOVERNMENT_TITLES)
def test_head_of_government_titles(analyzer: Analyzer, text: str, country: str) -> None:
    """Prime ministers, premiers, chancellors and the Taoiseach head governments."""
    assert holders(analyzer, text, GOVERNMENT) == [country]


@pytest.mark.parametrize(("text", "country"), FOREIGN_TITLES)
def test_foreign_minister_titles(analyzer: Analyzer, text: str, country: str) -> None:
    """Foreign ministers, secretaries of state, top diplomats and FMs are foreign ministers."""
    assert holders(analyzer, text, FOREIGN) == [country]


def test_iranian_president_is_not_head_of_state(analyzer: Analyzer) -> None:
    """Iran's president heads the government; the Supreme Leader is head of state."""
    assert holders(analyzer, "Iranian President Ivan Petrov arrived in Kyiv.", STATE) == []


OTHER_OFFICES = [
    ("President of the European Commission Ivan Petrov arrived in Kyiv.", STATE),
    ("Ivan Petrov, president of the football club, arrived in Kyiv.", STATE),
    ("Ivan Petrov, the club president, arrived in Kyiv.", STATE),
    ("Chancellor of the Exchequer Ivan Petrov arrived in Kyiv.", GOVERNMENT),
    ("Chancellor Rachel Reeves presented the budget on Wednesday.", GOVERNMENT),
    ("Secretary of State for Health Ivan Petrov arrived in Kyiv.", FOREIGN),
    ("Vatican Secretary of State Pietro Parolin met reporters in Rome.", FOREIGN),
    ("Quebec Premier Ivan Petrov arrived in Kyiv.", GOVERNMENT),
    ("The prime minister of Scotland Ivan Petrov arrived in Kyiv.", GOVERNMENT),
    ("Indian Foreign Secretary Vikram Misri met US officials.", FOREIGN),
    ("Indian Defence Secretary Giridhar Aramane met US officials.", DEFENCE),
    ("Britain's defence chief, Admiral Sir Tony Radakin, met reporters.", DEFENCE),
    ("Australia's Minister for Defence Industry Pat Conroy visited Japan.", DEFENCE),
    ("The top US diplomat in Kyiv met Ukrainian officials.", FOREIGN),
    ("Russian opposition leader Ivan Petrov was detained.", STATE),
    ("Hamas leader Yahya Sinwar was killed.", STATE),
    ("Stephen King met reporters in Maine.", STATE),
    ("The Premier League chief executive met reporters.", GOVERNMENT),
    ("The meeting will start at 3 PM on Friday.", GOVERNMENT),
    ("Fed-up voters put Latin American leaders on thin ice.", STATE),
    ("US officials met leaders of France's far-right National Rally.", STATE),
    ("The first American pope met reporters in Rome.", STATE),
    ("Sultan Al Jaber opened the climate summit in Dubai.", STATE),
    ("Sister of ex-Pakistan PM Khan says he is being tortured in jail.", GOVERNMENT),
]


@pytest.mark.parametrize(("text", "role"), OTHER_OFFICES)
def test_other_offices_give_no_role(analyzer: Analyzer, text: str, role: str) -> None:
    """A title of another body, of a region, or inside a name gives none of the four roles."""
    assert holders(analyzer, text, role) == []


def test_labour_leader_is_not_prime_minister(analyzer: Analyzer) -> None:
    """'Labour leader Keir Starmer' in 2022 does not make him head of government."""
    text = "Labour leader Keir Starmer met Chinese leader Xi Jinping."
    assert holders(analyzer, text, GOVERNMENT, date(2022, 6, 1)) == []
    assert holders(analyzer, text, STATE, date(2022, 6, 1)) == ["CN"]


def test_monarch_alias_is_one_mention(analyzer: Analyzer) -> None:
    """'King Charles' is the gazetteer's Charles III, not also a separate title mention."""
    found = analyzer.analyze(["King Charles hosted the French president."], [ON])[0].mentions
    assert [(m.id, m.country) for m in found if STATE in m.roles] == [
        ("charles-iii", "GB"), ("emmanuel-macron", "FR")]


def test_title_without_a_name_resolves_to_the_holder_on_the_date(analyzer: Analyzer) -> None:
    """'the Pentagon chief' is whoever held the office that day, per the gazetteer."""
    def holder(text: str, on: date) -> list[tuple[str | None, str]]:
        found = analyzer.analyze([text], [on])[0].mentions
        return [(m.id, m.name) for m in found if DEFENCE in m.roles]

    assert holder("The Pentagon chief flew to Manila.", date(2024, 7, 12)) == [
        ("lloyd-austin", "Lloyd Austin")]
    assert holder("The Pentagon chief flew to Manila.", date(2021, 6, 1)) == [
        ("lloyd-austin", "Lloyd Austin")]
    # Before the gazetteer's records start, nobody is known: the title stays a title.
    assert holder("The Pentagon chief flew to Manila.", date(1990, 6, 1)) == [
        (None, "Pentagon chief")]


def test_defense_spelling_is_defence(analyzer: Analyzer) -> None:
    """American spelling matches the same titles: 'Defense Minister'."""
    assert holders(analyzer, "Japanese Defense Minister Ivan Petrov arrived.", DEFENCE) == ["JP"]


def test_given_name_is_not_a_title(analyzer: Analyzer) -> None:
    """'Amir Hatami' is a name: the gazetteer's former minister is no head of state."""
    found = analyzer.analyze(["Amir Hatami met Russian officials in Tehran."], [ON])[0]
    assert [m.roles for m in found.mentions if m.id == "amir-hatami"] == [()]


def test_list_after_title_is_not_an_apposition(analyzer: Analyzer) -> None:
    """In 'about Starmer, the King and Iran', the King is not Starmer."""
    text = "The president talked about Starmer, the King and Iran."
    found = analyzer.analyze([text], [date(2026, 4, 23)])[0].mentions
    assert [m.roles for m in found if m.id == "keir-starmer"] == [("head-of-government",)]
