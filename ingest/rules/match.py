"""Evaluating compiled rules against an analysed entry (pure).

A rule's ``when`` tree is evaluated on units of the document: each sentence
(``scope: sentence``) or the whole text (``scope: document``).  A leaf returns the
evidence it found (:class:`~ingest.model.Hit`) or ``None`` when unsatisfied.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.model import Analysis, Hit, Mention, RuleMatch, Token
from ingest.nlp.gazetteer import fold
from ingest.rules import syntax
from ingest.rules.compile import (
    ActionLeaf,
    Branch,
    CompiledRule,
    EntityLeaf,
    LemmaLeaf,
    Node,
    PatternLeaf,
    SourceLeaf,
    stem,
)

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


class DocSyntax:
    """A document's tokens with their dependency children, computed once when first needed."""

    def __init__(self, tokens: tuple[Token, ...]) -> None:
        self.tokens = tokens
        self._children: list[list[int]] | None = None

    @property
    def children(self) -> list[list[int]]:
        if self._children is None:
            self._children = syntax.children(self.tokens)
        return self._children


def views(analysis: Analysis, feed_id: str, scope: str) -> list[View]:
    """The units a rule with ``scope`` is evaluated on."""
    doc = DocSyntax(analysis.tokens)
    if scope == "document" or not analysis.sentences:
        return [View(analysis.text, 0, len(analysis.text), analysis.tokens, analysis.mentions,
                     feed_id, doc)]
    tokens: list[list[Token]] = [[] for _ in analysis.sentences]
    for tok in analysis.tokens:
        if 0 <= tok.sent < len(tokens):
            tokens[tok.sent].append(tok)
    mentions: list[list[Mention]] = [[] for _ in analysis.sentences]
    for m in analysis.mentions:
        if 0 <= m.sent < len(mentions):
            mentions[m.sent].append(m)
    out, first = [], 0
    for i, (start, end) in enumerate(analysis.sentences):
        out.append(View(analysis.text, start, end, tuple(tokens[i]), tuple(mentions[i]), feed_id,
                        doc, first))
        first += len(tokens[i])
    return out


def evaluate(node: Node, view: View) -> tuple[Hit, ...] | None:
    """Evidence that ``node`` holds on ``view``, or None when it does not."""
    if isinstance(node, Branch):
        return _branch(node, view)
    if isinstance(node, EntityLeaf):
        return _entity(node, view)
    if isinstance(node, PatternLeaf):
        hits = tuple(Hit(node.kind, m.group(0), m.start(), m.end(), node.describe)
                     for pattern in node.patterns
                     for m in pattern.finditer(view.text, view.start, view.end) if m.group(0))
        return hits or None
    if isinstance(node, LemmaLeaf):
        return _lemma(node, view)
    if isinstance(node, ActionLeaf):
        return _action(node, view)
    if isinstance(node, SourceLeaf):
        return (Hit("source", view.feed_id, 0, 0, node.describe),) \
            if view.feed_id in node.feeds else None
    raise TypeError(f"unknown node {node!r}")


def _branch(node: Branch, view: View) -> tuple[Hit, ...] | None:
    if node.op == "not":
        return () if evaluate(node.children[0], view) is None else None
    results = [evaluate(child, view) for child in node.children]
    if node.op == "all":
        if any(r is None for r in results):
            return None
        return tuple(h for r in results if r for h in r)
    found = [r for r in results if r is not None]
    return tuple(h for r in found for h in r) if found else None


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
    return tuple(Hit("entity", m.text, m.start, m.end, leaf.describe) for m in chosen)


def _lemma(leaf: LemmaLeaf, view: View) -> tuple[Hit, ...] | None:
    stems = [(stem(t.lemma), stem(t.text)) for t in view.tokens]
    hits = []
    for i, (by_lemma, by_text) in enumerate(stems):
        tok = view.tokens[i]
        if by_lemma in leaf.words or by_text in leaf.words:
            hits.append(Hit("lemma", tok.text, tok.start, tok.end, leaf.describe))
            continue
        for seq in leaf.sequences:
            window = stems[i:i + len(seq)]
            if len(window) == len(seq) and all(s in pair for s, pair in zip(seq, window,
                                                                          strict=True)):
                last = view.tokens[i + len(seq) - 1]
                hits.append(Hit("lemma", view.text[tok.start:last.end], tok.start, last.end,
                                leaf.describe))
    return tuple(hits) or None


def _action(leaf: ActionLeaf, view: View) -> tuple[Hit, ...] | None:
    tokens = view.all_tokens
    found: list[Hit] = []
    for i in range(view.first, view.first + len(view.tokens)):
        tok = tokens[i]
        if tok.pos in syntax.COMMON_NOUN_POS:
            # A noun counts only when the rule lists it: "deployment" yes, "base" no.
            if tok.lemma not in leaf.nouns and tok.text.lower() not in leaf.nouns:
                continue
        elif stem(tok.lemma) not in leaf.verbs and stem(tok.text) not in leaf.verbs:
            continue
        kids = view.doc.children if view.doc is not None else syntax.children(tokens)
        hits = [Hit("action", tok.text, tok.start, tok.end, leaf.describe)]
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


def match_all(rules: tuple[CompiledRule, ...], analysis: Analysis,
              feed_id: str) -> list[RuleMatch]:
    """Every enabled rule that matches, in rule order (views built once per scope)."""
    by_scope: dict[str, list[View]] = {}
    out = []
    for rule in rules:
        if not rule.spec.enabled:
            continue
        scope = rule.spec.scope
        if scope not in by_scope:
            by_scope[scope] = views(analysis, feed_id, scope)
        if (m := match_rule(rule, analysis, feed_id, by_scope[scope])) is not None:
            out.append(m)
    return out
