"""Rule leaves on real analyses: term lists, near, scoped nodes, paragraphs, negation, language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path

import pytest

from ingest.errors import RuleError
from ingest.model import Analysis
from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.language import declared, detect
from ingest.nlp.pipeline import Analyzer
from ingest.rules.compile import CompiledRule, compile_rule
from ingest.rules.load import load_lists, load_rules
from ingest.rules.match import applies, match_all, match_rule
from ingest.rules.spec import RuleSpec

ON = date(2024, 7, 11)


Analyse = Callable[[str], Analysis]


@pytest.fixture
def analyse(analyzer: Analyzer) -> Analyse:
    """Analyse one text with the shared spaCy analyzer."""
    def run(text: str) -> Analysis:
        return analyzer.analyze([text], [ON])[0]
    return run


def rule(when: Mapping[str, object], gaz: Gazetteer | None = None,
         lists: Mapping[str, tuple[str, ...]] | None = None, **extra: object) -> CompiledRule:
    spec = RuleSpec.model_validate({"id": "r", "title": "T", "when": when, **extra})
    return compile_rule(spec, gaz, lists=lists)


def leaves_of(rule_: CompiledRule, doc: Analysis) -> set[str]:
    m = match_rule(rule_, doc, "feed")
    assert m is not None
    return {h.leaf for h in m.hits}


# --- term lists -------------------------------------------------------------------------

SHIPS: tuple[str, ...] = ("warship", "frigate", "destroyer", "aircraft carrier")
VERBS: tuple[str, ...] = ("deploy", "send", "dispatch")
NOUNS: tuple[str, ...] = ("deployment", "dispatch")


def write_rules(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> text) under ``root/rules`` and return that folder."""
    folder = root / "rules"
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


LISTS = {"lists/ships.yaml": "description: Warships\nterms: [warship, frigate, destroyer, "
                             "aircraft carrier]\n",
         "lists/verbs.yaml": "terms:\n  - deploy\n  - send\n  - dispatch\n",
         "lists/nouns.yaml": "terms: [deployment, dispatch]\n"}


def test_lists_are_loaded_by_file_stem(tmp_path: Path) -> None:
    """Each lists/NAME.yaml becomes the list NAME holding its terms in order."""
    folder = write_rules(tmp_path, LISTS)
    lists, problems = load_lists([folder])
    assert problems == []
    assert lists == {"ships": SHIPS, "verbs": VERBS, "nouns": NOUNS}


def test_list_in_keyword_lemma_and_phrase(analyse: Analyse) -> None:
    """`list:ships` in keyword, lemma and phrase stands for the list's terms."""
    lists = {"ships": SHIPS}
    doc = analyse("Two frigates and an aircraft-carrier sailed into the strait.")
    lemma = match_rule(rule({"lemma": ["list:ships"]}, lists=lists), doc, "f")
    phrase = match_rule(rule({"phrase": ["list:ships"]}, lists=lists), doc, "f")
    keyword = match_rule(rule({"keyword": ["submarine", "list:ships"]}, lists=lists),
                         analyse("A destroyer sailed."), "f")
    assert lemma is not None and "frigates" in lemma.terms
    assert phrase is not None and phrase.terms == ("aircraft-carrier",)
    assert keyword is not None and keyword.terms == ("destroyer",)
    assert match_rule(rule({"keyword": ["list:ships"]}, lists=lists),
                      analyse("A submarine sailed."), "f") is None


def test_list_in_near_terms_and_with(analyse: Analyse) -> None:
    """`near.terms` and `near.with` accept lists."""
    lists = {"ships": SHIPS, "verbs": VERBS}
    r = rule({"near": {"terms": ["list:ships"], "with": ["list:verbs"], "within": 3}},
             lists=lists)
    m = match_rule(r, analyse("Britain will dispatch a frigate to the Gulf."), "f")
    assert m is not None and set(m.terms) == {"dispatch", "frigate"}


def test_list_in_action_verb_and_noun(analyse: Analyse) -> None:
    """`action.verb` and `action.noun` accept lists; the object can use one too."""
    lists = {"ships": SHIPS, "verbs": VERBS, "nouns": NOUNS}
    r = rule({"action": {"verb": ["list:verbs"], "noun": ["list:nouns"],
                         "object": {"lemma": ["list:ships"]}}}, lists=lists)
    by_verb = match_rule(r, analyse("France sent two frigates to the Red Sea."), "f")
    by_noun = match_rule(r, analyse("The deployment of destroyers was announced."), "f")
    assert by_verb is not None and {"sent", "frigates"} <= set(by_verb.terms)
    assert by_noun is not None and {"deployment", "destroyers"} <= set(by_noun.terms)


def test_rules_use_lists_beside_them(tmp_path: Path, analyse: Analyse) -> None:
    """load_rules reads lists/ beside the rules folder and expands `list:NAME`."""
    folder = write_rules(tmp_path, {**LISTS, "ships.yaml": (
        "id: ships\ntitle: Ships\nwhen:\n  all:\n    - lemma: [list:ships]\n"
        "    - action:\n        verb: [list:verbs]\n        object: {lemma: [list:ships]}\n")})
    ruleset = load_rules([folder], None)
    assert [r.id for r in ruleset.rules] == ["ships"]
    doc = analyse("Japan will deploy a destroyer near the islands.")
    assert [m.rule_id for m in match_all(ruleset.rules, doc, "f")] == ["ships"]
    assert match_all(ruleset.rules, analyse("Japan will deploy troops."), "f") == []


def test_rule_file_uses_lists_of_list_dirs(tmp_path: Path) -> None:
    """A rule file given on its own finds lists through `list_dirs` (e.g. the live rules)."""
    live = write_rules(tmp_path / "live", LISTS)
    draft = tmp_path / "draft.yaml"
    draft.write_text("id: draft\ntitle: D\nwhen: {keyword: [list:ships]}\n", encoding="utf-8")
    assert [r.id for r in load_rules([draft], None, list_dirs=[live]).rules] == ["draft"]
    with pytest.raises(RuleError, match="no term list 'ships'"):
        load_rules([draft], None)


def test_missing_list_is_located_and_names_known_lists(tmp_path: Path) -> None:
    """`list:NAME` with no such file: file:line of the item, and the lists that exist."""
    folder = write_rules(tmp_path, {**LISTS, "bad.yaml": (
        "id: bad\ntitle: Bad\nwhen:\n  all:\n    - keyword: [navy]\n"
        "    - lemma:\n        - frigate\n        - list:shipz\n")})
    with pytest.raises(RuleError) as info:
        load_rules([folder], None)
    [problem] = info.value.problems
    assert problem.file == str(folder / "bad.yaml")
    assert problem.line == 8
    assert "no term list 'shipz'" in problem.message
    assert "(lists defined: nouns, ships, verbs)" in problem.message
    assert "rules/lists/shipz.yaml" in problem.message


def test_missing_list_in_action_is_located(tmp_path: Path) -> None:
    """A missing list deep in an action is reported at its own line."""
    folder = write_rules(tmp_path, {"act.yaml": (
        "id: act\ntitle: Act\nwhen:\n  action:\n    verb: [deploy]\n"
        "    object:\n      lemma: [list:weapons]\n")})
    with pytest.raises(RuleError) as info:
        load_rules([folder], None)
    assert str(info.value).startswith(f"{folder / 'act.yaml'}:7: ")
    assert "(lists defined: none)" in str(info.value)


def test_list_file_with_a_bad_key_is_located(tmp_path: Path) -> None:
    """A misspelt key in a list file is an error at its line (and the list is missing)."""
    folder = write_rules(tmp_path, {"lists/ships.yaml": "description: Ships\nterm: [frigate]\n"})
    with pytest.raises(RuleError) as info:
        load_rules([folder], None)
    text = str(info.value)
    assert f"{folder / 'lists' / 'ships.yaml'}:2: term: unknown field" in text
    assert "terms" in text  # the missing required key is named too


def test_list_file_holding_a_list_reference_is_rejected(tmp_path: Path) -> None:
    """Lists hold plain terms: `list:other` inside a list is located and refused."""
    folder = write_rules(tmp_path, {"lists/a.yaml": "terms:\n  - frigate\n  - list:b\n",
                                    "lists/b.yaml": "terms: [destroyer]\n"})
    with pytest.raises(RuleError) as info:
        load_rules([folder], None)
    assert [str(p) for p in info.value.problems] == [
        f"{folder / 'lists' / 'a.yaml'}:1: term 'list:b': a list holds plain terms only"]


def test_empty_list_file_is_rejected(tmp_path: Path) -> None:
    """A list without terms is an error naming the file."""
    folder = write_rules(tmp_path, {"lists/none.yaml": "terms: []\n"})
    with pytest.raises(RuleError, match=r"none\.yaml:1: terms"):
        load_rules([folder], None)


def test_list_files_are_not_rules(tmp_path: Path) -> None:
    """Files under lists/ are never read as rules."""
    folder = write_rules(tmp_path, {**LISTS, "r.yaml": "id: r\ntitle: R\nwhen: {keyword: x}\n"})
    assert [r.id for r in load_rules([folder], None).rules] == ["r"]


# --- near -------------------------------------------------------------------------------

def test_near_entity_inside_window(analyse: Analyse, gazetteer: Gazetteer) -> None:
    """A term within `within` tokens of a selected entity matches; both are evidence."""
    r = rule({"near": {"terms": ["missile"], "entity": {"label": "GPE"}, "within": 3}},
             gazetteer)
    m = match_rule(r, analyse("Germany will host missiles from 2026."), "f")
    assert m is not None
    assert [(h.kind, h.text, h.leaf) for h in m.hits] == [
        ("entity", "Germany", "when.near"), ("near", "missiles", "when.near")]
    assert [e.name for e in m.entities] == ["Germany"]


def test_near_entity_outside_window(analyse: Analyse, gazetteer: Gazetteer) -> None:
    """The same words further apart than `within` tokens do not match."""
    r = rule({"near": {"terms": ["missile"], "entity": {"label": "GPE"}, "within": 5}},
             gazetteer)
    far = analyse("Germany said on Tuesday that after many months of careful study it would "
                  "buy new missiles.")
    assert match_rule(r, far, "f") is None


def test_near_entity_must_be_selected(analyse: Analyse, gazetteer: Gazetteer) -> None:
    """Only entities the `entity` filter selects count as partners."""
    r = rule({"near": {"terms": ["missile"], "entity": {"country": "FR"}, "within": 3}},
             gazetteer)
    assert match_rule(r, analyse("Germany will host missiles from 2026."), "f") is None


def test_near_with_inside_and_outside(analyse: Analyse) -> None:
    """`with` terms count the token distance, in any word form."""
    r = rule({"near": {"terms": ["missile"], "with": ["launch"], "within": 2}})
    m = match_rule(r, analyse("North Korea launched a missile on Monday."), "f")
    assert m is not None and m.terms == ("launched", "missile")
    assert {h.leaf for h in m.hits} == {"when.near"}
    assert match_rule(r, analyse("North Korea launched what Seoul described as a ballistic "
                                 "missile."), "f") is None


def test_near_within_is_inclusive(analyse: Analyse) -> None:
    """Two tokens apart is within 2 but not within 1."""
    doc = analyse("North Korea launched a missile on Monday.")
    assert match_rule(rule({"near": {"terms": ["missile"], "with": ["launch"], "within": 2}}),
                      doc, "f") is not None
    assert match_rule(rule({"near": {"terms": ["missile"], "with": ["launch"], "within": 1}}),
                      doc, "f") is None


def test_near_term_is_not_its_own_partner(analyse: Analyse) -> None:
    """With the same word in terms and with, two occurrences are needed."""
    r = rule({"near": {"terms": ["missile"], "with": ["missile"], "within": 4}})
    assert match_rule(r, analyse("A missile was fired."), "f") is None
    assert match_rule(r, analyse("Missile after missile was fired."), "f") is not None


def test_near_multiword_terms(analyse: Analyse) -> None:
    """Multi-word terms are matched by their stems and measured from their ends."""
    r = rule({"near": {"terms": ["cruise missile"], "with": ["fire"], "within": 2}})
    m = match_rule(r, analyse("The navy fired cruise missiles at the port."), "f")
    assert m is not None and "cruise missiles" in m.terms


# --- scoped nodes and paragraph rules ---------------------------------------------------

DEPLOY_UNLESS_DENIED = {"all": [{"lemma": ["deploy"]}, {"not": {
    "scope": "sentence", "all": [{"lemma": ["deny"]}, {"lemma": ["troop"]}]}}]}


def test_sentence_scoped_not_ignores_words_in_different_sentences(analyse: Analyse) -> None:
    """`not: {scope: sentence, ...}` does not veto when its words are in two sentences."""
    doc = analyse("The army deployed troops to the border. Officials denied a report about "
                  "fuel shortages.")
    m = match_rule(rule(DEPLOY_UNLESS_DENIED), doc, "f")
    assert m is not None and m.terms == ("deployed",)


def test_sentence_scoped_not_vetoes_within_one_sentence(analyse: Analyse) -> None:
    """It vetoes when the denial and the troops share a sentence."""
    doc = analyse("The army deployed tanks to the border. Officials denied sending troops.")
    assert match_rule(rule(DEPLOY_UNLESS_DENIED), doc, "f") is None


def test_unscoped_not_vetoes_across_the_document(analyse: Analyse) -> None:
    """Without the node scope the same `not` vetoes across sentences (the contrast)."""
    when = {"all": [{"lemma": ["deploy"]}, {"not": {"all": [{"lemma": ["deny"]},
                                                            {"lemma": ["troop"]}]}}]}
    doc = analyse("The army deployed troops to the border. Officials denied a report about "
                  "fuel shortages.")
    assert match_rule(rule(when), doc, "f") is None


def test_sentence_scoped_all_in_a_document_rule(analyse: Analyse) -> None:
    """A positive scoped node holds only when its leaves share a sentence; hits keep paths."""
    when = {"all": [{"keyword": ["Pentagon"]},
                    {"scope": "sentence", "all": [{"lemma": ["missile"]}, {"lemma": ["deploy"]}]}]}
    together = analyse("The Pentagon spoke. Missiles will be deployed in Germany.")
    apart = analyse("The Pentagon spoke about missiles. Troops will be deployed in Germany.")
    assert leaves_of(rule(when), together) == {
        "when.all[0].keyword", "when.all[1].all[0].lemma", "when.all[1].all[1].lemma"}
    assert match_rule(rule(when), apart, "f") is None


PARAGRAPHS_TOGETHER = ("Tensions rise\n\nThe missiles are new. They will be deployed in spring."
                       "\n\nOther news follows.")
PARAGRAPHS_APART = "Tensions rise\n\nThe missiles are new.\n\nTroops will be deployed in spring."
MISSILE_AND_DEPLOY = {"all": [{"lemma": ["missile"]}, {"lemma": ["deploy"]}]}


def test_paragraph_scope_spans_sentences_of_one_paragraph(analyse: Analyse) -> None:
    """`scope: paragraph` matches words in two sentences of one paragraph."""
    doc = analyse(PARAGRAPHS_TOGETHER)
    m = match_rule(rule(MISSILE_AND_DEPLOY, scope="paragraph"), doc, "f")
    assert m is not None and m.terms == ("missiles", "deployed")
    assert match_rule(rule(MISSILE_AND_DEPLOY, scope="sentence"), doc, "f") is None


def test_paragraph_scope_needs_one_paragraph(analyse: Analyse) -> None:
    """Words in different paragraphs (blank line between) do not match together."""
    doc = analyse(PARAGRAPHS_APART)
    assert match_rule(rule(MISSILE_AND_DEPLOY, scope="paragraph"), doc, "f") is None
    assert match_rule(rule(MISSILE_AND_DEPLOY, scope="document"), doc, "f") is not None


def test_paragraph_scoped_node(analyse: Analyse) -> None:
    """A node with `scope: paragraph` inside a document rule."""
    when = {"all": [{"keyword": ["tensions"]}, {"scope": "paragraph", **MISSILE_AND_DEPLOY}]}
    assert match_rule(rule(when), analyse(PARAGRAPHS_TOGETHER), "f") is not None
    assert match_rule(rule(when), analyse(PARAGRAPHS_APART), "f") is None


# --- negated actions --------------------------------------------------------------------

def deploying(negated: bool | None) -> dict[str, object]:
    return {"action": {"verb": ["deploy", "send"], "noun": ["deployment"],
                       "object": {"lemma": ["troop", "warship", "missile"]}, "negated": negated}}


NOT_NEGATED = deploying(False)
NEGATED_TEXTS = ["The army did not deploy troops to the border.",
                 "The ministry denied plans to deploy troops near the border.",
                 "Officials ruled out sending warships to the strait.",
                 "There are no plans to deploy troops in the region."]
AFFIRMED_TEXTS = ["The army deployed troops to the border.",
                  "The army will deploy troops to the border next week.",
                  "Britain will send warships to the Gulf."]


@pytest.mark.parametrize("text", NEGATED_TEXTS)
def test_negated_false_rejects_denied_actions(analyse: Analyse, text: str) -> None:
    """`negated: false` rejects negated, denied and ruled-out actions..."""
    doc = analyse(text)
    assert match_rule(rule(NOT_NEGATED, scope="sentence"), doc, "f") is None
    assert match_rule(rule(deploying(None), scope="sentence"), doc, "f") is not None


@pytest.mark.parametrize("text", AFFIRMED_TEXTS)
def test_negated_false_keeps_affirmed_actions(analyse: Analyse, text: str) -> None:
    """...and keeps actions that happened or will happen."""
    m = match_rule(rule(NOT_NEGATED, scope="sentence"), analyse(text), "f")
    assert m is not None
    assert {h.leaf for h in m.hits} == {"when.action", "when.action.object.lemma"}


def test_negated_true_selects_only_denials(analyse: Analyse) -> None:
    """`negated: true` is the opposite: denials only."""
    r = rule(deploying(True), scope="sentence")
    assert all(match_rule(r, analyse(t), "f") is not None for t in NEGATED_TEXTS)
    assert all(match_rule(r, analyse(t), "f") is None for t in AFFIRMED_TEXTS)


# --- language ---------------------------------------------------------------------------

def test_language_restricts_rules(analyse: Analyse) -> None:
    """`language: [en]` reads English and unknown-language entries, not French ones."""
    r = rule({"lemma": ["missile"]}, language=["en"])
    doc = analyse("Germany will host missiles.")
    assert [m.rule_id for m in match_all([r], doc, "f", language="en")] == ["r"]
    assert [m.rule_id for m in match_all([r], doc, "f", language=None)] == ["r"]
    assert match_all([r], doc, "f", language="fr") == []


def test_rule_without_language_reads_every_language(analyse: Analyse) -> None:
    """No `language`: every entry, whatever its language."""
    r = rule({"lemma": ["missile"]})
    assert match_all([r], analyse("Germany will host missiles."), "f", language="de")


def test_applies_honours_enabled_and_language() -> None:
    """A disabled rule applies to nothing; a language list filters known languages."""
    assert not applies(rule({"keyword": "x"}, enabled=False), None)
    multi = rule({"keyword": "x"}, language=["en", "fr"])
    assert applies(multi, "fr") and applies(multi, None) and not applies(multi, "de")


def test_match_all_keeps_rule_order_and_skips_disabled(analyse: Analyse) -> None:
    """match_all returns matches in rule order and leaves disabled rules out."""
    def named(rule_id: str, **extra: object) -> CompiledRule:
        spec = RuleSpec.model_validate({"id": rule_id, "title": "T",
                                        "when": {"lemma": ["missile"]}, **extra})
        return compile_rule(spec, None)

    rules = [named("b"), named("off", enabled=False), named("a", scope="sentence")]
    out = match_all(rules, analyse("Germany will host missiles."), "f")
    assert [m.rule_id for m in out] == ["b", "a"]


@pytest.mark.parametrize(("text", "code"), [
    ("The government announced on Tuesday that new missiles would be deployed in the east "
     "of the country next year.", "en"),
    ("Le gouvernement a annoncé mardi que de nouveaux missiles seraient déployés dans l'est "
     "du pays l'année prochaine.", "fr"),
    ("Die Regierung kündigte am Dienstag an, dass im nächsten Jahr neue Raketen im Osten des "
     "Landes stationiert werden sollen.", "de")])
def test_detect_language(text: str, code: str) -> None:
    """English, French and German news sentences are recognised."""
    assert detect(text) == code


def test_detect_short_text_is_unknown() -> None:
    """Too short a text (under MIN_CHARS after squeezing spaces) is unknown."""
    assert detect("Missiles deployed") is None
    assert detect("Raketen   \n\n  stationiert") is None
    assert detect("") is None


@pytest.mark.parametrize(("tag", "code"), [("en-GB", "en"), ("en", "en"), ("fr_FR", "fr"),
                                           (" DE-at ", "de"), ("english", None), ("", None),
                                           (None, None), ("e1", None)])
def test_declared_language(tag: str | None, code: str | None) -> None:
    """A feed's declared language tag is reduced to its two-letter code, junk to None."""
    assert declared(tag) == code


# --- hit paths --------------------------------------------------------------------------

def test_hits_carry_their_leaf_path(analyse: Analyse, gazetteer: Gazetteer) -> None:
    """Each hit names the leaf that produced it, as a path into the rule."""
    r = rule({"all": [{"entity": {"label": "GPE"}},
                      {"any": [{"keyword": ["submarine"]}, {"lemma": ["missile"]}]}]}, gazetteer)
    m = match_rule(r, analyse("Germany will host missiles from 2026."), "f")
    assert m is not None
    assert [(h.text, h.leaf) for h in m.hits] == [("Germany", "when.all[0].entity"),
                                                  ("missiles", "when.all[1].any[1].lemma")]


# --- phrasal verbs in action ------------------------------------------------------------

@pytest.mark.parametrize(("text", "fires"), [
    ("Russia called up 300,000 reservists on Wednesday.", True),
    ("The ministry called the reservists up for training.", True),
    ("Germany handed over the IRIS-T system to Ukraine.", True),
    ("Russia called the reservists a threat to order.", False),  # no particle: not "call up"
    ("Germany handed the reservists a pay rise.", False),
])
def test_action_phrasal_verbs_need_their_particle(analyse: Analyse, text: str,
                                                 fires: bool) -> None:
    """`verb: [call up, hand over]` matches the verb only with its particle."""
    r = rule({"action": {"verb": ["call up", "hand over"],
                         "object": {"lemma": ["reservist", "system"]}}})
    assert (match_rule(r, analyse(text), "feed") is not None) is fires
    if fires:  # and the shared index offers the rule (anchored on the verb)
        from ingest.rules.load import RuleSet
        assert RuleSet((r,)).candidates(analyse(text), "feed") == (r,)
