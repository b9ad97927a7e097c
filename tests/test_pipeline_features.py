"""The spaCy pipeline runs only what the rules read, and can grow back without reloading."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.pipeline import (
    FULL,
    MINIMAL,
    PARAGRAPHS,
    Analyzer,
    NlpFeatures,
    components_for,
    configure,
    features_needed,
    load_model,
)
from ingest.rules.compile import Branch, CompiledRule, compile_rule
from ingest.rules.spec import RuleSpec

SM = ["tok2vec", "tagger", "parser", PARAGRAPHS, "senter", "attribute_ruler", "lemmatizer",
      "ner"]
TEXT = ("Russia deployed Iskander missiles near the border on Monday. NATO said it was "
        "watching.\n\nDefence Minister Boris Pistorius visited Vilnius")
ON = date(2026, 11, 25)


def rule(when: dict, enabled: bool = True) -> CompiledRule:
    spec = RuleSpec.model_validate({"id": "r", "title": "T", "when": when, "enabled": enabled})
    return compile_rule(spec, None)


def test_words_entities_and_sources_need_no_parse_nor_lemmas() -> None:
    """Keyword, phrase, regex, entity and source leaves read only text and entities."""
    rules = [rule({"all": [{"keyword": ["missile"]}, {"entity": {"label": ["gpe"]}}]}),
             rule({"any": [{"phrase": ["air defence"]}, {"regex": ["x+"]},
                           {"not": {"source": ["wire"]}}]})]
    assert features_needed(rules) == MINIMAL


def test_lemma_and_near_need_lemmas_only() -> None:
    """Lemma and near leaves need lemmas, not the parser."""
    assert features_needed([rule({"lemma": ["deploy"]})]) == NlpFeatures(parser=False,
                                                                        lemmas=True)
    near = rule({"near": {"terms": ["strike"], "with": ["drone"]}})
    assert features_needed([near]) == NlpFeatures(parser=False, lemmas=True)


def test_action_anywhere_needs_everything() -> None:
    """An action leaf, even deep under `not` and a node scope, needs the parser."""
    deep = rule({"any": [{"keyword": ["x"]}, {"not": {"scope": "sentence", "action": {
        "verb": ["deploy"], "object": {"keyword": ["missile"]}}}}]})
    assert features_needed([deep]) == FULL


def test_disabled_rules_need_nothing() -> None:
    """A disabled rule does not keep the parser running."""
    off = rule({"action": {"verb": ["deploy"], "object": {"keyword": ["missile"]}}},
               enabled=False)
    assert features_needed([off]) == MINIMAL


def test_unknown_node_types_need_everything() -> None:
    """A node class this module does not know is assumed to read everything."""

    @dataclass(frozen=True)
    class FutureLeaf:
        word: str

    r = rule({"keyword": ["x"]})
    future = CompiledRule(r.spec, Branch("all", (FutureLeaf("x"),)), "f", None)
    assert features_needed([future]) == FULL


def test_components_for_each_feature_set() -> None:
    """Sentences come from the parser or senter; lemmas bring tagger and attribute ruler."""
    assert components_for(FULL, SM) == set(SM) - {"senter"}
    assert components_for(MINIMAL, SM) == {PARAGRAPHS, "senter", "ner"}
    assert components_for(NlpFeatures(parser=False, lemmas=True), SM) == {
        "tok2vec", "tagger", PARAGRAPHS, "senter", "attribute_ruler", "lemmatizer", "ner"}
    no_senter = [n for n in SM if n != "senter"] + ["custom"]
    assert components_for(MINIMAL, no_senter) == {"tok2vec", "tagger", "parser", PARAGRAPHS,
                                                  "attribute_ruler", "ner", "custom"}


@pytest.fixture(scope="module")
def nlp():  # type: ignore[no-untyped-def]
    """A model of our own: these tests switch its components on and off."""
    return load_model("en_core_web_sm", MINIMAL)


def test_load_model_runs_only_what_is_asked(nlp) -> None:  # type: ignore[no-untyped-def]
    """load_model(name, MINIMAL) runs paragraph breaks, senter and NER; the rest stays loaded."""
    assert nlp.pipe_names == [PARAGRAPHS, "senter", "ner"]
    assert {"parser", "lemmatizer", "tagger"} <= set(nlp.component_names)


def test_minimal_analysis_has_sentences_entities_and_no_parse(
        nlp, gazetteer: Gazetteer) -> None:  # type: ignore[no-untyped-def]
    """Without parser or lemmatizer: head -1, no dep or POS, lemma = lower text."""
    [a] = Analyzer(nlp, gazetteer, features=MINIMAL).analyze([TEXT], [ON])
    assert len(a.sentences) >= 3
    assert a.text[a.sentences[-1][0]:].startswith("Defence Minister")  # blank line: new sentence
    assert {m.name for m in a.mentions} >= {"Russia", "NATO"}
    assert all(t.head == -1 and t.dep == "" and t.pos == "" for t in a.tokens)
    assert all(t.lemma == t.text.lower() for t in a.tokens)


def test_features_grow_back_without_reloading(nlp, gazetteer: Gazetteer) -> None:  # type: ignore[no-untyped-def]
    """One model object: lemmas-only, then full, then minimal again, by configure()."""
    analyzer = Analyzer(nlp, gazetteer, features=NlpFeatures(parser=False, lemmas=True))
    [lemmas] = analyzer.analyze([TEXT], [ON])
    deployed = next(t for t in lemmas.tokens if t.text == "deployed")
    assert deployed.lemma == "deploy" and deployed.pos == "VERB" and deployed.head == -1
    analyzer.configure(FULL)
    [full] = analyzer.analyze([TEXT], [ON])
    assert analyzer.nlp is nlp and "parser" in nlp.pipe_names
    deployed = next(t for t in full.tokens if t.text == "deployed")
    assert deployed.dep == "ROOT" and any(t.dep == "dobj" for t in full.tokens)
    assert [t.lemma for t in full.tokens] == [t.lemma for t in lemmas.tokens]
    assert {(m.start, m.end, m.label) for m in full.mentions} == {
        (m.start, m.end, m.label) for m in lemmas.mentions}  # NER has its own embeddings
    analyzer.configure(MINIMAL)
    analyzer.analyze([TEXT], [ON])
    assert nlp.pipe_names == [PARAGRAPHS, "senter", "ner"]


def test_analyzers_sharing_a_model_keep_their_own_features(
        nlp, gazetteer: Gazetteer) -> None:  # type: ignore[no-untyped-def]
    """Each Analyzer applies its features at each batch, so a shared model cannot leak them."""
    full, minimal = Analyzer(nlp, gazetteer), Analyzer(nlp, gazetteer, features=MINIMAL)
    [a] = minimal.analyze([TEXT], [ON])
    [b] = full.analyze([TEXT], [ON])
    [c] = minimal.analyze([TEXT], [ON])
    assert a == c and all(t.head == -1 for t in c.tokens)
    assert any(t.dep for t in b.tokens)
    configure(nlp, MINIMAL)
