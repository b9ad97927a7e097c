"""Reading rule files: YAML with line numbers, validated and compiled, every fault located."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest.errors import Problem, RuleError
from ingest.model import Analysis
from ingest.nlp.gazetteer import Gazetteer
from ingest.rules.compile import LIST_PREFIX, CompiledRule, CompileProblem, Lists, compile_rule
from ingest.rules.index import RuleIndex
from ingest.rules.spec import RuleSpec
from ingest.yamlfile import Locator, YamlProblem, load_yaml

RULE_SUFFIXES = (".yaml", ".yml")
NOT_RULES = ("entities.yaml", "entities.yml")  # the gazetteer lives beside the rules
NOT_RULE_DIRS = ("lists",)


@dataclass(frozen=True)
class RuleSet:
    """The rules in force: compiled, in file order, ids unique."""

    rules: tuple[CompiledRule, ...]

    _by_id: dict[str, CompiledRule] = field(init=False, repr=False, compare=False)
    _index: RuleIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # derived once: the set is frozen
        object.__setattr__(self, "_by_id", {r.id: r for r in self.rules})
        object.__setattr__(self, "_index", RuleIndex.build(self.rules))

    def get(self, rule_id: str) -> CompiledRule | None:
        return self._by_id.get(rule_id)

    def candidates(self, analysis: Analysis, feed_id: str) -> tuple[CompiledRule, ...]:
        """The enabled rules that may match ``analysis``, in rule order: a shared index of
        the terms and entity keys each rule needs (:mod:`ingest.rules.index`) rules out the
        rest without evaluating them."""
        return self._index.candidates(analysis, feed_id)

    def __len__(self) -> int:
        return len(self.rules)


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Rule files named by ``paths`` (files, or folders searched recursively)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(
                p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.name not in NOT_RULES
                and not any(part in NOT_RULE_DIRS for part in p.relative_to(path).parts[:-1])))
        else:
            out.append(path)
    return out


class TermListSpec(BaseModel):
    """A named vocabulary (``rules/lists/NAME.yaml``) that rules reference as ``list:NAME``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    terms: list[str] = Field(min_length=1)


def list_files(paths: Iterable[Path]) -> list[Path]:
    """Term-list files: ``lists/*.yaml`` in each rules folder (or beside a rule file)."""
    folders = {(p if p.is_dir() else p.parent) / "lists" for p in paths}
    return sorted(f for d in folders if d.is_dir() for f in d.iterdir()
                  if f.suffix in RULE_SUFFIXES)


def load_lists(paths: Iterable[Path]) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    """The term lists beside the rules, by name (the file's stem), and their problems."""
    lists: dict[str, tuple[str, ...]] = {}
    problems: list[Problem] = []
    for path in list_files(paths):
        try:
            data, locator = load_yaml(path)
            spec = TermListSpec.model_validate(data)
        except YamlProblem as exc:
            problems.extend(exc.problems)
            continue
        except ValidationError as exc:
            problems.extend(locator.problems(exc, ()))
            continue
        bad = [t for t in spec.terms if t.startswith(LIST_PREFIX) or not t.strip()]
        if bad:
            problems.append(Problem(str(path), locator.line(("terms",)),
                                    f"term {bad[0]!r}: a list holds plain terms only"))
            continue
        lists[path.stem] = tuple(spec.terms)
    return lists, problems


def load_rules(paths: Iterable[Path], gaz: Gazetteer | None,
               list_dirs: Iterable[Path] = ()) -> RuleSet:
    """Load and compile every rule; raise :class:`RuleError` listing every problem.

    Term lists come from ``lists/`` beside the rules and in ``list_dirs``' ``lists/``.
    """
    paths = list(paths)
    files = rule_files(paths)
    lists, problems = load_lists([*list_dirs, *paths])
    rules: list[CompiledRule] = []
    for path in files:
        if not path.exists():
            problems.append(Problem(str(path), None, "no such file or folder"))
            continue
        found, errors = _load_file(path, gaz, lists)
        rules.extend(found)
        problems.extend(errors)
    seen: dict[str, CompiledRule] = {}
    for rule in rules:
        if rule.id in seen:
            first = seen[rule.id]
            problems.append(Problem(rule.file, rule.line, f"rule id {rule.id!r} is already used "
                                    f"at {first.file}:{first.line}"))
        seen[rule.id] = rule
    if problems:
        raise RuleError(problems)
    return RuleSet(tuple(rules))


def _load_file(path: Path, gaz: Gazetteer | None,
               lists: Lists) -> tuple[list[CompiledRule], list[Problem]]:
    try:
        data, locator = load_yaml(path)
    except YamlProblem as exc:
        return [], exc.problems
    if isinstance(data, dict) and "rules" in data and isinstance(data["rules"], list):
        items: list[tuple[tuple[str | int, ...], object]] = [
            (("rules", i), item) for i, item in enumerate(data["rules"])]
    elif isinstance(data, dict):
        items = [((), data)]
    else:
        return [], [Problem(str(path), 1, "a rule file holds one rule (a mapping with id, "
                            "title and when) or `rules:` with a list of them")]
    rules, problems = [], []
    for prefix, item in items:
        rule, errors = _compile_item(item, prefix, locator, gaz, lists)
        problems.extend(errors)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def _compile_item(item: object, prefix: tuple[str | int, ...], locator: Locator,
                  gaz: Gazetteer | None, lists: Lists) -> tuple[CompiledRule | None, list[Problem]]:
    try:
        spec = RuleSpec.model_validate(item)
    except ValidationError as exc:
        return None, locator.problems(exc, prefix)
    try:
        return compile_rule(spec, gaz, locator.file, locator.line(prefix), lists), []
    except CompileProblem as exc:
        where = ".".join(str(p) for p in exc.path)
        return None, [Problem(locator.file, locator.line((*prefix, *exc.path)),
                              f"{where}: {exc}")]


def channel_problems(rules: RuleSet, channels: Collection[str], config: str) -> list[Problem]:
    """A problem for each ``notify`` entry naming a channel the configuration lacks."""
    if not channels:  # nothing configured (e.g. checking rules without a config): no check
        return []
    known = ", ".join(sorted(channels))
    return [Problem(rule.file, rule.line,
                    f"rule {rule.id!r}: notify: channel {name!r} is not configured in {config} "
                    f"(channels: {known}); write one of those, or add {name!r} under channels:")
            for rule in rules.rules for name in rule.spec.notify if name not in channels]
