"""Rule specs compiled once into immutable matcher trees.

Compilation checks what the schema cannot (regexes compile, roles and labels are
known) and precomputes stems and patterns; evaluation lives in :mod:`match`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

from ingest.nlp.gazetteer import Gazetteer, fold
from ingest.rules.spec import NodeSpec, RuleSpec

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


@dataclass(frozen=True)
class PatternLeaf:
    kind: str  # keyword | phrase | regex
    patterns: tuple[re.Pattern[str], ...]  # each regex compiled on its own
    describe: str


@dataclass(frozen=True)
class LemmaLeaf:
    words: frozenset[str]  # stems of one-word terms
    sequences: tuple[tuple[str, ...], ...]  # stems of multi-word terms
    describe: str


@dataclass(frozen=True)
class ActionLeaf:
    verbs: frozenset[str]  # stems: a verb in any form ("deployed", "stationing")
    nouns: frozenset[str]  # exact words: a noun counts only when listed ("deployment")
    object: Node | None
    subject: Node | None
    describe: str


@dataclass(frozen=True)
class SourceLeaf:
    feeds: frozenset[str]
    describe: str


Node = Branch | EntityLeaf | PatternLeaf | LemmaLeaf | SourceLeaf | ActionLeaf


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


def _words_pattern(terms: list[str], *, hyphen_free: bool) -> str:
    sep = r"[\s\-‐‑–]+" if hyphen_free else r"\s+"
    parts = []
    for term in sorted(set(terms), key=len, reverse=True):
        words = re.split(r"[\s\-]+", term.strip()) if hyphen_free else term.split()
        parts.append(sep.join(re.escape(w) for w in words if w))
    return rf"(?<!\w)(?:{'|'.join(parts)})(?!\w)"


def compile_node(node: NodeSpec, gaz: Gazetteer | None,
                 path: tuple[str | int, ...] = ("when",)) -> Node:
    if node.all is not None or node.any is not None:
        op = "all" if node.all is not None else "any"
        items = node.all if node.all is not None else node.any
        assert items is not None
        return Branch(op, tuple(compile_node(c, gaz, (*path, op, i)) for i, c in enumerate(items)))
    if node.not_ is not None:
        return Branch("not", (compile_node(node.not_, gaz, (*path, "not")),))
    if node.entity is not None:
        return _compile_entity(node, gaz, (*path, "entity"))
    if node.keyword is not None:
        pattern = re.compile(_words_pattern(node.keyword, hyphen_free=False), re.IGNORECASE)
        return PatternLeaf("keyword", (pattern,), f"keyword {node.keyword}")
    if node.phrase is not None:
        pattern = re.compile(_words_pattern(node.phrase, hyphen_free=True), re.IGNORECASE)
        return PatternLeaf("phrase", (pattern,), f"phrase {node.phrase}")
    if node.regex is not None:
        compiled = []
        for i, source in enumerate(node.regex):
            try:
                compiled.append(re.compile(source, re.IGNORECASE))
            except re.error as exc:
                raise CompileProblem((*path, "regex", i),
                                     f"regex does not compile: {exc}") from exc
        return PatternLeaf("regex", tuple(compiled), f"regex {node.regex}")
    if node.lemma is not None:
        words = frozenset(stem(t) for t in node.lemma if len(t.split()) == 1)
        seqs = tuple(tuple(stem(w) for w in t.split()) for t in node.lemma if len(t.split()) > 1)
        return LemmaLeaf(words, seqs, f"lemma {node.lemma}")
    if node.action is not None:
        act = node.action
        return ActionLeaf(
            verbs=frozenset(stem(v) for v in act.verb),
            nouns=frozenset(n.lower() for n in act.noun),
            object=compile_node(act.object, gaz, (*path, "action", "object"))
            if act.object is not None else None,
            subject=compile_node(act.subject, gaz, (*path, "action", "subject"))
            if act.subject is not None else None,
            describe=f"action {[*act.verb, *act.noun]}")
    assert node.source is not None
    return SourceLeaf(frozenset(node.source), f"source {node.source}")


def _compile_entity(node: NodeSpec, gaz: Gazetteer | None, path: tuple[str | int, ...]) -> Node:
    spec = node.entity
    assert spec is not None
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
        distinct=spec.distinct, describe=f"entity {shown}")


def compile_rule(spec: RuleSpec, gaz: Gazetteer | None, file: str = "<rule>",
                 line: int | None = None) -> CompiledRule:
    return CompiledRule(spec, compile_node(spec.when, gaz), file, line)
