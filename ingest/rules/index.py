"""Which rules can match an entry at all: an inverted index over necessary keys (pure).

Each rule gets *anchors*: clauses of keys, every clause holding at least one key the
document must contain for the rule to match.  A keyword needs a word of the text, a
lemma a stem of a token, an entity leaf a label (or role, id, name, country) of a
mention, a source leaf the feed id, a regex trigrams and word starts of the literal
text it cannot match without.  ``all`` needs the clauses of all its children, ``any`` one
clause made of a clause from each child, ``not`` needs nothing.

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
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from types import MappingProxyType
from typing import Any

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

MIN_CHUNK = 3  # shorter words anchor a keyword term only when it has no longer one
PREFIX_MAX = 6  # a regex literal starting a word anchors on at most this many letters
_ALNUM = re.compile(r"[^\W_]+")  # exactly the characters str.isalnum() accepts
# The one character that re.IGNORECASE equates with a letter but that is not itself a
# letter (U+0345 matches iota): terms holding any of these get no chunk anchor.
_IOTA_CLASS = frozenset("\u0345\u0399\u03b9\u1fbe")

# Rough share of news entries holding a key: picks each rule's most selective clause.
_NAMESPACE_PRIOR = {"e:": 1.0, "l:": 0.5, "c:": 0.3, "g:": 0.3, "f:": 0.2, "r:": 0.1,
                    "n:": 0.05, "id:": 0.05}
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


def term_anchors(term: str) -> Anchors:
    """A keyword or phrase term needs each of its words of 3+ letters, longest first
    (of 2 letters when it has no longer one: "SS-20", "UN")."""
    if _IOTA_CLASS.intersection(term):
        return ()
    words = set(chunks(term))
    found = {c for c in words if len(c) >= MIN_CHUNK} or {c for c in words if len(c) == 2}
    return tuple(frozenset({"w:" + c}) for c in sorted(found, key=lambda c: (-len(c), c)))


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
        return _union_of_one_each([*((frozenset({"s:" + w}),) for w in node.words),
                                    *(_dedupe(frozenset({"s:" + w}) for w in seq)
                                      for seq in node.sequences)])
    if isinstance(node, EntityLeaf):
        return _entity(node)
    if isinstance(node, SourceLeaf):
        return _clause("f:" + f for f in node.feeds)
    if isinstance(node, ActionLeaf):
        word = _clause([*("s:" + v for v in node.verbs), *("s:" + v for v, _ in node.phrasal),
                        *("t:" + n for n in node.nouns)])
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
    return _union_of_one_each(anchors(child) for child in children)


def _union_of_one_each(alternatives: Iterable[Anchors], most: int = 3) -> Anchors:
    """What one of several alternatives needs (each needs all of its clauses).

    Clause j takes each alternative's j-th most selective clause (cycling): any one
    clause of each alternative makes a valid clause of the union.
    """
    options = list(alternatives)
    if len(options) == 1:
        return options[0]
    if not options or not all(options):
        return ()
    ranked = [sorted(found, key=clause_cost) for found in options]
    width = min(most, max(len(r) for r in ranked))
    return _dedupe(frozenset().union(*(r[j % len(r)] for r in ranked)) for j in range(width))


def _pattern(leaf: PatternLeaf) -> Anchors:
    if leaf.kind == "regex":
        return _union_of_one_each(regex_anchors(p) for p in leaf.patterns)
    if leaf.kind not in ("keyword", "phrase") or not leaf.terms:
        return ()
    # an empty term matches nothing (its match would be empty)
    return _union_of_one_each(term_anchors(t) for t in leaf.terms if t.split())


def regex_anchors(pattern: re.Pattern[str]) -> Anchors:
    """Clauses of the letters and digits a match of ``pattern`` must contain.

    Read off the parsed pattern: runs of literal letters in sequence, inside groups and
    repeats of at least one, one clause per alternation.  A run needs some of its
    trigrams and, when a word starts right before it (``\\b``, ``\\W``, a space, ``^``),
    a word starting with it.  Anything else (classes, optional parts, lookarounds,
    back-references) is skipped: that only ever loses anchors.  A pattern the parser
    will not read has none.
    """
    # With ASCII or LOCALE semantics \b and \W may sit next to a letter: no prefixes.
    prefixes = not pattern.flags & (re.ASCII | re.LOCALE) \
        and not re.search(r"\(\?[a-zA-Z]*[aL]", pattern.pattern)
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
        return _dedupe(_regex_seq(parsed, False, prefixes)[0])
    except Exception:  # e.g. the private parser changed in a later Python
        return ()


_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
_WORD_EDGES = (sre.AT_BOUNDARY, sre.AT_BEGINNING, sre.AT_BEGINNING_STRING)
_NON_LETTER_SETS = (sre.CATEGORY_NOT_WORD, sre.CATEGORY_SPACE)


def _is_letter(code: int) -> bool:
    return chr(code).isalnum() or chr(code) in _IOTA_CLASS


def _non_letter_set(items: list[tuple[Any, Any]]) -> bool:
    """Whether a character class ``[...]`` only ever matches non-letters."""
    return all((op is sre.CATEGORY and av in _NON_LETTER_SETS)
               or (op is sre.LITERAL and not _is_letter(av)) for op, av in items)


def _regex_seq(items: Iterable[tuple[Any, Any]], edge: bool,
               prefixes: bool) -> tuple[list[Clause], bool]:
    """The clauses ``items`` need, and whether a letter matched next would start a word.

    ``edge``: whether a letter matched first would start a word (its left neighbour is
    no letter or digit).
    """
    clauses: list[Clause] = []
    run: list[str] = []
    starts_word = False
    for op, av in items:
        if op is sre.LITERAL and chr(av).isalnum() and chr(av) not in _IOTA_CLASS:
            starts_word = starts_word if run else edge and prefixes
            run.append(chr(av))
            edge = False
            continue
        clauses.extend(_run_clauses("".join(run), starts_word))
        run.clear()
        if op is sre.SUBPATTERN:  # (group, add_flags, del_flags, items)
            found, edge = _regex_seq(av[3], edge, prefixes and not av[1] & (re.A | re.L))
            clauses.extend(found)
        elif op is sre.ATOMIC_GROUP:
            found, edge = _regex_seq(av, edge, prefixes)
            clauses.extend(found)
        elif op in _REPEATS:  # (min, max, items); later rounds start after the body's end
            found, _ = _regex_seq(av[2], edge, prefixes)
            clauses.extend(found if av[0] >= 1 else ())
            ends_edge = _regex_seq(av[2], False, prefixes)[1]
            edge = ends_edge and (av[0] >= 1 or edge)
        elif op is sre.BRANCH:  # (None, [items, ...])
            results = [_regex_seq(alt, edge, prefixes) for alt in av[1]]
            clauses.extend(_union_of_one_each(_dedupe(c) for c, _ in results))
            edge = all(e for _, e in results)
        elif op is sre.AT:
            edge = av in _WORD_EDGES  # \b before a letter: a non-letter before it
        elif op is sre.LITERAL:
            edge = not _is_letter(av)
        elif op is sre.IN:
            edge = _non_letter_set(av)
        else:  # any character, back-references, lookarounds: nothing known
            edge = False
    clauses.extend(_run_clauses("".join(run), starts_word))
    return clauses, edge


def _run_clauses(run: str, starts_word: bool) -> list[Clause]:
    """A few trigrams a literal run needs (first, middle, last) and, at a word start,
    the word's beginning: one clause each."""
    folded = fold_case(run)
    grams = [folded[i:i + 3] for i in range(len(folded) - 2)]
    picked = dict.fromkeys(grams[i] for i in {0, len(grams) // 2, len(grams) - 1}) if grams else {}
    found = [frozenset({"g:" + g}) for g in picked]
    if starts_word and len(folded) >= MIN_CHUNK:
        found.insert(0, frozenset({"p:" + folded[:PREFIX_MAX]}))
    return found


@lru_cache(maxsize=65536)
def _word_keys(run: str) -> tuple[str, ...]:
    """The word key of one run of letters and digits as written."""
    return ("w:" + fold_case(run),)


@lru_cache(maxsize=65536)
def _regex_word_keys(run: str) -> tuple[str, ...]:
    """The word, trigram and word-start keys of one run of letters and digits as written."""
    folded = fold_case(run)
    grams = {"g:" + folded[i:i + 3] for i in range(len(folded) - 2)}
    starts = {"p:" + folded[:n] for n in range(MIN_CHUNK, min(len(folded), PREFIX_MAX) + 1)}
    return ("w:" + folded, *grams, *starts)


@lru_cache(maxsize=65536)
def _token_keys(token: tuple[str, str]) -> tuple[str, ...]:
    """The stem and form keys of a token's (text, lemma)."""
    word, lemma = token
    return "s:" + stem(lemma), "s:" + stem(word), "t:" + lemma, "t:" + word.lower()


def _entity(leaf: EntityLeaf) -> Anchors:
    found = [frozenset("id:" + i for i in leaf.ids), frozenset("n:" + n for n in leaf.names),
             frozenset("r:" + r for r in leaf.roles), frozenset("l:" + x for x in leaf.labels),
             frozenset("c:" + c for c in leaf.countries)]
    return tuple(c for c in found if c) or (frozenset({"e:"}),)


def key_prior(key: str) -> float:
    """A rough share of entries holding ``key`` (longer words are rarer)."""
    space, _, value = key.partition(":")
    if space == "l":
        return _LABEL_PRIOR.get(value, 0.3)
    n = len(value)
    if space == "p":  # a word start is rarer than the same letters anywhere ("g:")
        return 0.2 if n <= 3 else 0.1 if n <= 5 else 0.04
    if space in ("w", "s", "t"):
        return 0.5 if n <= 3 else 0.25 if n <= 5 else 0.1 if n <= 7 else 0.04
    return _NAMESPACE_PRIOR.get(space + ":", 0.3)


def clause_cost(clause: frozenset[str]) -> float:
    return sum(key_prior(k) for k in clause)


# -- the keys of a document -----------------------------------------------------------

def document_keys(analysis: Analysis, feed_id: str, regex: bool = True) -> frozenset[str]:
    """Every key a rule could need from this entry (generous: never fewer than it needs).

    ``regex=False`` leaves out the trigram and word-start keys only regexes need.
    """
    text, tokens = analysis.text, analysis.tokens
    runs = set(_ALNUM.findall(text))
    # A sentence may end between two tokens written without a space ("COVIDnineteen"):
    # a keyword can then match the first part, so the parts are words too.
    ends = {t.start + len(t.text) for t in tokens}
    cuts = [t.start for t in tokens if t.start in ends] + [e for _, e in analysis.sentences]
    glued = [c for c in cuts if text[c - 1:c + 1].isalnum() and c > 0]
    if glued:
        runs |= _glued_pieces(text, glued)
    keys = set().union(*map(_regex_word_keys if regex else _word_keys, runs),
                       *map(_token_keys, {(t.text, t.lemma) for t in tokens}))
    keys.add("f:" + feed_id)
    for m in analysis.mentions:
        keys.update(("e:", "id:" + (m.id or ""), "n:" + fold(m.name), "n:" + fold(m.text),
                     "l:" + m.label, "c:" + (m.country or "")))
        keys.update("r:" + r for r in m.roles)
    return frozenset(keys)


def _glued_pieces(text: str, cuts: list[int]) -> set[str]:
    """Every part between two cuts or ends of the letter runs holding the cuts."""
    pieces: set[str] = set()
    for run in _ALNUM.finditer(text):
        inner = [c for c in cuts if run.start() < c < run.end()]
        if inner:
            edges = [run.start(), *inner, run.end()]
            pieces.update(text[a:b] for i, a in enumerate(edges) for b in edges[i + 1:])
    return pieces


# -- the index ------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleIndex:
    """Enabled rules filed under the keys of their most selective clause.

    Build it once per rule set (at start and on reload) and share it: it is immutable.
    """

    rules: tuple[CompiledRule, ...]  # the enabled rules, in their original order
    postings: Mapping[str, frozenset[int]]  # key -> positions in ``rules`` filed under it
    checks: Mapping[int, Anchors]  # position -> its other clauses, when it has some
    always: frozenset[int]  # rules with no anchors: candidates for every entry
    regex: bool = False  # whether some anchor is a regex key (documents then need theirs)

    @classmethod
    def build(cls, rules: Sequence[CompiledRule]) -> RuleIndex:
        enabled = tuple(r for r in rules if r.spec.enabled)
        postings: dict[str, set[int]] = {}
        checks: dict[int, Anchors] = {}
        always: set[int] = set()
        regex = False
        for i, rule in enumerate(enabled):
            found = rule_anchors(rule)
            if not found:
                always.add(i)
                continue
            filed = min(found, key=clause_cost)
            for key in filed:
                postings.setdefault(key, set()).add(i)
            if len(found) > 1:
                checks[i] = tuple(c for c in found if c is not filed)
            regex = regex or any(k[:2] in ("g:", "p:") for c in found for k in c)
        return cls(enabled, MappingProxyType({k: frozenset(v) for k, v in postings.items()}),
                   MappingProxyType(checks), frozenset(always), regex)

    @property
    def unanchored(self) -> tuple[str, ...]:
        """Ids of the rules evaluated on every entry (``not``-only, plain regex classes, ...)."""
        return tuple(self.rules[i].id for i in sorted(self.always))

    def candidates(self, analysis: Analysis, feed_id: str) -> tuple[CompiledRule, ...]:
        """In rule order, every enabled rule that can match this entry (and maybe a few more)."""
        return self.candidates_for(document_keys(analysis, feed_id, self.regex))

    def candidates_for(self, keys: frozenset[str]) -> tuple[CompiledRule, ...]:
        """Candidates for a document with these :func:`document_keys`."""
        hit: set[int] = set().union(*map(self.postings.__getitem__, keys & self.postings.keys()))
        for i in hit & self.checks.keys():
            if any(clause.isdisjoint(keys) for clause in self.checks[i]):
                hit.discard(i)
        return tuple(self.rules[i] for i in sorted(hit | self.always))
