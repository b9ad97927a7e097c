"""The rule index: anchors of each node type, and candidates that never drop a match."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REPO, shared_path

from ingest.model import Analysis, Mention, Token
from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.pipeline import Analyzer
from ingest.parse.normalize import parse_document
from ingest.rules.compile import Branch, CompiledRule, compile_rule
from ingest.rules.index import (
    RuleIndex,
    anchors,
    document_keys,
    fold_case,
    regex_anchors,
    rule_anchors,
    term_anchors,
)
from ingest.rules.match import match_all
from ingest.rules.spec import RuleSpec

NOW = datetime(2026, 11, 25, tzinfo=UTC)
# Texts that stress the index: a keyword across token boundaries, odd case folding.
TRICKY = [
    "The U.S.-led coalition struck again.\n\nKİSS ſtrike: STRASSE and Straße were closed.",
    "Defence Minister Boris Pistorius met his French counterpart in Paris on Monday.",
    "Russia deployed Iskander missiles near the border; NATO did not deploy troops.",
    "COVID19 and covid-19 cases; e-mail, e‑mail and E-MAIL; 5G towers in Berlin.",
]


def rule(when: dict, rule_id: str = "r", **extra: object) -> CompiledRule:
    spec = RuleSpec.model_validate({"id": rule_id, "title": "T", "when": when, **extra})
    return compile_rule(spec, None)


def doc(text: str, mentions: tuple[Mention, ...] = ()) -> Analysis:
    """A hand-built one-sentence analysis, tokens split on spaces."""
    tokens, pos = [], 0
    for word in text.split(" "):
        tokens.append(Token(word, word.lower(), pos, 0))
        pos += len(word) + 1
    return Analysis(text, tuple(tokens), ((0, len(text)),), mentions)


# -- anchors of each node type ----------------------------------------------------------

def test_keyword_anchors_on_its_words() -> None:
    """`keyword: U.S.-led` needs 'led'; 2-letter words count only in a term without longer
    ones; a term without either leaves the leaf open."""
    assert anchors(rule({"keyword": ["U.S.-led", "Kremlin"]}).when) == (
        frozenset({"w:led", "w:kremlin"}),)
    assert anchors(rule({"keyword": ["SS-20"]}).when) == (frozenset({"w:20"}),
                                                          frozenset({"w:ss"}))
    assert anchors(rule({"keyword": ["Kremlin", "U.S."]}).when) == ()


def test_phrase_and_lemma_anchor_on_words_and_stems() -> None:
    """A term needs each of its words (3+ letters); a lemma term each stem."""
    assert anchors(rule({"phrase": ["air-defence systems"]}).when) == (
        frozenset({"w:defence"}), frozenset({"w:systems"}), frozenset({"w:air"}))
    assert anchors(rule({"keyword": ["ballistic missile", "ICBM"]}).when) == (
        frozenset({"w:ballistic", "w:icbm"}), frozenset({"w:missile", "w:icbm"}))
    assert anchors(rule({"lemma": ["deployments", "cruise missile"]}).when) == (
        frozenset({"s:deploy", "s:missil"}), frozenset({"s:deploy", "s:cruis"}))


def test_not_is_unanchored() -> None:
    """A `not` needs nothing."""
    assert anchors(rule({"not": {"keyword": ["missile"]}}).when) == ()


def test_regex_needs_trigrams_of_its_literal_runs() -> None:
    """Literal runs give trigram clauses; alternations one clause; optional parts nothing."""
    assert anchors(rule({"regex": ["miss(ile)?s"]}).when) == (
        frozenset({"g:mis"}), frozenset({"g:iss"}))
    assert anchors(rule({"regex": [r"(?:deploy)+\s+\w{2}|xy[a-z]+"]}).when) == ()
    assert anchors(rule({"regex": [r"(?:tank)?s\d+", r"(?=abc)\w+"]}).when) == ()
    two = anchors(rule({"regex": ["ſtrike", "KİSS"]}).when)  # one trigram of each, 3 ways
    assert two == (frozenset({"g:str", "g:kis"}), frozenset({"g:rik", "g:iss"}),
                   frozenset({"g:ike", "g:kis"}))


def test_regex_literal_starting_a_word_needs_that_word_start() -> None:
    """After \\b, \\W, a space or ^ a literal run starts a word: 'p:' + its first letters."""
    def starts(source: str) -> set[str]:
        return {k for c in regex_anchors(re.compile(source, re.I)) for k in c
                if k.startswith("p:")}

    assert starts(r"\b(?:troops?|warships)\b") == {"p:troop", "p:warshi"}
    assert starts(r"\Wdeploy") == starts(r"^deploy") == starts(r"- deploy") == {"p:deploy"}
    assert starts(r"\bsen(?:d|t)\W+(?:\S+\s+){0,4}?(?:tanks|jets)") == {"p:sen", "p:tanks",
                                                                          "p:jets"}
    assert starts(r"a?deploy") == starts(r"(?:\S+\s+){0,4}?deploy") == set()
    assert starts(r"(?a)\bdeploy") == starts(r"\b(?a:deploy)") == set()


def test_entity_clause_per_attribute() -> None:
    """Each attribute of an entity leaf is necessary on its own; no attribute: any mention."""
    found = anchors(rule({"entity": {"role": ["defence-minister"], "label": ["person"],
                                     "country": ["de"]}}).when)
    assert set(found) == {frozenset({"r:defence-minister"}), frozenset({"l:PERSON"}),
                          frozenset({"c:DE"})}
    assert anchors(rule({"entity": {"min": 2}}).when) == (frozenset({"e:"}),)
    assert anchors(rule({"entity": {"name": ["Boris Pistorius"]}}).when) == (
        frozenset({"n:boris pistorius"}),)


def test_all_keeps_every_clause_any_unites_one_per_child() -> None:
    """`all` needs each child's clauses; `any` clauses with a key from each child."""
    both = rule({"all": [{"lemma": ["deploy"]}, {"source": ["wire"]}, {"regex": ["x"]}]})
    assert set(rule_anchors(both)) == {frozenset({"s:deploy"}), frozenset({"f:wire"})}
    either = rule({"any": [{"lemma": ["deploy"]}, {"all": [{"keyword": ["kremlin"]},
                                                            {"entity": {"label": ["gpe"]}}]}]})
    assert rule_anchors(either) == (frozenset({"s:deploy", "w:kremlin"}),
                                    frozenset({"s:deploy", "l:GPE"}))
    assert rule_anchors(rule({"any": [{"lemma": ["deploy"]}, {"regex": ["x"]}]})) == ()


def test_action_and_near_need_their_words_and_arguments() -> None:
    """An action needs its verb or noun and its object's keys; `near` both of its sides."""
    act = rule({"action": {"verb": ["deploy"], "noun": ["deployment"],
                           "object": {"lemma": ["missile"]}}})
    assert rule_anchors(act) == (frozenset({"s:deploy", "t:deployment"}),
                                 frozenset({"s:missil"}))
    near = rule({"near": {"terms": ["strike"], "entity": {"label": ["gpe"]}}})
    assert rule_anchors(near) == (frozenset({"s:strike"}), frozenset({"l:GPE"}))


def test_action_noun_found_by_lemma_or_text() -> None:
    """`noun: deployment` is found on 'deployments' (by lemma) and 'Deployment' (by text)."""
    act = rule({"action": {"noun": ["deployment"], "object": {"keyword": ["missiles"]}}}, "a")
    index = RuleIndex.build([act])
    plural = Analysis("deployments of missiles", (
        Token("deployments", "deployment", 0, 0, 0, "ROOT", "NOUN"),
        Token("of", "of", 12, 0, 0, "prep", "ADP"),
        Token("missiles", "missile", 15, 0, 1, "pobj", "NOUN")), ((0, 23),), ())
    assert match_all([act], plural, "f") and index.candidates(plural, "f") == (act,)
    upper = doc("Deployment missiles")
    tokens = (replace(upper.tokens[0], lemma="x"), upper.tokens[1])
    assert index.candidates(replace(upper, tokens=tokens), "f") == (act,)


def test_unknown_node_types_are_unanchored() -> None:
    """A node class added later is never trusted to need anything."""

    @dataclass(frozen=True)
    class FutureLeaf:
        word: str

    assert anchors(FutureLeaf("missile")) == ()
    assert anchors(Branch("all", (FutureLeaf("x"),))) == ()
    assert anchors(Branch("xor", (rule({"lemma": ["a"]}).when,))) == ()


def test_fold_case_agrees_with_re_ignorecase() -> None:
    """Characters re.IGNORECASE equates fold alike and stay letters (except iota's class)."""
    for cp in range(0x110000):
        c = chr(cp)
        if 0xD800 <= cp < 0xE000 or (c.lower() == c and c.upper() == c):
            continue
        for other in {c.lower(), c.upper(), c.casefold(), c.title()}:
            if len(other) != 1 or other == c or "\u0345" in (c, other):
                continue
            if re.fullmatch(re.escape(c), other, re.IGNORECASE):
                assert fold_case(c) == fold_case(other), (hex(cp), other)
        assert fold_case(c).isalnum() == c.isalnum() or c == "\u0345"
    assert term_anchors("ſtrike") == term_anchors("STRIKE") == (frozenset({"w:strike"}),)
    assert term_anchors("KİSS") == (frozenset({"w:kiss"}),)


def test_document_keys_cover_text_chunks_across_tokens() -> None:
    """'U.S.-led' yields 'led' even when it is one token; mentions yield their attributes."""
    m = Mention("Pistorius", 0, 9, "PERSON", 0, "Boris Pistorius", id="de-pistorius",
                country="DE", roles=("defence-minister",))
    keys = document_keys(doc("Pistorius U.S.-led"), "wire")
    assert {"w:led", "w:u", "w:s", "f:wire", "s:pistorius"} <= keys
    keys = document_keys(doc("Pistorius U.S.-led", (m,)), "wire")
    assert {"e:", "n:boris pistorius", "n:pistorius", "id:de-pistorius", "c:DE", "l:PERSON",
            "r:defence-minister"} <= keys


def test_keyword_ending_a_sentence_inside_a_written_word() -> None:
    """A sentence ending between glued tokens ("covid|nineteen") does not let `covid` match
    inside the written word: word boundaries are judged on the real text.  The index may
    still offer the rule (a superset is all it promises)."""
    tokens = (Token("covid", "covid", 0, 0), Token("nineteen", "nineteen", 5, 1),
              Token("cases", "case", 14, 1))
    a = Analysis("covidnineteen cases", tokens, ((0, 5), (5, 19)), ())
    r = rule({"keyword": ["covid"]}, scope="sentence")
    assert not match_all([r], a, "f")
    assert match_all([r], replace(a, text="covid nineteen cases"), "f")
    one_token = replace(a, tokens=(Token("covidnineteen", "covidnineteen", 0, 0),
                                   Token("cases", "case", 14, 1)))  # a sentence ends inside it
    assert not match_all([r], one_token, "f")


# -- the index --------------------------------------------------------------------------

def test_index_files_rules_and_keeps_order() -> None:
    """Candidates come in rule order; open rules always; disabled rules never."""
    rules = [rule({"keyword": ["kremlin"]}, "a"), rule({"not": {"keyword": ["zzz"]}}, "b"),
             rule({"lemma": ["deploy"]}, "c"), rule({"keyword": ["kremlin"]}, "d", enabled=False),
             rule({"all": [{"lemma": ["deploy"]}, {"keyword": ["kremlin"]}]}, "e")]
    index = RuleIndex.build(rules)
    assert index.unanchored == ("b",)
    ids = [r.id for r in index.candidates(doc("the Kremlin deployed"), "f")]
    assert ids == ["a", "b", "c", "e"]
    assert [r.id for r in index.candidates(doc("the Kremlin said"), "f")] == ["a", "b"]
    assert [r.id for r in index.candidates(doc("nothing here"), "f")] == ["b"]


# -- differential: candidates versus every rule on analysed texts ------------------------

def corpus_of(analyzer: Analyzer, bodies: list[tuple[str, bytes]], extra: list[str],
              limit: int) -> list[tuple[str, Analysis]]:
    entries = [(feed, e) for feed, body in bodies
               for e in parse_document(body, feed_id=feed, url=feed, now=NOW).entries][:limit]
    texts = [e.document(20_000) for _, e in entries] + extra
    feeds = [f for f, _ in entries] + ["tricky"] * len(extra)
    found = analyzer.analyze(texts, [NOW.date()] * len(texts))
    return list(zip(feeds, found, strict=True))


@dataclass
class Vocab:
    words: list[str]
    spans: list[str]  # "U.S.-led", "air-defence": words joined by punctuation
    pairs: list[str]
    verbs: list[str]
    nouns: list[str]
    attrs: dict[str, list[str]]
    feeds: list[str]


def vocab_of(docs: list[tuple[str, Analysis]]) -> Vocab:
    words = sorted({t.text for _, a in docs for t in a.tokens if any(c.isalnum() for c in t.text)})
    spans = sorted({m for _, a in docs for m in re.findall(r"\w+(?:[.\-‑']+\w+)+\.?", a.text)})
    pairs = sorted({f"{x.text} {y.text}" for _, a in docs
                    for x, y in zip(a.tokens, a.tokens[1:], strict=False)
                    if x.text.isalnum() and y.text.isalnum()})
    verbs = sorted({t.lemma for _, a in docs for t in a.tokens if t.pos == "VERB"})
    nouns = sorted({w for _, a in docs for t in a.tokens if t.pos == "NOUN"
                    for w in (t.text.lower(), t.lemma)})
    ms = [m for _, a in docs for m in a.mentions]
    attrs = {"label": sorted({m.label for m in ms}), "id": sorted({m.id for m in ms if m.id}),
             "name": sorted({m.name for m in ms}), "role": sorted({r for m in ms for r in m.roles}),
             "country": sorted({m.country for m in ms if m.country})}
    return Vocab(words, spans, pairs, verbs, nouns, attrs, sorted({f for f, _ in docs}))


def mangle(rng: random.Random, term: str) -> str:
    return rng.choice([term, term.lower(), term.upper(), term.title(), term.replace("s", "ſ")])


def regex(rng: random.Random, v: Vocab) -> str:
    """A regex of one of the shapes rule writers use, over words of the corpus."""
    x, y = (mangle(rng, rng.choice(v.words + v.spans)) for _ in range(2))
    a, b, a2, a3, a4, a5, b2, b3 = (re.escape(w) for w in (x, y, x[:2], x[:3], x[:4], x[:5],
                                                           y[:2], y[:3]))
    return rng.choice([
        rf"{a4}\w*", rf"\b(?:{a}|{b})s?\b", rf"{a}\W+(?:\S+\s+){{0,3}}?{b}",
        rf"(?:{a})?{b3}", rf"[{re.escape(x[:1])}x]{re.escape(x[1:])}", rf"(?-i:{a})|(?i:{b})",
        rf"(?={a}){a5}", rf"({a})\W+\1", rf"(?:{a}){{2}}|{b}+", rf"(?>{a}|{b}){b2}*",
        rf"{a2}(?:{b})++",
        rf"(?x) {a} \s* # comment", rf"\b{a3}[^\W\d]*ing\b"])


def leaf(rng: random.Random, v: Vocab) -> dict:
    kind = rng.choice(["keyword", "keyword", "phrase", "lemma", "lemma", "regex", "entity",
                       "entity", "action", "near", "source"])
    some = lambda pool, k=2: [rng.choice(pool) for _ in range(rng.randint(1, k))]  # noqa: E731
    terms = lambda: [mangle(rng, t) for t in some(rng.choice(  # noqa: E731
        [v.words, v.words, v.spans or v.words, v.pairs]))] + (["zqxv"] if rng.random() < .1 else [])
    if kind in ("keyword", "phrase"):
        return {kind: terms()}
    if kind == "lemma":
        return {"lemma": [t for t in terms() if t.split()] or ["missile"]}
    if kind == "regex":
        return {"regex": [regex(rng, v) for _ in range(rng.randint(1, 2))]}
    if kind == "source":
        return {"source": some(v.feeds)}
    if kind in ("entity", "near"):
        attrs = [a for a in v.attrs if v.attrs[a]]
        ent: dict = {a: some(v.attrs[a]) for a in rng.sample(attrs, rng.randint(0, 2))}
        if rng.random() < 0.2:
            ent |= {"min": 2, "distinct": rng.choice(["name", "id", "country"])}
        if kind == "entity":
            return {"entity": ent}
        partner = {"entity": ent} if rng.random() < .5 else {"with": some(v.words)}
        return {"near": {"terms": some(v.words), "within": rng.randint(1, 12), **partner}}
    act: dict = {"verb": some(v.verbs or ["deploy"])}
    if rng.random() < 0.5:
        act["noun"] = some(v.nouns or ["deployment"])
    act[rng.choice(["object", "subject"])] = leaf(rng, v) if rng.random() < .7 else \
        {"entity": {"label": some(v.attrs["label"])}}
    return {"action": act}


def test_regex_anchors_hold_wherever_the_regex_matches() -> None:
    """For thousands of regexes over words of the tricky texts: a match implies the keys."""
    docs = [("t", doc(" ".join(text.split()))) for text in TRICKY]
    v, rng, matched = vocab_of(docs), random.Random(1), 0
    for _ in range(4000):
        pattern = re.compile(regex(rng, v), re.IGNORECASE)
        for _, d in docs:
            if pattern.search(d.text):
                matched += 1
                keys = document_keys(d, "t")
                assert all(not c.isdisjoint(keys) for c in regex_anchors(pattern)), pattern
    assert matched > 1000


def node(rng: random.Random, v: Vocab, depth: int = 0) -> dict:
    r = rng.random()
    if depth >= 3 or r < 0.45:
        out = leaf(rng, v)
    elif r < 0.85:
        op = "all" if r < 0.65 else "any"
        out = {op: [node(rng, v, depth + 1) for _ in range(rng.randint(1, 3))]}
    else:
        out = {"not": node(rng, v, depth + 1)}
    if rng.random() < 0.1:
        out["scope"] = rng.choice(["sentence", "paragraph", "document"])
    return out


def generated_rules(v: Vocab, gaz: Gazetteer, n: int, seed: int) -> list[CompiledRule]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        spec = RuleSpec.model_validate({
            "id": f"g{i}", "title": "T", "when": node(rng, v),
            "scope": rng.choice(["document", "sentence", "paragraph"])})
        out.append(compile_rule(spec, gaz))
    return out


def assert_same_matches(rules: list[CompiledRule], docs: list[tuple[str, Analysis]]) -> None:
    index = RuleIndex.build(rules)
    matched = candidates = 0
    for feed_id, analysis in docs:
        full = match_all(rules, analysis, feed_id)
        cands = index.candidates(analysis, feed_id)
        dropped = {m.rule_id for m in full} - {r.id for r in cands}
        assert not dropped, f"index dropped {sorted(dropped)} on {analysis.text[:80]!r}"
        assert match_all(cands, analysis, feed_id) == full
        matched += len(full)
        candidates += len(cands)
    assert matched > len(docs)  # the generated rules do match often enough to test something
    assert candidates < 0.6 * len(rules) * len(docs)  # and the index does prune


def test_candidates_match_like_every_rule_on_sample_feeds(analyzer: Analyzer,
                                                          gazetteer: Gazetteer) -> None:
    """On the sample feeds and tricky texts, candidates give exactly the full matches."""
    bodies = [(p.stem, p.read_bytes()) for p in sorted((REPO / "seeds" / "feeds").iterdir())]
    docs = corpus_of(analyzer, bodies, TRICKY, limit=1000)
    assert_same_matches(generated_rules(vocab_of(docs), gazetteer, 1500, seed=7), docs)


@pytest.mark.slow
def test_candidates_match_like_every_rule_on_real_feeds(analyzer: Analyzer,
                                                        gazetteer: Gazetteer) -> None:
    """The same on 120 entries of real feeds in several languages (../shared)."""
    root = shared_path("corpus", "realfeeds")
    paths = sorted(p for p in root.rglob("*") if p.suffix in (".xml", ".rss", ".atom"))
    rng = random.Random(3)
    bodies = [(p.parent.name, p.read_bytes()) for p in rng.sample(paths, 20)]
    docs = corpus_of(analyzer, bodies, [], limit=120)
    assert_same_matches(generated_rules(vocab_of(docs), gazetteer, 800, seed=11), docs)


def test_real_rules_on_sample_feeds(analyzer: Analyzer, gazetteer: Gazetteer) -> None:
    """The repository's own rules give the same matches through the index."""
    from ingest.rules.load import load_rules

    rules = list(load_rules([REPO / "rules"], gazetteer).rules)
    bodies = [(p.stem, p.read_bytes()) for p in sorted(Path(REPO / "seeds" / "feeds").iterdir())]
    docs = corpus_of(analyzer, bodies, TRICKY, limit=1000)
    index = RuleIndex.build(rules)
    for feed_id, analysis in docs:
        assert match_all(index.candidates(analysis, feed_id), analysis, feed_id) == \
            match_all(rules, analysis, feed_id)
