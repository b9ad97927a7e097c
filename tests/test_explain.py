"""Rule explanations (pure): the `when` tree node by node, on the unit that came closest."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

import pytest

from ingest.model import Analysis
from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.pipeline import Analyzer
from ingest.rules.compile import CompiledRule, compile_rule
from ingest.rules.explain import Explained, Explanation, explain, render
from ingest.rules.spec import RuleSpec

Analyse = Callable[[str], Analysis]


@pytest.fixture
def analyse(analyzer: Analyzer) -> Analyse:
    """Analyse one text with the shared spaCy analyzer."""
    def run(text: str) -> Analysis:
        return analyzer.analyze([text], [date(2024, 7, 11)])[0]
    return run


def rule(when: Mapping[str, object], gaz: Gazetteer | None = None, **extra: object) -> CompiledRule:
    spec = RuleSpec.model_validate({"id": "hosting", "title": "T", "when": when, **extra})
    return compile_rule(spec, gaz)


def nodes(tree: Explained) -> dict[str, Explained]:
    """Every node of an explanation by path (the last one wins for a shared path)."""
    out = {tree.path: tree}
    for child in tree.children:
        out.update(nodes(child))
    return out


GPE_MISSILE_NOT_DENY = {"all": [{"entity": {"label": "GPE"}}, {"lemma": ["missile"]},
                                {"not": {"lemma": ["deny"]}}]}


def test_firing_rule_shows_ticks_and_found_text(analyse: Analyse, gazetteer: Gazetteer) -> None:
    """A rule that fires: ✓ on the rule and on each leaf, with the text each leaf found."""
    r = rule(GPE_MISSILE_NOT_DENY, gazetteer, scope="sentence")
    e = explain(r, analyse("The weather was fine. Germany will host missiles from 2026."))
    assert e.fired and e.reason == ""
    assert e.unit == "Germany will host missiles from 2026."
    by_path = nodes(e.tree)
    assert by_path["when.all[0].entity"].found == ("Germany",)
    assert by_path["when.all[1].lemma"].found == ("missiles",)
    assert by_path["when.all[2]"].ok and not by_path["when.all[2].not.lemma"].ok
    assert render(e) == [
        "✓ hosting fires",
        "    on: Germany will host missiles from 2026.",
        "    ✓ all of",
        "      ✓ entity {'label': ['GPE']}  ← 'Germany'",
        "      ✓ lemma [missile]  ← 'missiles'",
        "      ✓ none of",
        "        ✗ lemma [deny]"]


def test_non_firing_rule_shows_crosses(analyse: Analyse, gazetteer: Gazetteer) -> None:
    """A rule that does not fire: ✗ on the rule, the tree and the leaf that failed."""
    r = rule({"all": [{"entity": {"label": "GPE"}}, {"lemma": ["submarine"]}]}, gazetteer)
    e = explain(r, analyse("Germany will host missiles from 2026."))
    assert not e.fired
    lines = render(e)
    assert lines[0] == "✗ hosting does not fire"
    assert "    ✗ all of" in lines
    assert "      ✓ entity {'label': ['GPE']}  ← 'Germany'" in lines
    assert "      ✗ lemma [submarine]" in lines


def test_vetoed_rule_shows_the_veto(analyse: Analyse) -> None:
    """A `not` that vetoes is ✗, its child ✓ with the vetoing words."""
    r = rule({"all": [{"lemma": ["missile"]}, {"not": {"lemma": ["deny"]}}]})
    e = explain(r, analyse("Officials denied that missiles were moved."))
    assert not e.fired
    by_path = nodes(e.tree)
    assert not by_path["when.all[1]"].ok
    assert by_path["when.all[1].not.lemma"].ok
    assert by_path["when.all[1].not.lemma"].found == ("denied",)


def test_closest_sentence_is_chosen(analyse: Analyse, gazetteer: Gazetteer) -> None:
    """With no sentence satisfying the rule, the one where most leaves hold is shown."""
    r = rule({"all": [{"entity": {"label": "GPE"}}, {"lemma": ["missile"]},
                      {"lemma": ["deploy"]}]}, gazetteer, scope="sentence")
    e = explain(r, analyse("Nothing happened today. Missiles were deployed at sea. "
                           "Germany spoke."))
    assert not e.fired
    assert e.unit == "Missiles were deployed at sea."
    by_path = nodes(e.tree)
    assert [by_path[f"when.all[{i}]{leaf}"].ok
            for i, leaf in enumerate((".entity", ".lemma", ".lemma"))] == [False, True, True]


def test_closest_sentence_does_not_reward_a_veto(analyse: Analyse,
                                                 gazetteer: Gazetteer) -> None:
    """A word under `not` that holds takes a unit further from firing, not closer."""
    r = rule(GPE_MISSILE_NOT_DENY, gazetteer, scope="sentence")
    e = explain(r, analyse("Germany denied the report. Missiles were spotted at sea."))
    # "Missiles were spotted at sea." satisfies two of the three conditions (the missile
    # and the absence of a denial); "Germany denied the report." satisfies one.
    assert e.unit == "Missiles were spotted at sea."


def test_first_sentence_that_holds_is_shown(analyse: Analyse) -> None:
    """When several sentences satisfy the rule, the first is shown."""
    r = rule({"lemma": ["missile"]}, scope="sentence")
    e = explain(r, analyse("Missiles arrived. More missiles followed."))
    assert e.fired and e.unit == "Missiles arrived."


def test_document_scope_shows_the_whole_text(analyse: Analyse) -> None:
    """A document-scoped rule is shown on the whole text, whitespace squeezed."""
    e = explain(rule({"lemma": ["missile"]}), analyse("Missiles arrived.\n\nMore   followed."))
    assert e.unit == "Missiles arrived. More followed."


def test_scoped_node_is_shown_on_its_best_sentence(analyse: Analyse) -> None:
    """A `scope: sentence` node shows its child evaluated on the sentence where it held."""
    r = rule({"all": [{"keyword": ["Pentagon"]},
                      {"scope": "sentence", "all": [{"lemma": ["missile"]},
                                                    {"lemma": ["deploy"]}]}]})
    e = explain(r, analyse("The Pentagon spoke about missiles. Missiles and tanks will be "
                           "deployed in Germany."))
    assert e.fired
    scoped = e.tree.children[1]
    assert (scoped.label, scoped.path, scoped.ok) == ("in one sentence", "when.all[1]", True)
    [inner] = scoped.children
    assert [c.found for c in inner.children] == [("Missiles",), ("deployed",)]


def test_scoped_node_that_held_nowhere(analyse: Analyse) -> None:
    """A scoped node holding in no sentence is ✗ and shows its closest sentence's leaves."""
    r = rule({"all": [{"keyword": ["Pentagon"]},
                      {"scope": "sentence", "all": [{"lemma": ["missile"]},
                                                    {"lemma": ["deploy"]}]}]})
    e = explain(r, analyse("The Pentagon spoke about missiles. Troops will be deployed."))
    assert not e.fired
    scoped = e.tree.children[1]
    assert scoped.label == "in one sentence" and not scoped.ok
    [inner] = scoped.children
    assert not inner.ok and sum(c.ok for c in inner.children) == 1


def test_action_shows_its_arguments(analyse: Analyse) -> None:
    """An action node lists its object condition, ✓ with the action and its object found."""
    r = rule({"action": {"verb": ["deploy"], "object": {"lemma": ["missile"]}}})
    e = explain(r, analyse("Russia deployed missiles."))
    assert e.fired
    assert e.tree.found == ("deployed", "missiles")
    assert [(c.label, c.ok) for c in e.tree.children] == [("object: lemma [missile]", True)]


def test_failed_action_marks_the_object_that_is_not_there(analyse: Analyse) -> None:
    """"deployed tanks": the object condition is ✗ even if a missile is mentioned elsewhere."""
    r = rule({"action": {"verb": ["deploy"], "object": {"lemma": ["missile"]}}})
    e = explain(r, analyse("Russia deployed tanks. The missiles stayed home."))
    assert not e.fired and not e.tree.ok
    assert [(c.label, c.ok) for c in e.tree.children] == [("object: lemma [missile]", False)]


def test_disabled_rule_gives_the_reason(analyse: Analyse) -> None:
    """A disabled rule does not fire even when its tree holds, and says why."""
    e = explain(rule({"lemma": ["missile"]}, enabled=False), analyse("Missiles arrived."))
    assert not e.fired and e.tree.ok
    assert e.reason == "the rule is disabled (enabled: false)"
    assert render(e)[:2] == ["✗ hosting does not fire",
                             "    (the rule is disabled (enabled: false))"]


def test_language_gives_the_reason(analyse: Analyse) -> None:
    """A rule for other languages does not fire on this one, and names both."""
    r = rule({"lemma": ["missile"]}, language=["en", "de"])
    doc = analyse("Missiles arrived.")
    e = explain(r, doc, language="fr")
    assert not e.fired
    assert e.reason == "the text is in 'fr'; the rule reads en, de"
    assert explain(r, doc, language="en").fired
    assert explain(r, doc, language=None).fired


def test_render_cuts_a_long_unit() -> None:
    """The unit line is cut to the width with an ellipsis; found texts are capped at five."""
    leaf = Explained("lemma [x]", "when.lemma", True, tuple(f"w{i}" for i in range(8)))
    e = Explanation("r", True, "word " * 50, leaf)
    lines = render(e, width=40)
    assert lines[1] == "    on: " + ("word " * 50)[:39] + "…"
    assert lines[2] == "    ✓ lemma [x]  ← 'w0', 'w1', 'w2', 'w3', 'w4'"


def test_render_indents_by_depth() -> None:
    """Each level of the tree is indented two more spaces."""
    tree = Explained("all of", "when", False, (), (
        Explained("any of", "when.all[0]", False, (), (
            Explained("keyword [a]", "when.all[0].any[0].keyword", False),)),))
    assert render(Explanation("r", False, "text", tree))[2:] == [
        "    ✗ all of", "      ✗ any of", "        ✗ keyword [a]"]
