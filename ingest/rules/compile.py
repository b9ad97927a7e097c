"""Rule specs compiled once into immutable matcher trees.

Compilation checks what the schema cannot (regexes compile, roles and labels are
known) and precomputes stems and patterns; evaluation lives in :mod:`match`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

from ingest.nlp.gazetteer import Gazetteer, fold
from ingest.rules.spec import EntitySpec, NodeSpec, RuleSpec

_STEMMER = snowballstemmer.stemmer("english")
_STEMMER_LOCK = threading.Lock()  # the stemmer keeps per-call state: one caller at a time


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of a lower-case word: deploy, deployed, deployments -> deploy."""
    with _STEMMER_LOCK:
        return str(_STEMMER.stemWord(word.lower()))


@dataclass(frozen=True)
class Branch:
    op: str  # all | any | not
    children: tuple[Node, ...]
    path: str = "when"


@dataclass(frozen=True)
class Scoped:
    """A node evaluated on each sentence or paragraph of the unit it is given."""

    scope: str  # sentence | paragraph | document
    child: Node
    path: str = "when"


@dataclass(frozen=True)
class EntityLeaf:
    labels: frozenset[str]
    names: frozenset[str]  # folded canonical names and aliases
    ids: frozenset[str]
    roles: frozenset[str]
    countries: frozenset[str]
    min: int
    distinct: str | None
    describe: str
    path: str = "when"


@dataclass(frozen=True)
class PatternLeaf:
    kind: str  # keyword | phrase | regex
    patterns: tuple[re.Pattern[str], ...]  # each regex compiled on its own
    describe: str
    path: str = "when"
    terms: tuple[str, ...] = ()  # the terms (keyword, phrase) or sources (regex) as written


@dataclass(frozen=True)
class LemmaLeaf:
    words: frozenset[str]  # stems of one-word terms
    sequences: tuple[tuple[str, ...], ...]  # stems of multi-word terms
    describe: str
    path: str = "when"
    firsts: frozenset[str] = frozenset()  # the first stem of each sequence (a quick filter)


@dataclass(frozen=True)
class ActionLeaf:
    verbs: frozenset[str]  # stems: a verb in any form ("deployed", "stationing")
    nouns: frozenset[str]  # exact words: a noun counts only when listed ("deployment")
    object: Node | None
    subject: Node | None
    describe: str
    path: str = "when"
    negated: bool | None = None  # None: either; False: only actions neither negated nor denied
    phrasal: frozenset[tuple[str, str]] = frozenset()  # (verb stem, particle): "call up"


@dataclass(frozen=True)
class NearLeaf:
    terms: LemmaLeaf
    entity: EntityLeaf | None
    other: LemmaLeaf | None  # `with:` terms
    within: int
    describe: str
    path: str = "when"


@dataclass(frozen=True)
class SourceLeaf:
    feeds: frozenset[str]
    describe: str
    path: str = "when"


Node = Branch | Scoped | EntityLeaf | PatternLeaf | LemmaLeaf | SourceLeaf | ActionLeaf | NearLeaf
Lists = Mapping[str, tuple[str, ...]]
LIST_PREFIX = "list:"


@dataclass(frozen=True)
class CompiledRule:
    spec: RuleSpec
    when: Node
    file: str
    line: int | None

    @property
    def id(self) -> str:
        return self.spec.id


class CompileProblem(ValueError):
    """A fault found while compiling; ``path`` locates it inside the rule."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        super().__init__(message)


def path_text(path: tuple[str | int, ...]) -> str:
    """``("when", "all", 0, "entity")`` -> ``when.all[0].entity``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def expand_terms(terms: list[str], lists: Lists, path: tuple[str | int, ...]) -> list[str]:
    """Terms with every ``list:NAME`` item replaced by that list's terms."""
    out: list[str] = []
    for i, term in enumerate(terms):
        if not term.startswith(LIST_PREFIX):
            out.append(term)
            continue
        name = term[len(LIST_PREFIX):].strip()
        if name not in lists:
            known = ", ".join(sorted(lists)) or "none"
            raise CompileProblem((*path, i), f"no term list {name!r} (lists defined: {known}); "
                                 f"add rules/lists/{name}.yaml holding `terms: [...]`")
        out.extend(lists[name])
    return out


def _words_pattern(terms: list[str], *, hyphen_free: bool) -> str:
    sep = r"[\s\-‐‑–]+" if hyphen_free else r"\s+"
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        words = re.split(r"[\s\-]+", term.strip()) if hyphen_free else term.split()
        parts.append(sep.join(re.escape(w) for w in words if w))
    return rf"(?<!\w)(?:{'|'.join(parts)})(?!\w)"


def compile_node(node: NodeSpec, gaz: Gazetteer | None, path: tuple[str | int, ...] = ("when",),
                 lists: Lists | None = None) -> Node:
    lists = lists if lists is not None else {}
    inner = _compile_inner(node, gaz, path, lists)
    return Scoped(node.scope, inner, path_text(path)) if node.scope is not None else inner


def _compile_inner(node: NodeSpec, gaz: Gazetteer | None, path: tuple[str | int, ...],
                   lists: Lists) -> Node:
    where = path_text(path)
    if node.all is not None or node.any is not None:
        op = "all" if node.all is not None else "any"
        items = node.all if node.all is not None else node.any
        assert items is not None
        return Branch(op, tuple(compile_node(c, gaz, (*path, op, i), lists)
                                for i, c in enumerate(items)), where)
    if node.not_ is not None:
        return Branch("not", (compile_node(node.not_, gaz, (*path, "not"), lists),), where)
    if node.entity is not None:
        return _compile_entity(node.entity, gaz, (*path, "entity"))
    if node.keyword is not None:
        terms = expand_terms(node.keyword, lists, (*path, "keyword"))
        pattern = re.compile(_words_pattern(terms, hyphen_free=False), re.IGNORECASE)
        return PatternLeaf("keyword", (pattern,), f"keyword {_shown(node.keyword)}",
                           f"{where}.keyword", tuple(terms))
    if node.phrase is not None:
        terms = expand_terms(node.phrase, lists, (*path, "phrase"))
        pattern = re.compile(_words_pattern(terms, hyphen_free=True), re.IGNORECASE)
        return PatternLeaf("phrase", (pattern,), f"phrase {_shown(node.phrase)}",
                           f"{where}.phrase", tuple(terms))
    if node.regex is not None:
        compiled = []
        for i, source in enumerate(node.regex):
            try:
                compiled.append(re.compile(source, re.IGNORECASE))
            except re.error as exc:
                raise CompileProblem((*path, "regex", i),
                                     f"regex does not compile: {exc}") from exc
        return PatternLeaf("regex", tuple(compiled), f"regex {node.regex}", f"{where}.regex",
                           tuple(node.regex))
    if node.lemma is not None:
        terms = expand_terms(node.lemma, lists, (*path, "lemma"))
        return lemma_leaf(terms, f"lemma {_shown(node.lemma)}", f"{where}.lemma")
    if node.action is not None:
        return _compile_action(node, gaz, path, lists)
    if node.near is not None:
        near = node.near
        terms = expand_terms(near.terms, lists, (*path, "near", "terms"))
        other = None
        if near.with_ is not None:
            with_terms = expand_terms(near.with_, lists, (*path, "near", "with"))
            other = lemma_leaf(with_terms, f"terms {_shown(near.with_)}", f"{where}.near.with")
        entity = _compile_entity(near.entity, gaz, (*path, "near", "entity")) \
            if near.entity is not None else None
        partner = entity.describe if entity is not None else f"{_shown(near.with_ or [])}"
        return NearLeaf(lemma_leaf(terms, f"terms {_shown(near.terms)}", f"{where}.near.terms"),
                        entity, other, near.within,
                        f"near {_shown(near.terms)} within {near.within} of {partner}",
                        f"{where}.near")
    assert node.source is not None
    return SourceLeaf(frozenset(node.source), f"source {node.source}", f"{where}.source")


def _shown(terms: list[str]) -> str:
    return "[" + ", ".join(terms[:6]) + (", …" if len(terms) > 6 else "") + "]"


def lemma_leaf(terms: list[str], describe: str, path: str) -> LemmaLeaf:
    words = frozenset(stem(t) for t in terms if len(t.split()) == 1)
    seqs = tuple(tuple(stem(w) for w in t.split()) for t in terms if len(t.split()) > 1)
    return LemmaLeaf(words, seqs, describe, path, frozenset(q[0] for q in seqs))


def _compile_action(node: NodeSpec, gaz: Gazetteer | None, path: tuple[str | int, ...],
                    lists: Lists) -> ActionLeaf:
    act = node.action
    assert act is not None
    verbs = expand_terms(act.verb, lists, (*path, "action", "verb"))
    nouns = expand_terms(act.noun, lists, (*path, "action", "noun"))
    return ActionLeaf(
        verbs=frozenset(stem(v) for v in verbs if len(v.split()) == 1),
        phrasal=frozenset((stem(v.split()[0]), " ".join(v.split()[1:]).lower())
                          for v in verbs if len(v.split()) > 1),
        nouns=frozenset(n.lower() for n in nouns),
        object=compile_node(act.object, gaz, (*path, "action", "object"), lists)
        if act.object is not None else None,
        subject=compile_node(act.subject, gaz, (*path, "action", "subject"), lists)
        if act.subject is not None else None,
        describe=f"action {_shown([*act.verb, *act.noun])}"
        + ("" if act.negated is None else f" (negated: {str(act.negated).lower()})"),
        path=f"{path_text(path)}.action", negated=act.negated)


def _compile_entity(spec: EntitySpec, gaz: Gazetteer | None,
                    path: tuple[str | int, ...]) -> EntityLeaf:
    if gaz is not None and gaz.roles:
        unknown = [r for r in spec.role if r not in gaz.roles]
        if unknown:
            raise CompileProblem((*path, "role"), f"unknown role {unknown[0]!r}; the gazetteer "
                                 f"defines: {', '.join(sorted(gaz.roles))}")
    names = set()
    for name in spec.name:
        names.add(fold(name))
        if gaz is not None:
            for target in gaz.targets(name):
                if target.kind == "entity":
                    names.add(fold(gaz.entities[target.ref].name))
    shown = {k: v for k, v in spec.model_dump(exclude_defaults=True).items()}
    return EntityLeaf(
        labels=frozenset(label.upper() for label in spec.label), names=frozenset(names),
        ids=frozenset(spec.id), roles=frozenset(spec.role),
        countries=frozenset(c.upper() for c in spec.country), min=spec.min,
        distinct=spec.distinct, describe=f"entity {shown}", path=path_text(path))


def compile_rule(spec: RuleSpec, gaz: Gazetteer | None, file: str = "<rule>",
                 line: int | None = None, lists: Lists | None = None) -> CompiledRule:
    return CompiledRule(spec, compile_node(spec.when, gaz, ("when",), lists), file, line)


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node below it: branch children, scoped nodes, action arguments."""
    todo: list[Node] = [node]
    while todo:
        n = todo.pop()
        yield n
        if isinstance(n, Branch):
            todo.extend(n.children)
        elif isinstance(n, Scoped):
            todo.append(n.child)
        elif isinstance(n, ActionLeaf):
            todo.extend(c for c in (n.object, n.subject) if c is not None)


def leaf_descriptions(node: Node) -> dict[str, str]:
    """Each leaf's path (as in :attr:`~ingest.model.Hit.leaf`) and its description."""
    return {n.path: n.describe for n in walk(node) if not isinstance(n, Branch | Scoped)}
