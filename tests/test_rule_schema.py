"""The rule format's contract: the committed JSON Schema, shipped files, validation messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from pydantic import BaseModel, ValidationError

from ingest.cli_rules import rule_schema, schema_text
from ingest.errors import RuleError
from ingest.rules.load import load_rules, rule_files
from ingest.rules.spec import (
    ActionSpec,
    DedupeSpec,
    EntitySpec,
    ExamplesSpec,
    NearSpec,
    NodeSpec,
    RuleSpec,
    ThresholdSpec,
)

RULES = REPO / "rules"
SCHEMA_FILE = RULES / "rule.schema.json"
HEADER = "# yaml-language-server: $schema=rule.schema.json"
SHIPPED = rule_files([RULES])
TOP_LEVEL = sorted(p for p in RULES.glob("*.yaml") if p.name != "entities.yaml")
MODELS: dict[str, type[BaseModel]] = {
    "RuleSpec": RuleSpec, "NodeSpec": NodeSpec, "EntitySpec": EntitySpec,
    "ActionSpec": ActionSpec, "NearSpec": NearSpec, "ThresholdSpec": ThresholdSpec,
    "DedupeSpec": DedupeSpec, "ExamplesSpec": ExamplesSpec}


def rule_items(path: Path) -> list[Any]:
    """The rule mappings in a rule file (one rule, or `rules:` holding several)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("rules"), list):
        return list(data["rules"])
    return [data]


def as_json(value: Any) -> Any:
    """YAML data as a JSON document (dates become strings, as an editor sees them)."""
    return json.loads(json.dumps(value, default=str))


def base_rule(**extra: object) -> dict[str, object]:
    return {"id": "r", "title": "R", "when": {"keyword": "missile"}, **extra}


# --- the committed schema ---------------------------------------------------------------

def test_committed_schema_is_current() -> None:
    """rules/rule.schema.json is exactly what `ingest rules schema` prints."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), \
        "regenerate it: ingest rules schema > rules/rule.schema.json"


def test_schema_text_is_stable_json() -> None:
    """The schema text is sorted, indented JSON ending in a newline (diff-friendly)."""
    text = schema_text()
    assert text.endswith("}\n")
    assert json.loads(text) == rule_schema()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_schema_accepts_one_rule_or_a_list() -> None:
    """The top level is one rule, or a mapping with only `rules:` holding rules."""
    schema = rule_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    one, many = schema["anyOf"]
    assert one == {"$ref": "#/$defs/RuleSpec"}
    assert many["required"] == ["rules"] and many["additionalProperties"] is False
    assert many["properties"]["rules"]["items"] == {"$ref": "#/$defs/RuleSpec"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_schema_properties_are_the_yaml_keys(name: str) -> None:
    """Each model's schema lists exactly its fields, by the key written in YAML (`not`, `with`)."""
    model = MODELS[name]
    defs = rule_schema()["$defs"]
    keys = {f.alias or n for n, f in model.model_fields.items()}
    assert set(defs[name]["properties"]) == keys
    assert defs[name]["additionalProperties"] is False


def test_schema_refs_resolve() -> None:
    """Every $ref points at a definition in the schema."""
    schema = rule_schema()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]


STRING_OR_LIST = [("RuleSpec", "tags"), ("RuleSpec", "language"), ("RuleSpec", "notify"),
                  ("NodeSpec", "keyword"), ("NodeSpec", "lemma"), ("NodeSpec", "phrase"),
                  ("NodeSpec", "regex"), ("NodeSpec", "source"), ("EntitySpec", "label"),
                  ("EntitySpec", "role"), ("EntitySpec", "name"), ("EntitySpec", "id"),
                  ("EntitySpec", "country"), ("ActionSpec", "verb"), ("ActionSpec", "noun"),
                  ("NearSpec", "terms"), ("NearSpec", "with"), ("DedupeSpec", "key")]


def _allows_string(prop: dict[str, Any]) -> bool:
    options = prop.get("anyOf", [prop])
    return any(o.get("type") == "string" for o in options)


def test_schema_allows_a_single_string_where_the_loader_does() -> None:
    """`label: WEAPON` loads (one string is a list of one), so the schema must accept it too."""
    defs = rule_schema()["$defs"]
    wanting_lists = [f"{model}.{key}" for model, key in STRING_OR_LIST
                     if not _allows_string(defs[model]["properties"][key])]
    assert wanting_lists == []


# --- shipped rule files -----------------------------------------------------------------

def test_there_are_shipped_rules() -> None:
    """The rules folder holds rule files (and the listing skips entities.yaml and lists/)."""
    assert SHIPPED
    assert all(p.name != "entities.yaml" and "lists" not in p.relative_to(RULES).parts
               for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_rule_file_validates(path: Path) -> None:
    """Every shipped rule file is valid under the rule model the schema is generated from."""
    for item in rule_items(path):
        RuleSpec.model_validate(item)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float)}


def schema_faults(node: Any, schema: dict[str, Any], defs: dict[str, Any],
                  where: str = "") -> list[str]:
    """Where ``node`` breaks ``schema``: a partial validator (type, enum, required, keys,
    items, $ref, anyOf) used when the jsonschema package is not installed."""
    if "$ref" in schema:
        return schema_faults(node, defs[schema["$ref"].removeprefix("#/$defs/")], defs, where)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if _fits_type(node, s, defs)] or schema["anyOf"]
        results = [schema_faults(node, s, defs, where) for s in options]
        return min(results, key=len) if all(results) else []
    kind = schema.get("type")
    if kind is not None and not _fits_type(node, schema, defs):
        return [f"{where or '(top)'}: {node!r} is not of type {kind!r}"]
    if "enum" in schema and node not in schema["enum"]:
        return [f"{where}: {node!r} is not one of {schema['enum']}"]
    out: list[str] = []
    if isinstance(node, dict):
        props = schema.get("properties", {})
        out += [f"{where}: missing {k!r}" for k in schema.get("required", ()) if k not in node]
        for key, value in node.items():
            if key in props:
                out += schema_faults(value, props[key], defs, f"{where}.{key}".lstrip("."))
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}.{key}: not allowed".lstrip("."))
    elif isinstance(node, list) and "items" in schema:
        for i, value in enumerate(node):
            out += schema_faults(value, schema["items"], defs, f"{where}[{i}]")
    return out


def _fits_type(node: Any, schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return _fits_type(node, defs[schema["$ref"].removeprefix("#/$defs/")], defs)
    if "anyOf" in schema:
        return any(_fits_type(node, s, defs) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind in ("integer", "number") and isinstance(node, bool):
        return False
    return kind is None or isinstance(node, _TYPES[kind])


def test_partial_validator_finds_faults() -> None:
    """The fallback validator used below reports unknown keys, wrong types and bad values."""
    schema = rule_schema()
    good = {"id": "r", "title": "R", "when": {"all": [{"keyword": ["x"]}, {"not": {
        "near": {"terms": ["a"], "with": ["b"]}}}]}, "severity": "high"}
    assert schema_faults(good, schema, schema["$defs"]) == []
    bad = {"id": "r", "title": "R", "when": {"all": [{"keywrd": ["x"]}]}, "severity": "dire",
           "enabled": "yes"}
    faults = "\n".join(schema_faults(bad, schema, schema["$defs"]))
    assert "keywrd: not allowed" in faults
    assert "'dire' is not one of" in faults
    assert "enabled: 'yes' is not of type 'boolean'" in faults


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_rule_file_fits_the_committed_schema(path: Path) -> None:
    """What an editor checks: every shipped rule file fits rules/rule.schema.json."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    data = as_json(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert schema_faults(data, schema, schema["$defs"]) == []


def test_shipped_rule_files_validate_against_the_json_schema() -> None:
    """With jsonschema installed: the committed schema accepts every shipped rule file."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(
        json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    faults = {p.name: [e.message for e in validator.iter_errors(
        as_json(yaml.safe_load(p.read_text(encoding="utf-8"))))] for p in SHIPPED}
    assert {name: found for name, found in faults.items() if found} == {}


@pytest.mark.parametrize("path", TOP_LEVEL, ids=lambda p: p.name)
def test_rule_file_names_the_schema(path: Path) -> None:
    """Each rules/*.yaml rule file starts with the yaml-language-server schema line."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == HEADER, f"{path.name} starts with {first!r}"


# --- validation messages ----------------------------------------------------------------

def _message(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return "\n".join(str(e["msg"]) for e in exc.value.errors())


def test_unknown_dedupe_key_part() -> None:
    """A misspelt dedupe key part is named, with the parts that exist and an example."""
    with pytest.raises(ValidationError) as info:
        RuleSpec.model_validate(base_rule(dedupe={"key": ["rule", "entity.rank"],
                                                  "window": "1d"}))
    msg = _message(info)
    assert "unknown dedupe key part 'entity.rank'" in msg
    assert "entity.role:defence-minister" in msg and "story" in msg


@pytest.mark.parametrize("part", ["storey", "rule:x", "entities.role", "entity", "role:x"])
def test_other_bad_dedupe_key_parts(part: str) -> None:
    """Parts that are neither a plain word nor entity.<attr> are rejected."""
    with pytest.raises(ValidationError, match="unknown dedupe key part"):
        DedupeSpec.model_validate({"key": part, "window": "1d"})


@pytest.mark.parametrize("part", ["rule", "story", "source", "feed", "entity.id",
                                  "entity.role:defence-minister", "entity.label:GPE",
                                  "entity.country", "entity.name:Lloyd Austin"])
def test_good_dedupe_key_parts(part: str) -> None:
    """Every documented key part is accepted (a single string is a list of one)."""
    assert DedupeSpec.model_validate({"key": part, "window": "1d"}).key == [part]


@pytest.mark.parametrize("window", [0, "0s", "0h"])
def test_zero_windows_are_rejected(window: object) -> None:
    """A threshold or dedupe window of zero is an error with an example of a good one."""
    with pytest.raises(ValidationError, match=r"longer than zero, e\.g\. 6h"):
        RuleSpec.model_validate(base_rule(threshold={"count": 2, "window": window}))
    with pytest.raises(ValidationError, match=r"longer than zero, e\.g\. 24h"):
        RuleSpec.model_validate(base_rule(dedupe={"window": window}))


def test_windows_accept_durations() -> None:
    """Windows are written as durations and held in seconds."""
    rule = RuleSpec.model_validate(base_rule(threshold={"count": 2, "window": "1h30m"},
                                             dedupe={"window": "2d"}))
    assert rule.threshold is not None and rule.threshold.window == 5400
    assert rule.dedupe is not None and rule.dedupe.window == 172800
    assert rule.dedupe.key == ["rule"]


def test_threshold_count_must_be_positive() -> None:
    """A threshold of zero matches is rejected."""
    with pytest.raises(ValidationError):
        RuleSpec.model_validate(base_rule(threshold={"count": 0, "window": "1h"}))


@pytest.mark.parametrize("code", ["EN", "eng", "english", "e1", "en-GB"])
def test_bad_language_code(code: str) -> None:
    """A language that is not a lower-case two-letter code is named with examples."""
    with pytest.raises(ValidationError) as info:
        RuleSpec.model_validate(base_rule(language=["fr", code]))
    msg = _message(info)
    assert f"language {code!r} is not a two-letter ISO 639-1 code" in msg
    assert "such as en, fr or de" in msg


def test_language_may_be_one_string() -> None:
    """`language: en` is a list of one."""
    assert RuleSpec.model_validate(base_rule(language="en")).language == ["en"]


def test_near_without_partner() -> None:
    """`near` with terms only says it needs `entity` or `with`."""
    with pytest.raises(ValidationError) as info:
        RuleSpec.model_validate(base_rule(when={"near": {"terms": ["missile"]}}))
    assert "`near` needs exactly one of `entity` or `with` besides `terms`" in _message(info)


def test_near_with_both_partners() -> None:
    """`near` with both `entity` and `with` is rejected the same way."""
    with pytest.raises(ValidationError, match="exactly one of `entity` or `with`"):
        NearSpec.model_validate({"terms": "missile", "with": "launch",
                                 "entity": {"label": "GPE"}})


def test_near_with_empty_lists() -> None:
    """Empty `terms` or `with` are rejected with their names."""
    with pytest.raises(ValidationError, match="`terms` must not be empty"):
        NearSpec.model_validate({"terms": [], "with": ["launch"]})
    with pytest.raises(ValidationError, match="`with` must not be empty"):
        NearSpec.model_validate({"terms": ["missile"], "with": []})


def test_near_within_bounds() -> None:
    """`within` is at least 1 and at most 200 tokens; 10 by default."""
    assert NearSpec.model_validate({"terms": "a", "with": "b"}).within == 10
    for bad in (0, 201):
        with pytest.raises(ValidationError):
            NearSpec.model_validate({"terms": "a", "with": "b", "within": bad})


def test_action_needs_words_and_an_argument() -> None:
    """An action without verb/noun, or without object/subject, says what is missing."""
    with pytest.raises(ValidationError, match="needs `verb`, `noun` or both"):
        ActionSpec.model_validate({"object": {"keyword": "x"}})
    with pytest.raises(ValidationError, match="needs `object`, `subject` or both"):
        ActionSpec.model_validate({"verb": "deploy"})


def test_unknown_scope_is_rejected() -> None:
    """A node scope outside sentence/paragraph/document is an error."""
    with pytest.raises(ValidationError):
        RuleSpec.model_validate(base_rule(when={"scope": "page", "keyword": "x"}))


# --- the same faults through the loader, located ----------------------------------------

BAD_RULE = """\
id: bad
title: Bad
when:
  all:
    - lemma: [missile]
    - near:
        terms: [deploy]
        within: 5
language: [en, english]
dedupe:
  key: [rule, entity.rank]
  window: 0
threshold:
  count: 2
  window: 0s
"""


def test_loader_locates_every_fault(tmp_path: Path) -> None:
    """Each fault is reported once, as file:line: field: message."""
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_RULE, encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([path], None)
    found = {(p.line, p.message.split(":")[0]) for p in info.value.problems}
    assert found == {(6, "when.all.1.near"), (9, "language"), (11, "dedupe.key"),
                     (12, "dedupe.window"), (15, "threshold.window")}
    text = str(info.value)
    assert f"{path}:11: dedupe.key: " in text and "unknown dedupe key part 'entity.rank'" in text
    assert f"{path}:9: language: " in text and "'english'" in text
    assert f"{path}:6: when.all.1.near: " in text and "`entity` or `with`" in text
    assert f"{path}:15: threshold.window: " in text and "longer than zero" in text


def test_loader_locates_faults_in_a_rules_list(tmp_path: Path) -> None:
    """In a file holding `rules:`, the fault in the second rule gets that rule's line."""
    path = tmp_path / "many.yaml"
    path.write_text("rules:\n"
                    "  - id: good\n    title: Good\n    when: {keyword: x}\n"
                    "  - id: bad\n    title: Bad\n    when: {keyword: x}\n"
                    "    language: ENG\n", encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([path], None)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:8: rules.1.language: Value error, language 'ENG' is not a two-letter "
        "ISO 639-1 code such as en, fr or de"]
