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

from ingest.model import Mention
from ingest.nlp.counterparts import counterparts
from ingest.nlp.gazetteer import FAMILY_NAME_FIRST, HONORIFICS, AliasTarget, Gazetteer, fold
from ingest.nlp.titles import (
    HOLDER_GAP,
    QUALIFIERS,
    NerSpan,
    Title,
    country_after_name,
    country_of,
    find_titles,
    gap_after,
    modifier_before,
    officer_between,
    strip_possessive,
)

_REPORTING = re.compile(
    r"\s+(?:said|says|told|added|stated|noted|wrote|announced|warned|argued|insisted)\b")
# "X, the former defence minister", "X, who was defence minister": the title is X's.
_APPOSITION = re.compile(
    rf"^\s*,\s*(?:(?:the|his|her|its|a|who\s+is|now)\s+)?{QUALIFIERS}$", re.IGNORECASE)
_LIST_GOES_ON = re.compile(r",?\s+(?:and|or)\s")
_HONORIFIC = re.compile(rf"\b(?:{'|'.join(HONORIFICS)})\.?\s+$", re.IGNORECASE)

SentenceOf = Callable[[int], int]  # character offset -> sentence index


@dataclass(frozen=True)
class _Name:
    start: int
    end: int
    text: str
    target: AliasTarget


# Zero-width characters that wire copy puts inside names ("Keir \u200cStarmer"): read
# as spaces, which keeps every offset.
_ZERO_WIDTH = str.maketrans(dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff", " "))


def extract_mentions(text: str, sentences: Sequence[tuple[int, int]], ner: Sequence[NerSpan],
                     gaz: Gazetteer, on: date) -> tuple[Mention, ...]:
    """Every entity mention in ``text``, judged on the date ``on``."""
    found = _extract(text.translate(_ZERO_WIDTH), sentences, ner, gaz, on)
    if not any(c in text for c in "\u200b\u200c\u200d\u2060\ufeff"):
        return found
    return tuple(replace(m, text=text[m.start:m.end]) for m in found)


def _extract(text: str, sentences: Sequence[tuple[int, int]], ner: Sequence[NerSpan],
             gaz: Gazetteer, on: date) -> tuple[Mention, ...]:
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
        country = country_of(surface, gaz) if surface[:1].isupper() else None
        mentions.append(Mention(surface, start, end, label, sent(start), strip_possessive(surface),
                                country=country))
    mentions.sort(key=lambda m: m.start)
    mentions = [_person_country(text, m, gaz) for m in mentions]
    mentions = _apply_titles(text, mentions, ner, gaz, sent)
    mentions = counterparts(text, mentions, gaz, sent)
    mentions = [_resolve_holder(m, gaz, on) for m in mentions]
    mentions.sort(key=lambda m: (m.start, m.end))
    return tuple(mentions)


def _resolve_holder(m: Mention, gaz: Gazetteer, on: date) -> Mention:
    """A title without a name ("the Pentagon chief", "his Russian counterpart") names the
    one person the gazetteer says held that office for that country on ``on``, if any."""
    if m.source != "title" or m.id is not None or m.country is None or not m.roles:
        return m
    holders = {e.id for e in gaz.entities.values() for r in e.roles
               if r.role == m.roles[0] and r.active_on(on)
               and (r.country or e.country) == m.country}
    if len(holders) != 1:
        return m
    holder = gaz.entities[holders.pop()]
    return replace(m, id=holder.id, name=holder.name)


def _find_names(text: str, gaz: Gazetteer) -> list[_Name]:
    """Alias matches, longest first, without overlaps."""
    found: list[_Name] = []
    for pattern in (gaz.names_ci, gaz.names_cs):
        if pattern is None:
            continue
        pos = 0
        while (m := pattern.search(text, pos)) is not None:
            pos = m.end()
            targets = gaz.targets(m.group(0))
            if not targets:
                continue
            target = targets[0]
            # Countries and people are written with a capital: "turkey", "china" are not.
            # A rejected match may hide a shorter one inside it: "king Felipe VI".
            if not m.group(0)[0].isupper() and (
                    target.kind in ("country", "demonym", "surname")
                    or gaz.entities[target.ref].label == "PERSON"):
                pos = m.start() + 1
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


def _country_on(gaz: Gazetteer, entity_id: str, on: date) -> str | None:
    """The person's country, or the one all their offices on ``on`` are held for
    (Kaja Kallas, from Estonia, as the EU's foreign-policy chief)."""
    entity = gaz.entities[entity_id]
    held = {r.country for r in entity.roles if r.active_on(on)}
    return held.pop() if len(held) == 1 and None not in held else entity.country


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
                if e == end and _is_title(text[s:start], gaz):
                    continue  # spaCy's "PM Starmer": a title and the surname
                if _same_person(text[s:e], entity.name, entity.aliases):
                    start, end = s, e
                elif s == n.start and entity.country not in FAMILY_NAME_FIRST:
                    pass  # "Belousov Discuss Ukraine": a headline the model ran together
                else:
                    return None
    return Mention(text[start:end], start, end, entity.label, sent(start), entity.name,
                   id=entity.id, country=_country_on(gaz, entity.id, on),
                   roles=_roles_on(gaz, entity.id, on),
                   source="gazetteer")


def _is_title(words: str, gaz: Gazetteer) -> bool:
    """Whether ``words`` are only a role title, possibly with a country: "PM ", "US President "."""
    words = words.strip()
    if not words or gaz.titles is None:
        return False
    found = gaz.titles.search(words)
    return found is not None and found.end() == len(words) and (
        found.start() == 0 or modifier_before(words[:found.start()], gaz) is not None)


# A known name inside a longer name of these kinds is part of that name:
# "Tomahawk Steakhouse", "the Patriot Act", "Austin Peay State University".
_OTHER_NAMES = frozenset({"ORG", "FAC", "GPE", "LOC", "PERSON", "WORK_OF_ART", "EVENT", "LAW"})


def _inside_other_name(n: _Name, ner: Sequence[NerSpan]) -> bool:
    return any(s <= n.start and n.end <= e and (e - s) > (n.end - n.start) and lab in _OTHER_NAMES
               for s, e, lab in ner)


def _same_person(span: str, name: str, aliases: Sequence[str]) -> bool:
    """Whether a full-name span agrees with one of the entity's names on the first word."""
    first = fold(strip_possessive(span).split()[0]).rstrip(".")
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
    if label in _NOT_A_NAME:  # "until May": a month, not Theresa May
        return False
    if any(s <= n.start and n.end <= e and (s, e) != (n.start, n.end) and (
            lab in _THING_NAMES or (lab == "ORG" and s < n.start)) for s, e, lab in ner):
        return False  # part of a building's, law's or thing's name: "the Kennedy Center"
    # spaCy's small model often calls an unfamiliar surname a place ("Austin and Blinken
    # met"): believe it only when the words around it say place ("in Austin", "Austin, Texas").
    return not (_place_follows(text, n.end, ner) or _PLACE_BEFORE.search(text[:n.start]))


# (An organisation's name is not enough: spaCy reads a title-case headline that starts
# with a surname, "Macron Pledges Air Defence", as one.)
_THING_NAMES = frozenset({"FAC", "WORK_OF_ART", "EVENT", "LAW", "PRODUCT"})
_NOT_A_NAME = frozenset({"DATE", "TIME", "MONEY", "PERCENT", "CARDINAL", "ORDINAL", "QUANTITY"})
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


def _person_country(text: str, m: Mention, gaz: Gazetteer) -> Mention:
    """"Sweden's Pal Jonson", "Chilean minister Marta Iturra": an unknown person's country."""
    if m.label != "PERSON" or m.country is not None:
        return m
    mod = modifier_before(text[max(0, m.start - 40):m.start], gaz)
    return replace(m, country=mod[1]) if mod is not None else m


def _apply_titles(text: str, mentions: list[Mention], ner: Sequence[NerSpan], gaz: Gazetteer,
                  sent: SentenceOf) -> list[Mention]:
    out = list(mentions)
    for t in find_titles(text, ner, gaz):
        if t.other:
            continue
        if t.plural:
            out.extend(_plural_holders(text, out, t, gaz, sent))
            continue
        if any(m.source == "gazetteer" and m.start == t.title_start
               and fold(m.name).startswith(t.folded) for m in out):
            continue  # a given name, not a title: "Amir Hatami", "Pope Francis"
        holder = _holder_index(text, out, t, sent)
        person = out[holder] if holder is not None else None
        gap = text[t.end:person.start] if person is not None and person.start >= t.end else \
            gap_after(text, t.end)
        if t.informal and officer_between(gap):
            continue  # "defence chief Admiral Tony Radakin": the head of the armed forces
        country = t.country
        if country is None and person is not None:
            country = country_after_name(text, person.end, gaz)
        stated = country is not None
        if country is None and person is not None and person.source == "gazetteer":
            country = person.country
        roles = gaz.title_roles_for(t.folded, country, stated)
        if not roles or (person is None and country is None and t.folded in gaz.abbreviations):
            continue  # "Chancellor Rachel Reeves" (not DE), "at 3 PM"
        if person is not None and holder is not None:
            if t.holder and person.source == "gazetteer" and t.country and person.country \
                    and t.country != person.country:
                # A known person with another country's title: not theirs (a misreading).
                out.append(_title_mention(text, t, roles, country, sent))
            else:
                out[holder] = _titled(person, t, roles, country)
            continue
        if t.holder:
            out.append(_title_mention(text, t, roles, country, sent))
    # Titles shadow the country words inside them ("Russian" in "Russian Defence Minister").
    titled = [(m.start, m.end) for m in out if m.source == "title"]
    return [m for m in out if m.source == "title" or m.label not in ("GPE", "NORP")
            or not any(s <= m.start and m.end <= e for s, e in titled)]


def _title_mention(text: str, t: Title, roles: tuple[str, ...], country: str | None,
                   sent: SentenceOf) -> Mention:
    """A title with nobody named is a mention by itself: "Russia's defence minister said"."""
    return Mention(text[t.start:t.end], t.start, t.end, "PERSON", sent(t.start),
                   text[t.start:t.end], country=country, roles=roles, source="title")


def _titled(person: Mention, t: Title, roles: tuple[str, ...], country: str | None) -> Mention:
    """The person a title introduces, with the title's roles added or (for "former") removed."""
    if t.holder:
        return replace(person, roles=tuple(dict.fromkeys((*person.roles, *roles))),
                       country=country or person.country)
    # "former Defence Minister X": X does not hold the office now.
    kept = tuple(r for r in person.roles if r not in roles)
    return replace(person, roles=kept, country=person.country if person.source == "gazetteer"
                   else country or person.country)


def _plural_holders(text: str, mentions: list[Mention], t: Title, gaz: Gazetteer,
                    sent: SentenceOf) -> list[Mention]:
    """One office-holder per listed country, or the people listed before the title."""
    if not t.holder:
        return []
    if t.countries:
        return [Mention(text[t.start:t.end], t.start, t.end, "PERSON", sent(t.start),
                        text[t.start:t.end], country=code, roles=roles, source="title")
                for code in t.countries if (roles := gaz.title_roles_for(t.folded, code))]
    # "Sweden's Pal Jonson and Finland's Antti Hakkanen, the two countries' ministers"
    for i in _coordinated_people_before(text, mentions, t.start):
        person = mentions[i]
        roles = gaz.title_roles_for(t.folded, person.country)
        mentions[i] = replace(person, roles=tuple(dict.fromkeys((*person.roles, *roles))))
    return []


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


def _holder_index(text: str, mentions: list[Mention], t: Title, sent: SentenceOf) -> int | None:
    """The person a title introduces: right after it ("Defence Minister Gen. X"), before it
    in apposition ("X, Russia's defence minister"), or around it ("King Charles" is a
    gazetteer alias).  spaCy sometimes reads the title as part of an unknown name
    ("Taoiseach Ivan Petrov"): that mention is cut to the name."""
    for i, m in enumerate(mentions):
        if m.label == "PERSON" and m.source == "gazetteer" and m.start <= t.title_start < m.end:
            return i  # the title is part of a known name: "King Charles", "Emperor Naruhito"
        if m.label == "PERSON" and m.source == "ner" and t.start <= m.start <= t.title_start \
                and t.title_end < m.end:
            start = t.title_end + len(gap_after(text, t.title_end))
            if start < m.end:
                name = text[start:m.end]
                mentions[i] = replace(m, text=name, start=start, name=strip_possessive(name),
                                      sent=sent(start))
    for i, m in enumerate(mentions):
        if m.label != "PERSON" or m.source == "title" or m.start < t.end:
            continue
        gap = text[t.end:m.start]
        if HOLDER_GAP.fullmatch(gap):
            if "," in gap and _REPORTING.match(text, m.end):
                continue  # "... with China's defence minister, Austin said": the speaker
            return i
    if _LIST_GOES_ON.match(text, t.end):
        return None  # "about Starmer, the King and Iran": a list, not an apposition
    for i, m in enumerate(mentions):
        if m.label == "PERSON" and m.source != "title" and m.end <= t.start \
                and _APPOSITION.match(text[m.end:t.start]):
            return i
    return None
