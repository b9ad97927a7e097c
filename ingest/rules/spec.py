"""The rule file format (the product's contract with analysts), as pydantic models.

See README.md, "Writing rules".  Keys are never renamed; new ones are added.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ingest.durations import Duration

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
LEAF_KEYS = ("entity", "keyword", "lemma", "phrase", "regex", "source", "action", "near")
Scope = Literal["sentence", "paragraph", "document"]
SCOPES: tuple[str, ...] = ("sentence", "paragraph", "document")
BRANCH_KEYS = ("all", "any", "not")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


# A list of strings where one string may be written alone: `label: WEAPON`.
StrList = Annotated[list[str], BeforeValidator(_as_list), WithJsonSchema(
    {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})]


class EntitySpec(_Spec):
    """``entity:`` leaf: mentions filtered by label/name/id/role/country, at least ``min``."""

    label: StrList = []
    name: StrList = []
    id: StrList = []
    role: StrList = []
    country: StrList = []
    min: int = Field(1, ge=1)
    distinct: Literal["name", "id", "country"] | None = None



class NodeSpec(_Spec):
    """One node of a ``when`` tree: exactly one of the branch or leaf keys."""

    all: list[NodeSpec] | None = None
    any: list[NodeSpec] | None = None
    not_: NodeSpec | None = Field(None, alias="not")
    entity: EntitySpec | None = None
    keyword: StrList | None = None
    lemma: StrList | None = None
    phrase: StrList | None = None
    regex: StrList | None = None
    source: StrList | None = None
    action: ActionSpec | None = None
    near: NearSpec | None = None
    # Evaluate this node on each sentence (or paragraph) of the unit it is given, holding
    # when it holds on one of them: `not: {scope: sentence, all: [...]}`.
    scope: Scope | None = None


    @model_validator(mode="after")
    def _exactly_one(self) -> NodeSpec:
        present = [k for k in (*BRANCH_KEYS, *LEAF_KEYS)
                   if getattr(self, "not_" if k == "not" else k) is not None]
        if len(present) != 1:
            keys = ", ".join((*BRANCH_KEYS, *LEAF_KEYS))
            found = ", ".join(present) or "none"
            raise ValueError(f"a condition needs exactly one of {keys} (found: {found})")
        for key in ("all", "any", "keyword", "lemma", "phrase", "regex", "source"):
            value = getattr(self, key)
            if value is not None and len(value) == 0:
                raise ValueError(f"`{key}` must not be empty")
        return self


class ActionSpec(_Spec):
    """``action:`` leaf: a word of action (a verb, or a noun for it) and what it acts on.

    ``object`` is what the action is done to: the direct object, the subject of a
    passive ("missiles were deployed"), or the "of" complement of a noun ("deployment
    of missiles").  ``subject`` is who or what does it ("Patriot batteries arrived").
    Each is a condition that must hold on the head word of that phrase or on a word
    directly modifying it ("Patriot batteries", "cruise missiles").
    """

    verb: StrList = []  # verbs, in any form: deploy -> deployed, deploying, deploys
    noun: StrList = []  # nouns naming the action, as written: deployment, stationing
    object: NodeSpec | None = None
    subject: NodeSpec | None = None
    # false: only actions that are not negated or denied ("did not deploy", "denied plans
    # to deploy"); true: only those that are; absent: either.
    negated: bool | None = None


    @model_validator(mode="after")
    def _some_argument(self) -> ActionSpec:
        if not self.verb and not self.noun:
            raise ValueError("an action needs `verb`, `noun` or both")
        if self.object is None and self.subject is None:
            raise ValueError("an action needs `object`, `subject` or both")
        return self


class NearSpec(_Spec):
    """``near:`` leaf: a term within ``within`` tokens of a selected entity or another term.

    ``terms`` (and ``with``) are matched like ``lemma``: any form of each word.
    """

    terms: StrList
    entity: EntitySpec | None = None
    with_: StrList | None = Field(None, alias="with")
    within: int = Field(10, ge=1, le=200)


    @model_validator(mode="after")
    def _one_partner(self) -> NearSpec:
        if not self.terms:
            raise ValueError("`terms` must not be empty")
        if (self.entity is None) == (self.with_ is None):
            raise ValueError("`near` needs exactly one of `entity` or `with` besides `terms`")
        if self.with_ is not None and not self.with_:
            raise ValueError("`with` must not be empty")
        return self


NodeSpec.model_rebuild()


DEDUPE_PARTS = ("rule", "story", "source", "feed")
DEDUPE_ENTITY_ATTRS = ("role", "label", "id", "country", "name")


class ThresholdSpec(_Spec):
    """Fire only when ``count`` matches (or distinct sources/stories) fall within ``window``."""

    count: int = Field(ge=1)
    window: Duration
    distinct: Literal["entry", "source", "story"] = "entry"

    @field_validator("window")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("the window must be longer than zero, e.g. 6h")
        return v


class DedupeSpec(_Spec):
    """At most one alert per key per window; later matches are recorded as suppressed."""

    key: StrList = ["rule"]
    window: Duration

    @field_validator("key")
    @classmethod
    def _known_parts(cls, parts: list[str]) -> list[str]:
        for part in parts:
            head, _, value = part.partition(":")
            if head in DEDUPE_PARTS and not value:
                continue
            attr = head.removeprefix("entity.")
            if head.startswith("entity.") and attr in DEDUPE_ENTITY_ATTRS:
                continue
            raise ValueError(
                f"unknown dedupe key part {part!r}; write one of rule, story, source, or "
                "entity.<role|label|id|country|name>[:<value>], e.g. entity.role:defence-minister")
        return parts

    @field_validator("window")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("the window must be longer than zero, e.g. 24h")
        return v


class Example(_Spec):
    text: str
    date: dt.date | None = None


class ExamplesSpec(_Spec):
    """Texts the rule must (``match``) and must not (``no_match``) fire on."""

    match: list[str | Example] = []
    no_match: list[str | Example] = []
    date: dt.date | None = None  # the publication date examples are judged on (default: today)


class RuleSpec(_Spec):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    title: str
    description: str = ""
    severity: Severity = "medium"
    tags: StrList = []
    when: NodeSpec
    scope: Scope = "document"
    language: StrList = []  # ISO 639-1 codes the entry must be in (empty: any)
    notify: StrList = []
    enabled: bool = True
    threshold: ThresholdSpec | None = None
    dedupe: DedupeSpec | None = None
    on_update: Literal["notify", "silent"] = "silent"  # later copies of the same story
    examples: ExamplesSpec = ExamplesSpec()


    @field_validator("language")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        for code in codes:
            if not (len(code) == 2 and code.isalpha() and code.islower()):
                raise ValueError(f"language {code!r} is not a two-letter ISO 639-1 code "
                                 "such as en, fr or de")
        return codes
