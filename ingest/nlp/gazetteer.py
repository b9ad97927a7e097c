"""The entity gazetteer (``rules/entities.yaml``): its format and its compiled form.

The compiled :class:`Gazetteer` is immutable and picklable, so it can be shipped to
NLP worker processes; matching against it lives in :mod:`ingest.nlp.entities`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest.errors import Problem, RuleError
from ingest.yamlfile import YamlProblem, load_yaml

HONORIFICS = ("mr", "mrs", "ms", "dr", "gen", "general", "adm", "admiral", "secretary",
              "minister", "president", "chancellor", "premier", "sir", "dame", "lord")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CountrySpec(_Spec):
    code: str = Field(pattern=r"^[A-Z]{2}$")
    name: str
    aliases: list[str] = []
    demonyms: list[str] = []


class RoleSpec(_Spec):
    titles: list[str] = Field(min_length=1)
    implied_country: dict[str, str] = {}
    # Titles that name this role only for some countries ("chancellor": DE, AT) or for
    # all but some ("foreign secretary" is a civil servant in IN).  A title restricted
    # by ``only_for`` gives the role only when the text names the country.
    only_for: dict[str, list[str]] = {}
    not_for: dict[str, list[str]] = {}


class HeldRole(_Spec):
    role: str
    start: date | None = Field(None, alias="from")
    until: date | None = None
    country: str | None = None

    def active_on(self, day: date) -> bool:
        started = self.start is None or self.start <= day
        return started and (self.until is None or day < self.until)


class EntitySpec(_Spec):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._:-]*$")
    name: str
    label: str = "PERSON"
    country: str | None = None
    aliases: list[str] = []
    roles: list[HeldRole] = []
    surname: str | None = None  # how the text names them alone; "" for never


class GazetteerSpec(_Spec):
    countries: list[CountrySpec] = []
    roles: dict[str, RoleSpec] = {}
    entities: list[EntitySpec] = []


@dataclass(frozen=True)
class AliasTarget:
    """What a matched alias refers to."""

    kind: str  # entity | surname | country | demonym
    ref: str  # entity id or country code


@dataclass(frozen=True)
class Gazetteer:
    """Compiled gazetteer: lookup tables and the regular expressions that find names."""

    entities: dict[str, EntitySpec]
    countries: dict[str, CountrySpec]
    roles: dict[str, RoleSpec]
    aliases: dict[str, tuple[AliasTarget, ...]]  # folded alias -> targets
    names_ci: re.Pattern[str] | None  # aliases longer than 3 characters, any case
    names_cs: re.Pattern[str] | None  # short aliases ("US", "UK"), exact case
    titles: re.Pattern[str] | None
    title_roles: dict[str, tuple[str, ...]]  # folded title -> roles
    implied: dict[str, str]  # folded title -> country code
    country_words: re.Pattern[str] | None  # country names and demonyms, for title modifiers
    # (folded title, role) -> (countries, True for only these / False for all but these)
    title_limits: dict[tuple[str, str], tuple[frozenset[str], bool]] = field(
        default_factory=dict)
    abbreviations: frozenset[str] = frozenset()  # folded titles matched in exact case ("PM")

    def targets(self, text: str) -> tuple[AliasTarget, ...]:
        return self.aliases.get(fold(text), ())

    def title_roles_for(self, title: str, country: str | None, stated: bool = True
                        ) -> tuple[str, ...]:
        """The roles a title (folded) gives to an office-holder of ``country``.

        ``stated`` is False when the text does not name the country and it comes from
        the gazetteer's person: a title limited by ``only_for`` then gives nothing
        ("Labour leader Keir Starmer" was not prime minister).
        """
        out = []
        for role in self.title_roles.get(title, ()):
            limit = self.title_limits.get((title, role))
            if limit is None or (not limit[1] and country not in limit[0]) or (
                    limit[1] and stated and country in limit[0]):
                out.append(role)
        return tuple(out)


def fold(text: str) -> str:
    """The lookup form of a name or title: lower case, one space, one spelling of defence."""
    text = " ".join(text.replace("’", "'").split()).lower()
    return text.replace("defense", "defence")


def _alternation(words: list[str]) -> str:
    ordered = sorted(set(words), key=lambda w: (-len(w), w))
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)


def _bounded(words: list[str], flags: int = 0) -> re.Pattern[str] | None:
    if not words:
        return None
    return re.compile(rf"(?<![\w-])(?:{_alternation(words)})(?![\w-]|-\w)", flags)


# Where the family name comes first in English text ("Xi Jinping", "Kim Jong Un").  Not
# Hungary: English-language news writes Hungarian names given name first ("Viktor Orbán").
FAMILY_NAME_FIRST = frozenset({"CN", "KP", "KR", "VN", "TW"})


def surname_of(name: str, country: str | None = None) -> str | None:
    """The word a text uses for the person alone: the family name."""
    parts = [p for p in name.replace(",", " ").split()
             if p.strip(".").lower() not in ("jr", "sr", "ii", "iii", "iv")]
    if len(parts) < 2:
        return None
    return parts[0] if country in FAMILY_NAME_FIRST else parts[-1]


def surnames(entity: EntitySpec) -> set[str]:
    """Every family-name form of a person (explicit ``surname`` wins)."""
    if entity.label != "PERSON" or entity.surname == "":
        return set()
    if entity.surname:
        return {entity.surname}
    first = entity.name.split()[0] if entity.name.split() else ""
    out = set()
    for alias in (entity.name, *entity.aliases):
        s = surname_of(alias, entity.country)
        # Skip reversed-order aliases ("Nakatani Gen"), honorifics and one- or two-letter words.
        if s and s != first and fold(s).rstrip(".") not in HONORIFICS and len(s) > 2:
            out.add(s)
    return out


def compile_gazetteer(spec: GazetteerSpec) -> Gazetteer:
    aliases: dict[str, list[AliasTarget]] = {}

    def add(alias: str, target: AliasTarget) -> None:
        bucket = aliases.setdefault(fold(alias), [])
        if target not in bucket:
            bucket.append(target)

    for country in spec.countries:
        for alias in (country.name, *country.aliases):
            add(alias, AliasTarget("country", country.code))
        for demonym in country.demonyms:
            add(demonym, AliasTarget("demonym", country.code))
    # A family name shared by two known people ("Kim", "Li") names neither on its own.
    owners: dict[str, set[str]] = {}
    for entity in spec.entities:
        for name in surnames(entity):
            owners.setdefault(fold(name), set()).add(entity.id)
    own_surnames = {e.id: [n for n in surnames(e) if len(owners[fold(n)]) == 1]
                    for e in spec.entities}
    for entity in spec.entities:
        for alias in (entity.name, *entity.aliases):
            add(alias, AliasTarget("entity", entity.id))
        for name in own_surnames[entity.id]:
            add(name, AliasTarget("surname", entity.id))
    # Entity names win over surnames, and countries over demonyms, when spelled alike.
    rank = {"entity": 0, "country": 1, "demonym": 2, "surname": 3}
    frozen = {k: tuple(sorted(v, key=lambda t: rank[t.kind])) for k, v in aliases.items()}
    every = [a for e in spec.entities for a in (e.name, *e.aliases)]
    every += [n for names in own_surnames.values() for n in names]
    every += [a for c in spec.countries for a in (c.name, *c.aliases, *c.demonyms)]
    title_roles: dict[str, list[str]] = {}
    implied: dict[str, str] = {}
    limits: dict[tuple[str, str], tuple[frozenset[str], bool]] = {}
    for role, rspec in spec.roles.items():
        for title in rspec.titles:
            title_roles.setdefault(fold(title), []).append(role)
        implied.update({fold(t): c for t, c in rspec.implied_country.items()})
        for only, table in ((True, rspec.only_for), (False, rspec.not_for)):
            limits.update({(fold(t), role): (frozenset(codes), only) for t, codes in table.items()})
    # A title written with capitals in the file ("PM", "FM") matches only in that case:
    # "pm" is a time of day.
    spelled = {fold(t): t for r in spec.roles.values() for t in r.titles}
    abbreviations = frozenset(k for k, t in spelled.items() if t != t.lower())
    titles = [t.replace("defence", "defen[cs]e") for t in title_roles]
    title_re = (re.compile(rf"(?<![\w-])(?:{'|'.join(_title_patterns(titles, spelled))})"
                           r"(?P<plural>s)?(?P<suffix>-(?:designate|elect)|\s+(?:designate|elect|"
                           r"nominee|pick|candidate|hopeful))?(?![\w-])",
                           re.IGNORECASE) if titles else None)
    country_words = [a for c in spec.countries for a in (c.name, *c.aliases, *c.demonyms)]
    return Gazetteer(
        entities={e.id: e for e in spec.entities},
        countries={c.code: c for c in spec.countries},
        roles=dict(spec.roles),
        aliases=frozen,
        names_ci=_bounded([a for a in every if len(a) > 3], re.IGNORECASE),
        names_cs=_bounded([a for a in every if len(a) <= 3]),
        titles=title_re,
        title_roles={k: tuple(v) for k, v in title_roles.items()},
        implied=implied,
        country_words=_bounded(country_words),
        title_limits=limits,
        abbreviations=abbreviations,
    )


def _title_patterns(titles: list[str], spelled: dict[str, str]) -> list[str]:
    ordered = sorted(set(titles), key=lambda t: (-len(t), t))
    out = []
    for t in ordered:
        exact = spelled.get(t, t)
        if exact != exact.lower():  # an abbreviation: exact case only
            out.append(f"(?-i:{re.escape(exact)})")
        else:
            out.append(re.escape(t).replace(r"\ ", r"\s+").replace(r"defen\[cs\]e", "defen[cs]e"))
    return out


Located = tuple[tuple[str | int, ...], str]


def validate_spec(spec: GazetteerSpec) -> list[Located]:
    """Cross-references the schema cannot check: role names and country codes."""
    codes = {c.code for c in spec.countries}
    problems: list[Located] = []
    for i, entity in enumerate(spec.entities):
        if entity.country and codes and entity.country not in codes:
            problems.append((("entities", i, "country"),
                             f"entity {entity.id}: unknown country {entity.country!r}"))
        for j, held in enumerate(entity.roles):
            if held.role not in spec.roles:
                problems.append((("entities", i, "roles", j),
                                 f"entity {entity.id}: unknown role {held.role!r} "
                                 f"(define it under roles:)"))
            if held.country and codes and held.country not in codes:
                problems.append((("entities", i, "roles", j),
                                 f"entity {entity.id}: unknown country {held.country!r}"))
    for role, rspec in spec.roles.items():
        for title, code in rspec.implied_country.items():
            if codes and code not in codes:
                problems.append((("roles", role, "implied_country"),
                                 f"role {role}: title {title!r} implies unknown country {code!r}"))
        titles = {fold(t) for t in rspec.titles}
        for key in ("only_for", "not_for"):
            for title, listed in getattr(rspec, key).items():
                if fold(title) not in titles:
                    problems.append((("roles", role, key),
                                     f"role {role}: {key} names {title!r}, not one of its titles"))
                unknown = [c for c in listed if codes and c not in codes]
                if unknown:
                    problems.append((("roles", role, key),
                                     f"role {role}: {key} {title!r}: unknown countries {unknown}"))
    return problems


def load_gazetteer(path: Path) -> Gazetteer:
    """Read, validate and compile a gazetteer file; raise :class:`RuleError` located."""
    if not path.exists():
        raise RuleError([Problem(str(path), None, "gazetteer file not found "
                                 "(set `gazetteer:` in the config or create it)")])
    try:
        data, locator = load_yaml(path)
    except YamlProblem as exc:
        raise RuleError(exc.problems) from exc
    try:
        spec = GazetteerSpec.model_validate(data or {})
    except ValidationError as exc:
        raise RuleError(locator.problems(exc)) from exc
    problems = validate_spec(spec)
    if problems:
        raise RuleError([Problem(str(path), locator.line(loc), msg) for loc, msg in problems])
    return compile_gazetteer(spec)
