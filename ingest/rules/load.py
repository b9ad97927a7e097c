"""Reading rule files: YAML with line numbers, validated and compiled, every fault located."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ingest.errors import Problem, RuleError
from ingest.nlp.gazetteer import Gazetteer
from ingest.rules.compile import CompiledRule, CompileProblem, compile_rule
from ingest.rules.spec import RuleSpec
from ingest.yamlfile import Locator, YamlProblem, load_yaml

RULE_SUFFIXES = (".yaml", ".yml")
NOT_RULES = ("entities.yaml", "entities.yml")  # the gazetteer lives beside the rules
NOT_RULE_DIRS = ("lists",)


@dataclass(frozen=True)
class RuleSet:
    """The rules in force: compiled, in file order, ids unique."""

    rules: tuple[CompiledRule, ...]

    def get(self, rule_id: str) -> CompiledRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

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


def load_rules(paths: Iterable[Path], gaz: Gazetteer | None) -> RuleSet:
    """Load and compile every rule; raise :class:`RuleError` listing every problem."""
    files = rule_files(paths)
    problems: list[Problem] = []
    rules: list[CompiledRule] = []
    for path in files:
        if not path.exists():
            problems.append(Problem(str(path), None, "no such file or folder"))
            continue
        found, errors = _load_file(path, gaz)
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


def _load_file(path: Path, gaz: Gazetteer | None) -> tuple[list[CompiledRule], list[Problem]]:
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
        rule, errors = _compile_item(item, prefix, locator, gaz)
        problems.extend(errors)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def _compile_item(item: object, prefix: tuple[str | int, ...], locator: Locator,
                  gaz: Gazetteer | None) -> tuple[CompiledRule | None, list[Problem]]:
    try:
        spec = RuleSpec.model_validate(item)
    except ValidationError as exc:
        return None, locator.problems(exc, prefix)
    try:
        return compile_rule(spec, gaz, locator.file, locator.line(prefix)), []
    except CompileProblem as exc:
        where = ".".join(str(p) for p in exc.path)
        return None, [Problem(locator.file, locator.line((*prefix, *exc.path)),
                              f"{where}: {exc}")]
