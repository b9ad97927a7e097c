"""Counterparts: "X met his Russian counterpart" names a Russian holder of X's office (pure).

Also "opposite number", "her counterpart from Japan", "their French and German
counterparts" (one holder per country), and a named counterpart ("his Chinese
counterpart, Dong Jun"), which gets the role on that person's own mention.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from ingest.model import Mention
from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.titles import (
    countries_in,
    country_of,
    list_before,
    list_patterns,
    modifier_before,
)

_COUNTERPART = re.compile(r"\b(?:counterpart|opposite\s+number)(?P<plural>s)?\b", re.IGNORECASE)


def counterparts(text: str, mentions: list[Mention], gaz: Gazetteer,
                 sent: Callable[[int], int]) -> list[Mention]:
    """``mentions`` with each counterpart given the role of the office-holder before it.

    The role comes from the last mention with a role earlier in the same sentence; the
    country from a country word before "counterpart" or from "from/of <country>" after it.
    """
    out = list(mentions)
    for m in _COUNTERPART.finditer(text):
        s = sent(m.start())
        holders = [x for x in mentions if x.sent == s and x.roles and x.end <= m.start()]
        if not holders:
            continue
        roles, own = holders[-1].roles, holders[-1].country
        start, end, codes = _countries(text, m, gaz)
        gap = re.match(r"\s*,?\s*", text[end:])
        named = next((i for i, x in enumerate(out) if gap and x.label == "PERSON"
                      and x.source != "title" and x.start == end + gap.end()), None)
        if named is not None and len(codes) <= 1:
            person = out[named]
            out[named] = replace(person, roles=tuple(dict.fromkeys((*person.roles, *roles))),
                                 country=person.country or (codes[0] if codes else None))
            continue
        # "Austin and Blinken met their Japanese counterparts": one per office held.
        offices = dict.fromkeys(x.roles for x in holders if x.country == own) \
            if m.group("plural") else {roles: None}
        for code in codes or (None,):
            if code is None or code != own:
                out.extend(Mention(text[start:end], start, end, "PERSON", s, text[start:end],
                                   country=code, roles=office, source="title")
                           for office in offices)
    return out


def _countries(text: str, m: re.Match[str], gaz: Gazetteer) -> tuple[int, int, tuple[str, ...]]:
    """The span of "his Russian counterpart" / "counterparts from France and Italy" and
    the countries it names."""
    start, end = m.start(), m.end()
    before = text[max(0, start - 80):start]
    if gaz.country_words is None:
        return start, end, ()
    if m.group("plural"):
        found = list_before(before, gaz)
        if found:
            return start - (len(before) - found.start(1)), end, countries_in(found.group(1), gaz)
        found = list_patterns(gaz.country_words.pattern)[1].match(text, end)
        if found:
            return start, found.end(1), countries_in(found.group(1), gaz)
        return start, end, ()
    mod = modifier_before(before, gaz)
    if mod is not None:
        return start - mod[0], end, (mod[1],)
    after = re.match(r"\s+(?:from|of|in)\s+(?:the\s+)?", text[end:])
    cm = gaz.country_words.match(text, end + after.end()) if after else None
    if cm and (code := country_of(cm.group(0), gaz)):
        return start, cm.end(), (code,)
    return start, end, ()
