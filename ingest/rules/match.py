"""Evaluating compiled rules against an analysed entry (pure).

A rule's ``when`` tree is evaluated on units of the document: each sentence
(``scope: sentence``) or the whole text (``scope: document``).  A leaf returns the
evidence it found (:class:`~ingest.model.Hit`) or ``None`` when unsatisfied.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ingest.model import Analysis, Hit, Mention, RuleMatch, Token
from ingest.nlp.gazetteer import fold
from ingest.rules import syntax
from ingest.rules.compile import (
    ActionLeaf,
    Branch,
    CompiledRule,
    EntityLeaf,
    LemmaLeaf,
    NearLeaf,
    Node,
    PatternLeaf,
    Scoped,
    SourceLeaf,
    stem,
)
from ingest.rules.index import fold_case

SNIPPET_CHARS = 400


@dataclass(frozen=True)
class View:
    """The part of a document a tree is evaluated on."""

    text: str  # the whole document text; offsets are into it
    start: int
    end: int
    tokens: tuple[Token, ...]
    mentions: tuple[Mention, ...]
    feed_id: str
    doc: DocSyntax | None = None  # the whole document's tokens and parse, shared by its views
    first: int = 0  # index in ``all_tokens`` of this view's first token

    @property
    def all_tokens(self) -> tuple[Token, ...]:
        return self.doc.tokens if self.doc is not None else self.tokens


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


class DocSyntax:
    """A document's tokens, units and dependency children, each computed once when needed."""

    def __init__(self, tokens: tuple[Token, ...], text: str = "",
                 sentences: tuple[tuple[int, int], ...] = ()) -> None:
        self.tokens = tokens
        self.text = text
        self.sentences = sentences
        self._children: list[list[int]] | None = None
        self._stems: list[tuple[str, str]] | None = None
        self._where: dict[str, list[int]] | None = None
        self._words: frozenset[str] | None = None
        # Per leaf (by id: leaves live as long as their rule set), its occurrences in the
        # whole document, so a sentence-scoped rule does not rescan for each sentence.
        self.found: dict[int, list[tuple[int, int]]] = {}
        self._paragraphs: tuple[tuple[int, int], ...] | None = None
        self._splits: dict[tuple[str, int, int], list[View]] = {}

    @property
    def children(self) -> list[list[int]]:
        if self._children is None:
            self._children = syntax.children(self.tokens)
        return self._children

    @property
    def stems(self) -> list[tuple[str, str]]:
        """Each token's (stem of its lemma, stem of its text): computed once per document."""
        if self._stems is None:
            self._stems = [(stem(t.lemma), stem(t.text)) for t in self.tokens]
        return self._stems

    @property
    def where(self) -> dict[str, list[int]]:
        """Each stem (of a lemma or a text) -> the indexes of the tokens that have it."""
        if self._where is None:
            where: dict[str, list[int]] = {}
            for i, (by_lemma, by_text) in enumerate(self.stems):
                where.setdefault(by_lemma, []).append(i)
                if by_text != by_lemma:
                    where.setdefault(by_text, []).append(i)
            self._where = where
        return self._where

    @property
    def words(self) -> frozenset[str]:
        """Every word of the text, case-folded as ``re.IGNORECASE`` compares letters."""
        if self._words is None:
            self._words = frozenset(_CHUNK.findall(fold_case(self.text)))
        return self._words

    @property
    def paragraphs(self) -> tuple[tuple[int, int], ...]:
        """Character spans of the text's paragraphs (separated by blank lines)."""
        if self._paragraphs is None:
            spans, pos = [], 0
            for m in _PARAGRAPH_BREAK.finditer(self.text):
                if m.start() > pos:
                    spans.append((pos, m.start()))
                pos = m.end()
            if pos < len(self.text):
                spans.append((pos, len(self.text)))
            self._paragraphs = tuple(spans)
        return self._paragraphs

    def units(self, scope: str) -> tuple[tuple[int, int], ...]:
        return self.sentences if scope == "sentence" else self.paragraphs


def whole(analysis: Analysis, feed_id: str) -> View:
    """The whole document as one view (its parse shared by every view cut from it)."""
    doc = DocSyntax(analysis.tokens, analysis.text, analysis.sentences)
    return View(analysis.text, 0, len(analysis.text), analysis.tokens, analysis.mentions,
                feed_id, doc)


def views(analysis: Analysis, feed_id: str, scope: str) -> list[View]:
    """The units a rule with ``scope`` is evaluated on."""
    return split(whole(analysis, feed_id), scope)


def split(view: View, scope: str) -> list[View]:
    """``view`` cut into its sentences or paragraphs (itself for ``document``)."""
    doc = view.doc
    if scope == "document" or doc is None:
        return [view]
    key = (scope, view.start, view.end)
    if key in doc._splits:
        return doc._splits[key]
    spans = [(max(s, view.start), min(e, view.end)) for s, e in doc.units(scope)
             if s < view.end and view.start < e]
    if not spans:
        doc._splits[key] = [view]
        return [view]
    out, t = [], 0
    tokens, mentions = view.tokens, view.mentions
    for start, end in spans:
        while t < len(tokens) and tokens[t].start < start:
            t += 1
        first = t
        while t < len(tokens) and tokens[t].start < end:
            t += 1
        inside = tuple(x for x in mentions if start <= x.start < end)
        out.append(View(view.text, start, end, tokens[first:t], inside, view.feed_id, doc,
                        view.first + first))
    doc._splits[key] = out
    return out


def evaluate(node: Node, view: View) -> tuple[Hit, ...] | None:
    """Evidence that ``node`` holds on ``view``, or None when it does not."""
    if isinstance(node, Branch):
        return _branch(node, view)
    if isinstance(node, Scoped):
        found = [r for unit in split(view, node.scope)
                 if (r := evaluate(node.child, unit)) is not None]
        return tuple(h for r in found for h in r) if found else None
    if isinstance(node, EntityLeaf):
        return _entity(node, view)
    if isinstance(node, PatternLeaf):
        return _pattern(node, view)
    if isinstance(node, LemmaLeaf):
        return _lemma(node, view)
    if isinstance(node, ActionLeaf):
        return _action(node, view)
    if isinstance(node, NearLeaf):
        return _near(node, view)
    if isinstance(node, SourceLeaf):
        return (Hit("source", view.feed_id, 0, 0, node.path),) \
            if view.feed_id in node.feeds else None
    raise TypeError(f"unknown node {node!r}")


_CHUNK = re.compile(r"[^\W_]+")


@lru_cache(maxsize=65536)
def _term_words(terms: tuple[str, ...]) -> tuple[frozenset[str], ...]:
    """The case-folded words of each term (those a match of the term must contain)."""
    return tuple(frozenset(_CHUNK.findall(fold_case(t))) for t in terms)


def _pattern(leaf: PatternLeaf, view: View) -> tuple[Hit, ...] | None:
    doc = view.doc
    if leaf.kind == "regex" or doc is None:
        # One character past the unit, so a word boundary at its end is judged on the real
        # text ("covid" must not match the start of a word the unit cuts in two).
        stop = min(len(view.text), view.end + 1)
        hits = tuple(Hit(leaf.kind, m.group(0), m.start(), m.end(), leaf.path)
                     for pattern in leaf.patterns
                     for m in pattern.finditer(view.text, view.start, stop)
                     if m.group(0) and m.end() <= view.end)
        return hits or None
    # Keywords and phrases never span a sentence: find them once in the whole document,
    # and only when every word of one of the terms is in it (a set lookup, not a scan).
    spans = doc.found.get(id(leaf))
    if spans is None:
        words = doc.words
        if any(need <= words for need in _term_words(leaf.terms)):
            spans = sorted((m.start(), m.end()) for pattern in leaf.patterns
                           for m in pattern.finditer(view.text) if m.group(0))
        else:
            spans = []
        doc.found[id(leaf)] = spans
    first = bisect.bisect_left(spans, (view.start, view.start))
    out = []
    for start, end in spans[first:]:
        if start >= view.end:
            break
        if end <= view.end:
            out.append(Hit(leaf.kind, view.text[start:end], start, end, leaf.path))
    return tuple(out) or None


def _branch(node: Branch, view: View) -> tuple[Hit, ...] | None:
    if node.op == "not":
        return () if evaluate(node.children[0], view) is None else None
    if node.op == "all":  # stop at the first child that fails
        found: list[Hit] = []
        for child in node.children:
            hits = evaluate(child, view)
            if hits is None:
                return None
            found.extend(hits)
        return tuple(found)
    held = [r for child in node.children if (r := evaluate(child, view)) is not None]
    return tuple(h for r in held for h in r) if held else None


def _entity_selected(leaf: EntityLeaf, m: Mention) -> bool:
    return ((not leaf.labels or m.label in leaf.labels)
            and (not leaf.ids or (m.id or "") in leaf.ids)
            and (not leaf.names or fold(m.name) in leaf.names or fold(m.text) in leaf.names)
            and (not leaf.roles or bool(leaf.roles.intersection(m.roles)))
            and (not leaf.countries or (m.country or "") in leaf.countries))


def _distinct_key(leaf: EntityLeaf, m: Mention) -> str | None:
    if leaf.distinct == "country":
        return m.country
    if leaf.distinct == "id":
        return m.id or fold(m.name)
    return fold(m.name) if leaf.distinct == "name" else (m.id or fold(m.name))


def _entity(leaf: EntityLeaf, view: View) -> tuple[Hit, ...] | None:
    chosen = [m for m in view.mentions if _entity_selected(leaf, m)]
    keys = {k for m in chosen if (k := _distinct_key(leaf, m)) is not None}
    if len(keys) < leaf.min:
        return None
    return tuple(Hit("entity", m.text, m.start, m.end, leaf.path) for m in chosen)


def lemma_positions(leaf: LemmaLeaf, view: View) -> list[tuple[int, int]]:
    """(first, last) indexes in ``view.tokens`` of each occurrence of the leaf's terms, in
    any word form."""
    doc = view.doc
    if doc is None:
        return _scan_positions(leaf, [(stem(t.lemma), stem(t.text)) for t in view.tokens])
    spans = doc.found.get(id(leaf))
    if spans is None:
        spans = doc.found[id(leaf)] = _doc_positions(leaf, doc)
    lo, hi = view.first, view.first + len(view.tokens)
    start = bisect.bisect_left(spans, (lo, lo))
    out = []
    for a, b in spans[start:]:
        if a >= hi:
            break
        if b < hi:
            out.append((a - lo, b - lo))
    return out


def _doc_positions(leaf: LemmaLeaf, doc: DocSyntax) -> list[tuple[int, int]]:
    """The leaf's occurrences in the whole document, by token index, sorted."""
    where, stems = doc.where, doc.stems
    found: set[tuple[int, int]] = set()
    for word in leaf.words:
        found.update((i, i) for i in where.get(word, ()))
    for seq in leaf.sequences:
        for i in where.get(seq[0], ()):
            if i + len(seq) <= len(stems) and all(
                    seq[k] in stems[i + k] for k in range(1, len(seq))):
                found.add((i, i + len(seq) - 1))
    # A token that is a single-word term is not also the start of a sequence (as in a scan).
    singles = {a for a, b in found if a == b}
    return sorted(x for x in found if x[0] == x[1] or x[0] not in singles)


def _scan_positions(leaf: LemmaLeaf, stems: list[tuple[str, str]]) -> list[tuple[int, int]]:
    found = []
    words, firsts = leaf.words, leaf.firsts
    for i, (by_lemma, by_text) in enumerate(stems):
        if by_lemma in words or by_text in words:
            found.append((i, i))
            continue
        if by_lemma not in firsts and by_text not in firsts:
            continue
        for seq in leaf.sequences:
            window = stems[i:i + len(seq)]
            if len(window) == len(seq) and all(s in pair for s, pair in zip(seq, window,
                                                                          strict=True)):
                found.append((i, i + len(seq) - 1))
    return found


def _span_hit(kind: str, view: View, first: int, last: int, path: str) -> Hit:
    start, end = view.tokens[first].start, view.tokens[last].end
    return Hit(kind, view.text[start:end], start, end, path)


def _lemma(leaf: LemmaLeaf, view: View) -> tuple[Hit, ...] | None:
    hits = [_span_hit("lemma", view, a, b, leaf.path)
            for a, b in lemma_positions(leaf, view)]
    return tuple(hits) or None


def _near(leaf: NearLeaf, view: View) -> tuple[Hit, ...] | None:
    terms = lemma_positions(leaf.terms, view)
    if not terms:
        return None
    partners: list[tuple[int, int, Hit]] = []
    if leaf.other is not None:
        partners = [(a, b, _span_hit("near", view, a, b, leaf.path))
                    for a, b in lemma_positions(leaf.other, view)]
    elif leaf.entity is not None:
        starts = [t.start for t in view.tokens]
        for m in view.mentions:
            if _entity_selected(leaf.entity, m):
                a = max(0, bisect.bisect_right(starts, m.start) - 1)
                b = max(a, bisect.bisect_left(starts, m.end) - 1)
                partners.append((a, b, Hit("entity", m.text, m.start, m.end, leaf.path)))
    hits: list[Hit] = []
    for a, b in terms:
        close = [h for pa, pb, h in partners
                 if (pa, pb) != (a, b) and max(pa - b, a - pb, 0) <= leaf.within]
        if close:
            hits.append(_span_hit("near", view, a, b, leaf.path))
            hits.extend(close)
    return tuple(dict.fromkeys(hits)) or None


def _phrasal(leaf: ActionLeaf, tokens: tuple[Token, ...], view: View, i: int) -> bool:
    """Whether the verb at ``i`` with one of its particles is a listed phrasal verb
    ("called up reservists", "called reservists up", "handed over the system")."""
    if not leaf.phrasal:
        return False
    stems = {stem(tokens[i].lemma), stem(tokens[i].text)}
    wanted = {p for s, p in leaf.phrasal if s in stems}
    if not wanted:
        return False
    kids = view.doc.children if view.doc is not None else syntax.children(tokens)
    if any(tokens[k].text.lower() in wanted for k in kids[i]
           if tokens[k].dep in ("prt", "advmod", "prep")):
        return True
    nxt = i + 1  # a parse that missed the particle: the very next word
    return nxt < len(tokens) and tokens[nxt].text.lower() in wanted


def _action(leaf: ActionLeaf, view: View) -> tuple[Hit, ...] | None:
    tokens = view.all_tokens
    found: list[Hit] = []
    for i in range(view.first, view.first + len(view.tokens)):
        tok = tokens[i]
        if tok.pos in syntax.COMMON_NOUN_POS:
            # A noun counts only when the rule lists it: "deployment" yes, "base" no.
            if tok.lemma not in leaf.nouns and tok.text.lower() not in leaf.nouns:
                continue
        elif stem(tok.lemma) not in leaf.verbs and stem(tok.text) not in leaf.verbs \
                and not _phrasal(leaf, tokens, view, i):
            continue
        kids = view.doc.children if view.doc is not None else syntax.children(tokens)
        if leaf.negated is not None and syntax.is_negated(tokens, kids, i) != leaf.negated:
            continue
        hits = [Hit("action", tok.text, tok.start, tok.end, leaf.path)]
        for node, heads in ((leaf.object, syntax.object_heads),
                            (leaf.subject, syntax.subject_heads)):
            if node is None:
                continue
            role_hits = _argument(node, view, tokens, kids, heads(tokens, kids, i))
            if role_hits is None:
                break
            hits.extend(role_hits)
        else:
            found.extend(hits)
    return tuple(found) or None


def _argument(node: Node, view: View, tokens: tuple[Token, ...], kids: list[list[int]],
              heads: list[int]) -> list[Hit] | None:
    """Evidence that ``node`` holds on one of the argument phrases, at its head words."""
    for head in heads:
        start, end = syntax.subtree_span(kids, tokens, head)
        inside = [i for i, t in enumerate(tokens) if start <= t.start < end]
        phrase = View(view.text, start, end, tuple(tokens[i] for i in inside),
                      tuple(m for m in view.mentions if start < m.end and m.start < end),
                      view.feed_id, view.doc, inside[0] if inside else 0)
        hits = evaluate(node, phrase)
        if not hits:
            continue
        words = [tokens[k] for k in syntax.head_words(kids, tokens, head)]
        kept = [h for h in hits if any(h.start < w.end and w.start < h.end for w in words)]
        if kept:
            return kept
    return None


def match_rule(rule: CompiledRule, analysis: Analysis, feed_id: str,
               units: list[View] | None = None) -> RuleMatch | None:
    """The rule's match on this entry, with its evidence, or None.

    ``units`` are the views for the rule's scope when the caller already has them.
    """
    found: list[Hit] = []
    holds = False  # a tree of only `not` leaves can hold with no evidence at all
    for view in units if units is not None else views(analysis, feed_id, rule.spec.scope):
        hits = evaluate(rule.when, view)
        if hits is not None:
            holds = True
            found.extend(hits)
            if rule.spec.scope == "document":
                break
    if not holds:
        return None
    hits = tuple(sorted(set(found), key=lambda h: (h.start, h.end, h.kind)))
    entity_spans = {(h.start, h.end) for h in hits if h.kind == "entity"}
    entities = tuple(m for m in analysis.mentions if (m.start, m.end) in entity_spans)
    terms = tuple(dict.fromkeys(h.text for h in hits if h.kind not in ("entity", "source")))
    return RuleMatch(rule.id, entities, terms, hits, snippet(analysis, hits))


def snippet(analysis: Analysis, hits: tuple[Hit, ...]) -> str:
    """The sentence holding the first piece of text evidence, trimmed to a few hundred chars."""
    located = [h for h in hits if h.end > h.start]
    if not located or not analysis.sentences:
        return " ".join(analysis.text.split())[:SNIPPET_CHARS]
    first = min(located, key=lambda h: h.start)
    chosen = [s for s in analysis.sentences if s[0] <= first.start < s[1]
              or (s[0] <= first.start and s[1] >= first.end)]
    start, end = chosen[0] if chosen else (0, len(analysis.text))
    text = " ".join(analysis.text[start:end].split())
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS - 1].rstrip() + "…"


def applies(rule: CompiledRule, language: str | None) -> bool:
    """Whether an enabled ``rule`` reads entries in ``language`` (unknown: every rule does)."""
    return rule.spec.enabled and (not rule.spec.language or language is None
                                  or language in rule.spec.language)


def match_all(rules: Sequence[CompiledRule], analysis: Analysis, feed_id: str,
              language: str | None = None) -> list[RuleMatch]:
    """Every enabled rule that matches, in rule order (views built once per scope)."""
    by_scope: dict[str, list[View]] = {}
    out = []
    doc = whole(analysis, feed_id)
    for rule in rules:
        if not applies(rule, language):
            continue
        scope = rule.spec.scope
        if scope not in by_scope:
            by_scope[scope] = split(doc, scope)
        if (m := match_rule(rule, analysis, feed_id, by_scope[scope])) is not None:
            out.append(m)
    return out
