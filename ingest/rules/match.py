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
    all_tokens: tuple[Token, ...] = ()  # every token of the document (syntax spans sentences)


def views(analysis: Analysis, feed_id: str, scope: str) -> list[View]:
    """The units a rule with ``scope`` is evaluated on."""
    if scope == "document" or not analysis.sentences:
        return [View(analysis.text, 0, len(analysis.text), analysis.tokens, analysis.mentions,
                     feed_id, analysis.tokens)]
    out = []
    for i, (start, end) in enumerate(analysis.sentences):
        out.append(View(analysis.text, start, end,
                        tuple(t for t in analysis.tokens if t.sent == i),
                        tuple(m for m in analysis.mentions if start <= m.start < end), feed_id,
                        analysis.tokens))
    return out


def evaluate(node: Node, view: View) -> tuple[Hit, ...] | None:
    """Evidence that ``node`` holds on ``view``, or None when it does not."""
    if isinstance(node, Branch):
        return _branch(node, view)
    if isinstance(node, EntityLeaf):
        return _entity(node, view)
    if isinstance(node, PatternLeaf):
        hits = tuple(Hit(node.kind, m.group(0), m.start(), m.end(), node.describe)
                     for m in node.pattern.finditer(view.text, view.start, view.end) if m.group(0))
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
    kids: list[list[int]] | None = None
    found: list[Hit] = []
    for i, tok in enumerate(tokens):
        if not (view.start <= tok.start < view.end):
            continue
        if tok.pos in syntax.NOUN_POS:
            # A noun counts only when the rule lists it: "deployment" yes, "base" no.
            if tok.lemma not in leaf.nouns and tok.text.lower() not in leaf.nouns:
                continue
        elif stem(tok.lemma) not in leaf.verbs and stem(tok.text) not in leaf.verbs:
            continue
        kids = kids if kids is not None else syntax.children(tokens)
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
        phrase = View(view.text, start, end,
                      tuple(t for t in tokens if start <= t.start < end),
                      tuple(m for m in view.mentions if start < m.end and m.start < end),
                      view.feed_id, tokens)
        hits = evaluate(node, phrase)
        if not hits:
            continue
        words = [tokens[k] for k in syntax.head_words(kids, tokens, head)]
        kept = [h for h in hits if any(h.start < w.end and w.start < h.end for w in words)]
        if kept:
            return kept
    return None


def match_rule(rule: CompiledRule, analysis: Analysis, feed_id: str) -> RuleMatch | None:
    """The rule's match on this entry, with its evidence, or None."""
    found: list[Hit] = []
    for view in views(analysis, feed_id, rule.spec.scope):
        hits = evaluate(rule.when, view)
        if hits is not None:
            found.extend(hits)
            if rule.spec.scope == "document":
                break
    if not found and not _matched_without_evidence(rule, analysis, feed_id):
        return None
    hits = tuple(sorted(set(found), key=lambda h: (h.start, h.end, h.kind)))
    entity_spans = {(h.start, h.end) for h in hits if h.kind == "entity"}
    entities = tuple(m for m in analysis.mentions if (m.start, m.end) in entity_spans)
    terms = tuple(dict.fromkeys(h.text for h in hits if h.kind not in ("entity", "source")))
    return RuleMatch(rule.id, entities, terms, hits, snippet(analysis, hits))


def _matched_without_evidence(rule: CompiledRule, analysis: Analysis, feed_id: str) -> bool:
    """A tree of only ``not`` leaves can hold with no evidence at all."""
    return any(evaluate(rule.when, v) == () for v in views(analysis, feed_id, rule.spec.scope))


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
    """Every enabled rule that matches, in rule order."""
    out = []
    for rule in rules:
        if rule.spec.enabled and (m := match_rule(rule, analysis, feed_id)) is not None:
            out.append(m)
    return out
