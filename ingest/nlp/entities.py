"""Entity mentions from NER spans, the gazetteer and role titles (pure).

Given the document text, its sentences, spaCy's NER spans and the publication
date, this decides who and what is mentioned: gazetteer entities (with the roles
they held on that date), countries, weapons, and people introduced by a title
("Russian Defence Minister Andrei Belousov", "Belousov, Russia's defence minister").
A bare surname that is also a place ("Austin, Texas") counts only in context.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

from ingest.model import Mention
from ingest.nlp.gazetteer import FAMILY_NAME_FIRST, HONORIFICS, AliasTarget, Gazetteer, fold

# Words before a title that mean the person does not hold the office now.
_NOT_HOLDER = re.compile(
    r"(?:\b(?:former|ex|then|late|incoming|outgoing-designate|designate|future|would-be|"
    r"deputy|vice|shadow|assistant|under|junior|aspiring|nominee|nominated|"
    r"first\s+deputy)\b[\s-]*)$", re.IGNORECASE)
_POSSESSIVE = r"(?:'s|’s|')?"
_REPORTING = re.compile(
    r"\s+(?:said|says|told|added|stated|noted|wrote|announced|warned|argued|insisted)\b")
_APPOSITION = re.compile(r"^\s*,\s*(?:the|his|her|its|who\s+is|who\s+was|now)?\s*$", re.I)
_COUNTERPART = re.compile(r"\b(?:counterparts?|opposite\s+numbers?)\b", re.IGNORECASE)
_HONORIFIC = re.compile(rf"\b(?:{'|'.join(HONORIFICS)})\.?\s+$", re.IGNORECASE)

NerSpan = tuple[int, int, str]  # start, end, label
SentenceOf = Callable[[int], int]  # character offset -> sentence index


@dataclass(frozen=True)
class _Name:
    start: int
    end: int
    text: str
    target: AliasTarget


def extract_mentions(text: str, sentences: Sequence[tuple[int, int]], ner: Sequence[NerSpan],
                     gaz: Gazetteer, on: date) -> tuple[Mention, ...]:
    """Every entity mention in ``text``, judged on the date ``on``."""
    starts = [s for s, _ in sentences] or [0]

    def sent(pos: int) -> int:
        return max(0, bisect.bisect_right(starts, pos) - 1)

    names = _find_names(text, gaz)
    mentions: list[Mention] = []
    claimed: list[tuple[int, int]] = []
    for n in names:
        m = _mention_for_name(text, n, gaz, on, ner, sent)
        if m is not None:
            mentions.append(m)
            claimed.append((m.start, m.end))
    for start, end, label in ner:
        if any(s < end and start < e for s, e in claimed):
            continue
        surface = text[start:end]
        country = _country_of(surface, gaz) if surface[:1].isupper() else None
        mentions.append(Mention(surface, start, end, label, sent(start), _strip_possessive(surface),
                                country=country))
    mentions.sort(key=lambda m: m.start)
    mentions = [_person_country(text, m, gaz) for m in mentions]
    mentions = _apply_titles(text, mentions, gaz, sent)
    mentions.extend(_counterparts(text, mentions, gaz, sent))
    mentions.sort(key=lambda m: (m.start, m.end))
    return tuple(mentions)


def _strip_possessive(text: str) -> str:
    return re.sub(r"(?:'s|’s|')$", "", text)


def _country_of(surface: str, gaz: Gazetteer) -> str | None:
    for target in gaz.targets(_strip_possessive(surface)):
        if target.kind in ("country", "demonym"):
            return target.ref
    return None


def _find_names(text: str, gaz: Gazetteer) -> list[_Name]:
    """Alias matches, longest first, without overlaps."""
    found: list[_Name] = []
    for pattern in (gaz.names_ci, gaz.names_cs):
        if pattern is None:
            continue
        for m in pattern.finditer(text):
            targets = gaz.targets(m.group(0))
            if not targets:
                continue
            target = targets[0]
            # Countries and people are written with a capital: "turkey", "china" are not.
            if not m.group(0)[0].isupper() and (
                    target.kind in ("country", "demonym", "surname")
                    or gaz.entities[target.ref].label == "PERSON"):
                continue
            found.append(_Name(m.start(), m.end(), m.group(0), target))
    found.sort(key=lambda n: (-(n.end - n.start), n.start))
    kept: list[_Name] = []
    for n in found:
        if not any(k.start < n.end and n.start < k.end for k in kept):
            kept.append(n)
    return sorted(kept, key=lambda n: n.start)


def _roles_on(gaz: Gazetteer, entity_id: str, on: date) -> tuple[str, ...]:
    return tuple(dict.fromkeys(r.role for r in gaz.entities[entity_id].roles if r.active_on(on)))


def _mention_for_name(text: str, n: _Name, gaz: Gazetteer, on: date, ner: Sequence[NerSpan],
                      sent: SentenceOf) -> Mention | None:
    kind, ref = n.target.kind, n.target.ref
    if kind in ("country", "demonym"):
        if _inside_other_name(n, ner):  # "Jordan Peterson", "the Warsaw Pact"
            return None
        label = "GPE" if kind == "country" else "NORP"
        name = gaz.countries[ref].name
        return Mention(n.text, n.start, n.end, label, sent(n.start), name,
                       id=f"country:{ref.lower()}", country=ref, source="gazetteer")
    entity = gaz.entities[ref]
    if kind == "surname" and not _surname_in_context(text, n, ner):
        return None
    if kind == "entity" and entity.label != "PERSON" and _inside_other_name(n, ner):
        return None
    start, end = n.start, n.end
    if kind == "surname":
        # Widen to spaCy's PERSON span ("Lloyd J. Austin") when it is this person's name;
        # a different full name around the same family name ("Zhang Wei") is someone else.
        for s, e, label in ner:
            if label == "PERSON" and s <= start and end <= e and (s, e) != (start, end):
                if _same_person(text[s:e], entity.name, entity.aliases):
                    start, end = s, e
                elif s == n.start and entity.country not in FAMILY_NAME_FIRST:
                    pass  # "Belousov Discuss Ukraine": a headline the model ran together
                else:
                    return None
    return Mention(text[start:end], start, end, entity.label, sent(start), entity.name,
                   id=entity.id, country=entity.country, roles=_roles_on(gaz, entity.id, on),
                   source="gazetteer")


# A known name inside a longer name of these kinds is part of that name:
# "Tomahawk Steakhouse", "the Patriot Act", "Austin Peay State University".
_OTHER_NAMES = frozenset({"ORG", "FAC", "GPE", "LOC", "PERSON", "WORK_OF_ART", "EVENT", "LAW"})


def _inside_other_name(n: _Name, ner: Sequence[NerSpan]) -> bool:
    return any(s <= n.start and n.end <= e and (e - s) > (n.end - n.start) and lab in _OTHER_NAMES
               for s, e, lab in ner)


def _same_person(span: str, name: str, aliases: Sequence[str]) -> bool:
    """Whether a full-name span agrees with one of the entity's names on the first word."""
    first = fold(_strip_possessive(span).split()[0]).rstrip(".")
    return any(fold(n.split()[0]).rstrip(".") == first for n in (name, *aliases) if n.split())


def _surname_in_context(text: str, n: _Name, ner: Sequence[NerSpan]) -> bool:
    """A bare family name names the person unless the text reads it as something else.

    "Austin, Texas" is a place: spaCy labels it GPE and a GPE follows the comma.
    """
    if not text[n.start].isupper():
        return False
    label = next((lab for s, e, lab in ner if s <= n.start and n.end <= e), None)
    if label == "PERSON" or _HONORIFIC.search(text[max(0, n.start - 20):n.start]):
        return True
    # spaCy's small model often calls an unfamiliar surname a place ("Austin and Blinken
    # met"): believe it only when the words around it say place ("in Austin", "Austin, Texas").
    return not (_place_follows(text, n.end, ner) or _PLACE_BEFORE.search(text[:n.start]))


_PLACE_BEFORE = re.compile(
    r"\b(?:in|at|from|(?<!spoke\s)(?<!spoken\s)(?<!speak\s)(?<!speaks\s)(?<!talked\s)"
    r"(?<!talk\s)(?<!talks\s)(?<!wrote\s)(?<!write\s)(?<!replied\s)(?<!said\s)"
    r"(?<!according\s)(?<!next\s)(?<!close\s)(?<!listened\s)(?<!sent\s)to|near|across|"
    r"outside|around|of|the|downtown|city\s+of)\s+$",
    re.IGNORECASE)


def _place_follows(text: str, pos: int, ner: Sequence[NerSpan]) -> bool:
    """True for "<name>, <place>": a comma, then a span spaCy labels as a place."""
    gap = re.match(r",\s*", text[pos:])
    if gap is None:
        return False
    start = pos + gap.end()
    return any(s == start and lab in ("GPE", "LOC") for s, _, lab in ner)


@dataclass(frozen=True)
class _Title:
    start: int  # including a country modifier before the title
    end: int
    title_start: int
    roles: tuple[str, ...]
    countries: tuple[str, ...]  # one for a singular title; any number for a plural one
    holder: bool  # False for "former", "deputy", ...
    plural: bool = False

    @property
    def country(self) -> str | None:
        return self.countries[0] if self.countries else None


def _find_titles(text: str, gaz: Gazetteer) -> list[_Title]:
    if gaz.titles is None:
        return []
    out = []
    for m in gaz.titles.finditer(text):
        plural = bool(m.group("plural"))
        folded = fold(m.group(0)[:-1] if plural else m.group(0))
        roles = gaz.title_roles.get(folded, ())
        start, country = m.start(), gaz.implied.get(folded)
        before = text[max(0, m.start() - 80):m.start()]
        if plural:
            out.append(_plural_title(text, m, before, roles, gaz))
            continue
        mod = _modifier_before(before, gaz)
        if mod is not None:
            start, country = m.start() - mod[0], mod[1]
        after = re.match(r"\s+(?:of|for)\s+(?:the\s+)?", text[m.end():])
        end = m.end()
        if after and gaz.country_words is not None:
            cm = gaz.country_words.match(text, m.end() + after.end())
            code_after = _country_of(cm.group(0), gaz) if cm else None
            if cm and code_after:
                country, end = code_after, cm.end()
        holder = not _NOT_HOLDER.search(text[max(0, start - 30):start]) and not _NOT_HOLDER.search(
            text[max(0, m.start() - 30):m.start()])
        out.append(_Title(start, end, m.start(), roles, (country,) if country else (), holder))
    return out


@lru_cache(maxsize=8)
def _list_patterns(words: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Lists of countries before ("the Turkish and Greek ") and after (" of Japan and Italy")."""
    item = rf"(?:the\s+)?(?:{words}){_POSSESSIVE}"
    joined = rf"{item}(?:\s*(?:,\s*and|,|and|&)\s*{item})*"
    return (re.compile(rf"({joined})\s+$"),
            re.compile(rf"\s+(?:of|from)\s+({joined})"))


def _plural_title(text: str, m: re.Match[str], before: str, roles: tuple[str, ...],
                  gaz: Gazetteer) -> _Title:
    """"the Turkish and Greek defence ministers": one office-holder per country named."""
    codes: list[str] = []
    start, end = m.start(), m.end()
    if gaz.country_words is not None:
        pre, post = _list_patterns(gaz.country_words.pattern)
        found = pre.search(before)
        if found:
            start = m.start() - (len(before) - found.start(1))
        else:
            found = post.match(text, m.end())
            if found:
                end = found.end(1)
        if found:
            codes = [c for w in gaz.country_words.finditer(found.group(1))
                     if (c := _country_of(w.group(0), gaz))]
    holder = not _NOT_HOLDER.search(text[max(0, start - 30):start])
    return _Title(start, end, m.start(), roles, tuple(dict.fromkeys(codes)), holder, plural=True)


def _modifier_before(before: str, gaz: Gazetteer) -> tuple[int, str] | None:
    """A country word right before a title: ("Russian ", RU) or ("Germany's ", DE)."""
    if gaz.country_words is None:
        return None
    best = None
    for m in gaz.country_words.finditer(before):
        rest = before[m.end():]
        if re.fullmatch(rf"{_POSSESSIVE}\s+(?:acting\s+|new\s+|then-?\s*|former\s+|top\s+)?", rest,
                        re.IGNORECASE):
            code = _country_of(m.group(0), gaz)
            if code:
                best = (len(before) - m.start(), code)
    return best


def _apply_titles(text: str, mentions: list[Mention], gaz: Gazetteer,
                  sent: SentenceOf) -> list[Mention]:
    people = [i for i, m in enumerate(mentions) if m.label == "PERSON"]
    out = list(mentions)
    for t in _find_titles(text, gaz):
        if t.plural and not t.countries and t.holder:
            # "Sweden's Pal Jonson and Finland's Antti Hakkanen, the two countries' ministers"
            for i in _coordinated_people_before(text, out, t.start):
                person = out[i]
                out[i] = replace(person, roles=tuple(dict.fromkeys((*person.roles, *t.roles))))
            continue
        if t.plural:
            if t.holder:
                out.extend(Mention(text[t.start:t.end], t.start, t.end, "PERSON", sent(t.start),
                                   text[t.start:t.end], country=code, roles=t.roles,
                                   source="title") for code in t.countries)
            continue
        holder = _holder_index(text, out, people, t)
        if holder is not None:
            person = out[holder]
            if t.holder and person.source == "gazetteer" and t.country and person.country \
                    and t.country != person.country:
                # A known person with another country's title: not theirs (a misreading).
                out.append(Mention(text[t.start:t.end], t.start, t.end, "PERSON",
                                   sent(t.start), text[t.start:t.end], country=t.country,
                                   roles=t.roles, source="title"))
            elif t.holder:
                roles = tuple(dict.fromkeys((*person.roles, *t.roles)))
                out[holder] = replace(person, roles=roles, country=t.country or person.country)
            else:  # "former Defence Minister X": X does not hold the office now
                roles = tuple(r for r in person.roles if r not in t.roles)
                country = person.country if person.source == "gazetteer" else \
                    t.country or person.country
                out[holder] = replace(person, roles=roles, country=country)
            continue
        if t.holder:
            out.append(Mention(text[t.start:t.end], t.start, t.end, "PERSON", sent(t.start),
                               text[t.start:t.end], country=t.country, roles=t.roles,
                               source="title"))
    # Titles shadow the country words inside them ("Russian" in "Russian Defence Minister").
    titled = [(m.start, m.end) for m in out if m.source == "title"]
    return [m for m in out if m.source == "title" or m.label not in ("GPE", "NORP")
            or not any(s <= m.start and m.end <= e for s, e in titled)]


_PLURAL_APPOSITION = re.compile(
    r"^\s*,\s*(?:the\s+|their\s+)?(?:two\s+|three\s+|four\s+)?"
    r"(?:(?:countries|nations)(?:'|’)\s+|respective\s+)?$", re.IGNORECASE)
_AND = re.compile(r"^\s*(?:,\s*and|,|and|&)\s*(?:\w+(?:'s|’s)\s+)?$")


def _coordinated_people_before(text: str, mentions: list[Mention], pos: int) -> list[int]:
    """People listed just before a plural title in apposition: "A and B, the two ..."."""
    people = [i for i, m in enumerate(mentions) if m.label == "PERSON" and m.end <= pos]
    if not people or not _PLURAL_APPOSITION.match(text[mentions[people[-1]].end:pos]):
        return []
    chosen = [people[-1]]
    for i in reversed(people[:-1]):
        if not _AND.match(text[mentions[i].end:mentions[chosen[-1]].start]):
            break
        chosen.append(i)
    return chosen if len(chosen) > 1 else []


def _person_country(text: str, m: Mention, gaz: Gazetteer) -> Mention:
    """"Sweden's Pal Jonson", "Chilean minister Marta Iturra": an unknown person's country."""
    if m.label != "PERSON" or m.country is not None:
        return m
    mod = _modifier_before(text[max(0, m.start - 40):m.start], gaz)
    return replace(m, country=mod[1]) if mod is not None else m


def _holder_index(text: str, mentions: list[Mention], people: list[int], t: _Title) -> int | None:
    for i in people:
        m = mentions[i]
        gap = text[t.end:m.start]
        if m.start >= t.end and len(gap) <= 3 and re.fullmatch(r"[\s,]*", gap):
            if "," in gap and _REPORTING.match(text, m.end):
                continue  # "... with China's defence minister, Austin said": the speaker
            return i
    for i in people:
        m = mentions[i]
        if m.end <= t.start and _APPOSITION.match(text[m.end:t.start]):
            return i
    return None


def _counterparts(text: str, mentions: list[Mention], gaz: Gazetteer,
                  sent: SentenceOf) -> list[Mention]:
    """"X met his Russian counterpart": the counterpart holds X's role, for Russia.

    Also "opposite number", "counterpart from Japan", and a named counterpart
    ("his British counterpart John Healey"), which gets the role on its own mention.
    """
    out: list[Mention] = []
    for m in _COUNTERPART.finditer(text):
        s = sent(m.start())
        holders = [x for x in mentions if x.sent == s and x.roles and x.end <= m.start()]
        if not holders:
            continue
        roles = holders[-1].roles
        start, end = m.start(), m.end()
        country = None
        mod = _modifier_before(text[max(0, start - 60):start], gaz)
        if mod is not None:
            start, country = start - mod[0], mod[1]
        elif gaz.country_words is not None:
            after = re.match(r"\s+(?:from|of)\s+(?:the\s+)?", text[end:])
            cm = gaz.country_words.match(text, end + after.end()) if after else None
            if cm and (code := _country_of(cm.group(0), gaz)):
                country, end = code, cm.end()
        gap = re.match(r"\s*,?\s*", text[end:])
        named = next((i for i, x in enumerate(mentions) if gap and x.label == "PERSON"
                      and x.start == end + gap.end()), None)
        if named is not None:
            person = mentions[named]
            mentions[named] = replace(person, roles=tuple(dict.fromkeys((*person.roles, *roles))),
                                      country=person.country or country)
            continue
        if country is None or country != holders[-1].country:
            out.append(Mention(text[start:end], start, end, "PERSON", s, text[start:end],
                               country=country, roles=roles, source="title"))
    return out
