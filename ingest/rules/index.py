"""Which rules can match an entry at all: an inverted index over necessary keys (pure).

Each rule gets *anchors*: clauses of keys, every clause holding at least one key the
document must contain for the rule to match.  A keyword needs a word of the text, a
lemma a stem of a token, an entity leaf a label (or role, id, name, country) of a
mention, a source leaf the feed id.  ``all`` needs the clauses of all its children,
``any`` one clause made of a clause from each child, ``not`` and regex need nothing.

:class:`RuleIndex` files each rule under the keys of its most selective clause and
checks its other clauses with set operations, so an entry's candidate rules cost a
few dictionary look-ups instead of evaluating every rule.  Candidates are a
superset of the matching rules: a rule with no anchors is always a candidate, and a
node type this module does not know has no anchors.

Wiring: ``match_all(index.candidates(analysis, feed_id), analysis, feed_id)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from ingest.model import Analysis
from ingest.nlp.gazetteer import fold
from ingest.rules.compile import (
    ActionLeaf,
    Branch,
    CompiledRule,
    EntityLeaf,
    LemmaLeaf,
    NearLeaf,
    PatternLeaf,
    Scoped,
    SourceLeaf,
    stem,
)

Clause = frozenset[str]  # holds when one of its keys is among the document's keys
Anchors = tuple[Clause, ...]  # holds when every clause holds; () when nothing is known

MIN_CHUNK = 3  # a keyword anchors on its longest chunk of letters/digits when this long
_ALNUM = re.compile(r"[^\W_]+")  # exactly the characters str.isalnum() accepts
# The one character that re.IGNORECASE equates with a letter but that is not itself a
# letter (U+0345 matches iota): terms holding any of these get no chunk anchor.
_IOTA_CLASS = frozenset("\u0345\u0399\u03b9\u1fbe")

# Rough share of news entries holding a key: picks each rule's most selective clause.
_NAMESPACE_PRIOR = {"e:": 1.0, "l:": 0.5, "c:": 0.3, "f:": 0.2, "r:": 0.1, "n:": 0.05,
                    "id:": 0.05}
_LABEL_PRIOR = {"GPE": 0.8, "DATE": 0.8, "ORG": 0.7, "PERSON": 0.7, "CARDINAL": 0.7,
                "NORP": 0.5}


# -- case folding that agrees with re.IGNORECASE ---------------------------------------

@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    """One representative of the characters ``re.IGNORECASE`` treats as equal to ``c``."""
    if c == "\u0130":  # İ: its simple lower case (the one re uses) is i
        return "i"
    low = c.lower()
    if len(low) != 1:
        return c
    up = low.upper()  # ſ -> S -> s, ı -> I -> i, ς -> Σ -> σ, K (kelvin) -> k
    again = up.lower() if len(up) == 1 else low
    return again if len(again) == 1 else low


@lru_cache(maxsize=65536)
def fold_case(text: str) -> str:
    """``text`` with each character folded as ``re.IGNORECASE`` compares it."""
    return text.lower() if text.isascii() else "".join(_fold_char(c) for c in text)


def chunks(text: str) -> list[str]:
    """The case-folded runs of letters and digits in ``text``."""
    return [fold_case(run) for run in _ALNUM.findall(text)]


def term_key(term: str) -> str | None:
    """The key a keyword or phrase term needs: its longest chunk, when long enough."""
    if _IOTA_CLASS.intersection(term):
        return None
    found = chunks(term)
    best = max(found, key=len, default="")
    return "w:" + best if len(best) >= MIN_CHUNK else None


# -- the anchors of a rule ------------------------------------------------------------

def rule_anchors(rule: CompiledRule) -> Anchors:
    return anchors(rule.when)


def anchors(node: object) -> Anchors:
    """Clauses of keys that must all hold in a document for ``node`` to hold on it."""
    if isinstance(node, Branch):
        if node.op == "all":
            return _dedupe(c for child in node.children for c in anchors(child))
        if node.op == "any":
            return _any(node.children)
        return ()  # not, or an operator added later
    if isinstance(node, Scoped):  # a part of a document holds only what the document holds
        return anchors(node.child)
    if isinstance(node, PatternLeaf):
        return _pattern(node)
    if isinstance(node, LemmaLeaf):
        return _clause([*("s:" + w for w in node.words),
                        *("s:" + _rarest(seq) for seq in node.sequences if seq)])
    if isinstance(node, EntityLeaf):
        return _entity(node)
    if isinstance(node, SourceLeaf):
        return _clause("f:" + f for f in node.feeds)
    if isinstance(node, ActionLeaf):
        word = _clause([*("s:" + v for v in node.verbs), *("t:" + n for n in node.nouns)])
        return _dedupe([*word, *anchors(node.object), *anchors(node.subject)])
    if isinstance(node, NearLeaf):
        partner = node.other if node.other is not None else node.entity
        return _dedupe([*anchors(node.terms), *anchors(partner)])
    return ()  # None (no argument), or a node type this module does not know


def _clause(keys: Iterable[str]) -> Anchors:
    clause = frozenset(keys)
    return (clause,) if clause else ()


def _dedupe(clauses: Iterable[Clause]) -> Anchors:
    return tuple(dict.fromkeys(clauses))


def _any(children: Sequence[object]) -> Anchors:
    keys: set[str] = set()
    for child in children:
        found = anchors(child)
        if not found:
            return ()
        keys |= min(found, key=clause_cost)
    return _clause(keys)


def _pattern(leaf: PatternLeaf) -> Anchors:
    if leaf.kind not in ("keyword", "phrase") or not leaf.terms:
        return ()
    keys = set()
    for term in leaf.terms:
        if not term.split():
            continue  # an empty term matches nothing (the match would be empty)
        key = term_key(term)
        if key is None:
            return ()
        keys.add(key)
    return _clause(keys)


def _entity(leaf: EntityLeaf) -> Anchors:
    found = [frozenset("id:" + i for i in leaf.ids), frozenset("n:" + n for n in leaf.names),
             frozenset("r:" + r for r in leaf.roles), frozenset("l:" + x for x in leaf.labels),
             frozenset("c:" + c for c in leaf.countries)]
    return tuple(c for c in found if c) or (frozenset({"e:"}),)


def _rarest(words: tuple[str, ...]) -> str:
    return max(words, key=len)


def key_prior(key: str) -> float:
    """A rough share of entries holding ``key`` (longer words are rarer)."""
    space, _, value = key.partition(":")
    if space == "l":
        return _LABEL_PRIOR.get(value, 0.3)
    if space in ("w", "s", "t"):
        n = len(value)
        return 0.5 if n <= 3 else 0.25 if n <= 5 else 0.1 if n <= 7 else 0.04
    return _NAMESPACE_PRIOR.get(space + ":", 0.3)


def clause_cost(clause: Clause) -> float:
    return sum(key_prior(k) for k in clause)


# -- the keys of a document -----------------------------------------------------------

def document_keys(analysis: Analysis, feed_id: str) -> frozenset[str]:
    """Every key a rule could need from this entry (generous: never fewer than it needs)."""
    keys = {"f:" + feed_id}
    keys.update("w:" + run for run in chunks(analysis.text))
    for text, lemma in {(t.text, t.lemma) for t in analysis.tokens}:
        keys.update(("s:" + stem(lemma), "s:" + stem(text), "t:" + lemma, "t:" + text.lower()))
    for m in analysis.mentions:
        keys.update(("e:", "id:" + (m.id or ""), "n:" + fold(m.name), "n:" + fold(m.text),
                     "l:" + m.label, "c:" + (m.country or "")))
        keys.update("r:" + r for r in m.roles)
    return frozenset(keys)


# -- the index ------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleIndex:
    """Enabled rules filed under the keys of their most selective clause."""

    rules: tuple[CompiledRule, ...]  # the enabled rules, in their original order
    postings: Mapping[str, tuple[int, ...]]  # key -> positions in ``rules``
    checks: tuple[Anchors, ...]  # per rule: every clause, checked once its key is seen
    always: tuple[int, ...]  # positions of rules with no anchors: candidates for every entry

    @classmethod
    def build(cls, rules: Sequence[CompiledRule]) -> RuleIndex:
        enabled = tuple(r for r in rules if r.spec.enabled)
        postings: dict[str, list[int]] = {}
        checks: list[Anchors] = []
        always: list[int] = []
        for i, rule in enumerate(enabled):
            found = rule_anchors(rule)
            checks.append(found)
            if not found:
                always.append(i)
                continue
            for key in min(found, key=clause_cost):
                postings.setdefault(key, []).append(i)
        return cls(enabled, MappingProxyType({k: tuple(v) for k, v in postings.items()}),
                   tuple(checks), tuple(always))

    @property
    def unanchored(self) -> tuple[str, ...]:
        """Ids of the rules evaluated on every entry (regex-only, ``not``-only, ...)."""
        return tuple(self.rules[i].id for i in self.always)

    def candidates(self, analysis: Analysis, feed_id: str) -> tuple[CompiledRule, ...]:
        """In rule order, every enabled rule that can match this entry (and maybe a few more)."""
        return self.candidates_for(document_keys(analysis, feed_id))

    def candidates_for(self, keys: frozenset[str]) -> tuple[CompiledRule, ...]:
        """Candidates for a document with these :func:`document_keys`."""
        chosen = set(self.always)
        seen: set[int] = set()
        for key in keys & self.postings.keys():
            for i in self.postings[key]:
                if i in seen:
                    continue
                seen.add(i)
                if all(not clause.isdisjoint(keys) for clause in self.checks[i]):
                    chosen.add(i)
        return tuple(self.rules[i] for i in sorted(chosen))
