"""Rule format, loading with located errors, compilation and matching (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from ingest.errors import RuleError
from ingest.model import Analysis, Mention, Token
from ingest.nlp.gazetteer import Gazetteer
from ingest.rules.compile import compile_rule
from ingest.rules.load import load_rules
from ingest.rules.match import match_rule
from ingest.rules.spec import RuleSpec


def analysis(sentences: list[list[tuple[str, str]]], mentions: tuple[Mention, ...] = ()
             ) -> Analysis:
    """A hand-built analysis: sentences of (text, lemma) tokens joined by spaces."""
    tokens, spans, text = [], [], ""
    for i, sent in enumerate(sentences):
        start = len(text)
        for word, lemma in sent:
            tokens.append(Token(word, lemma, len(text), i))
            text += word + " "
        spans.append((start, len(text) - 1))
    return Analysis(text, tuple(tokens), tuple(spans), mentions)


def rule(when: dict, scope: str = "document", **extra: object):  # type: ignore[no-untyped-def]
    spec = RuleSpec.model_validate({"id": "r", "title": "T", "when": when, "scope": scope,
                                    **extra})
    return compile_rule(spec, None)


def person(text: str, start: int, country: str, sent: int = 0) -> Mention:
    return Mention(text, start, start + len(text), "PERSON", sent, text, country=country,
                   roles=("defence-minister",))


def test_lemma_matches_inflections() -> None:
    """`lemma: deploy` matches 'deployments' and 'deployed'."""
    doc = analysis([[("deployments", "deployment"), ("began", "begin")]])
    m = match_rule(rule({"lemma": ["deploy"]}), doc, "f")
    assert m is not None and m.terms == ("deployments",)


def test_keyword_is_whole_word_and_case_insensitive() -> None:
    """`keyword` ignores case but not word boundaries."""
    assert match_rule(rule({"keyword": "nato"}), analysis([[("NATO", "NATO")]]), "f")
    assert match_rule(rule({"keyword": "nat"}), analysis([[("NATO", "NATO")]]), "f") is None


def test_phrase_treats_hyphen_and_space_alike() -> None:
    """`phrase: long-range fires` matches 'long range fires'."""
    doc = analysis([[("long", "long"), ("range", "range"), ("fires", "fire")]])
    assert match_rule(rule({"phrase": ["long-range fires"]}), doc, "f") is not None


def test_entity_min_distinct_country() -> None:
    """`min: 2, distinct: country` needs two countries, not two people of one."""
    doc_two = analysis([[("A", "a"), ("B", "b")]], (person("A", 0, "US"), person("B", 2, "RU")))
    doc_one = analysis([[("A", "a"), ("B", "b")]], (person("A", 0, "US"), person("B", 2, "US")))
    r = rule({"entity": {"role": "defence-minister", "min": 2, "distinct": "country"}})
    assert match_rule(r, doc_two, "f") is not None
    assert match_rule(r, doc_one, "f") is None


def test_sentence_scope_requires_cooccurrence() -> None:
    """Under `scope: sentence` every leaf of `all` must hold in the same sentence."""
    doc = analysis([[("missile", "missile")], [("deployed", "deploy")]])
    when = {"all": [{"lemma": "missile"}, {"lemma": "deploy"}]}
    assert match_rule(rule(when, "document"), doc, "f") is not None
    assert match_rule(rule(when, "sentence"), doc, "f") is None


def test_not_excludes() -> None:
    """`not` vetoes a sentence that contains its condition."""
    doc = analysis([[("denied", "deny"), ("deploying", "deploy")]])
    when = {"all": [{"lemma": "deploy"}, {"not": {"lemma": "deny"}}]}
    assert match_rule(rule(when, "sentence"), doc, "f") is None


def test_source_leaf() -> None:
    """`source` matches on the entry's feed id."""
    doc = analysis([[("x", "x")]])
    assert match_rule(rule({"source": ["wire"]}), doc, "wire") is not None
    assert match_rule(rule({"source": ["wire"]}), doc, "blog") is None


def test_regex_leaf_and_snippet() -> None:
    """`regex` finds its pattern; the snippet is the sentence holding the evidence."""
    doc = analysis([[("Nothing", "nothing")], [("SM-6", "sm-6"), ("arrives", "arrive")]])
    m = match_rule(rule({"regex": r"SM-\d"}), doc, "f")
    assert m is not None and m.terms == ("SM-6",) and m.snippet == "SM-6 arrives"


def test_node_needs_exactly_one_key() -> None:
    """A condition with two keys is rejected with a clear message."""
    with pytest.raises(ValueError, match="exactly one"):
        RuleSpec.model_validate({"id": "r", "title": "t",
                                 "when": {"keyword": "a", "lemma": "b"}})


def test_load_error_names_file_and_line(tmp_path: Path, gazetteer: Gazetteer) -> None:
    """A misspelt key is reported as file:line: field: message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\ntitle: Bad\nwhen:\n  all:\n    - lemma: [x]\n    - entty: {}\n")
    with pytest.raises(RuleError) as info:
        load_rules([bad], gazetteer)
    assert f"{bad}:6:" in str(info.value)
    assert "entty" in str(info.value)


def test_unknown_role_is_an_error(tmp_path: Path, gazetteer: Gazetteer) -> None:
    """A role the gazetteer does not define is caught when the rule is loaded."""
    bad = tmp_path / "role.yaml"
    bad.write_text("id: r\ntitle: R\nwhen:\n  entity: {role: defense-ministre}\n")
    with pytest.raises(RuleError, match=r"role\.yaml:4:.*unknown role"):
        load_rules([bad], gazetteer)


def test_bad_regex_is_located(tmp_path: Path) -> None:
    """A regex that does not compile is reported with its line."""
    bad = tmp_path / "re.yaml"
    bad.write_text("id: r\ntitle: R\nwhen:\n  any:\n    - regex: '(unclosed'\n")
    with pytest.raises(RuleError, match=r"re\.yaml:5:.*regex does not compile"):
        load_rules([bad], None)


def test_invalid_yaml_is_located(tmp_path: Path) -> None:
    """Broken YAML syntax is reported with a line number."""
    bad = tmp_path / "syntax.yaml"
    bad.write_text("id: r\ntitle: [unclosed\nwhen: {}\n")
    with pytest.raises(RuleError, match=r"syntax\.yaml:\d+: not valid YAML"):
        load_rules([bad], None)


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    """Two rules with one id are an error naming both places."""
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text("id: same\ntitle: T\nwhen: {keyword: x}\n")
    with pytest.raises(RuleError, match="already used"):
        load_rules([tmp_path], None)


def test_rules_dir_skips_gazetteer(ruleset) -> None:  # type: ignore[no-untyped-def]
    """The shipped rules folder loads one rule per rule file, and neither the gazetteer, the
    term lists nor the schema as rules."""
    files = {p.stem for p in (REPO / "rules").glob("*.yaml") if p.name != "entities.yaml"}
    assert len(files) >= 12
    assert {r.id for r in ruleset.rules} == files


def parsed(words: list[tuple[str, str, int, str, str]]) -> Analysis:
    """A one-sentence analysis from (text, lemma, head, dep, pos) tuples."""
    tokens, text = [], ""
    for word, lemma, head, dep, pos in words:
        tokens.append(Token(word, lemma, len(text), 0, head, dep, pos))
        text += word + " "
    return Analysis(text, tuple(tokens), ((0, len(text) - 1),), ())


def test_action_needs_the_weapon_as_object() -> None:
    """`action` fires when the missile is what is deployed, not where troops go."""
    r = rule({"action": {"verb": ["deploy"], "object": {"lemma": ["missile"]}}})
    deployed_missiles = parsed([("Russia", "russia", 1, "nsubj", "PROPN"),
                                ("deployed", "deploy", 1, "ROOT", "VERB"),
                                ("missiles", "missile", 1, "dobj", "NOUN")])
    police_at_factory = parsed([("Police", "police", 1, "nsubjpass", "NOUN"),
                                ("deployed", "deploy", 1, "ROOT", "VERB"),
                                ("outside", "outside", 1, "prep", "ADP"),
                                ("missile", "missile", 4, "compound", "NOUN"),
                                ("factory", "factory", 2, "pobj", "NOUN")])
    assert match_rule(r, deployed_missiles, "f") is not None
    assert match_rule(r, police_at_factory, "f") is None


def test_action_on_noun_with_of_complement() -> None:
    """'deployment of cruise missiles' counts when the rule lists the noun 'deployment'."""
    r = rule({"action": {"noun": ["deployment"], "object": {"lemma": ["missile"]}}})
    doc = parsed([("deployment", "deployment", 0, "ROOT", "NOUN"),
                  ("of", "of", 0, "prep", "ADP"),
                  ("cruise", "cruise", 3, "compound", "NOUN"),
                  ("missiles", "missile", 1, "pobj", "NOUN")])
    m = match_rule(r, doc, "f")
    assert m is not None and set(m.terms) == {"deployment", "missiles"}
    only_verb = rule({"action": {"verb": ["deploy"], "object": {"lemma": ["missile"]}}})
    assert match_rule(only_verb, doc, "f") is None


def test_action_subject() -> None:
    """`subject` matches who acts: 'Patriot batteries arrived'."""
    r = rule({"action": {"verb": ["arrive"], "subject": {"keyword": ["Patriot"]}}})
    doc = parsed([("Patriot", "patriot", 1, "compound", "PROPN"),
                  ("batteries", "battery", 2, "nsubj", "NOUN"),
                  ("arrived", "arrive", 2, "ROOT", "VERB")])
    assert match_rule(r, doc, "f") is not None


def test_action_needs_an_argument() -> None:
    """An `action` without object or subject is rejected at load time."""
    with pytest.raises(ValueError, match="needs `object`, `subject`"):
        RuleSpec.model_validate({"id": "r", "title": "t", "when": {"action": {"verb": "x"}}})
    with pytest.raises(ValueError, match="needs `verb`, `noun`"):
        RuleSpec.model_validate({"id": "r", "title": "t",
                                 "when": {"action": {"object": {"keyword": "x"}}}})


def test_each_regex_compiles_on_its_own() -> None:
    """Back-references and inline flags work per regex, as if each stood alone."""
    r = rule({"regex": [r"(a)\1", r"(b)\1", r"(?s)x.y"]})
    assert match_rule(r, analysis([[("bb", "bb")]]), "f") is not None
    assert match_rule(r, analysis([[("aa", "aa")]]), "f") is not None
