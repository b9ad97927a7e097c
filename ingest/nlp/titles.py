"""Role titles in text: the office a title names, its country, and whether it is held (pure).

"Russian Defence Minister", "Germany's chancellor", "the Minister of Defence of
France", "the Turkish and Greek defence ministers".  The country comes from a country
word before the title, from "of <country>" after it, or from the title itself
("Pentagon chief").  A title can also belong to some other body than a country's
government: "Chancellor of the Exchequer", "European Commission President", "Ontario
Premier", "the club president", "Minister for Defence Industry".  Such a title is
marked ``other`` and gives no role at all (nor takes one away).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ingest.nlp.gazetteer import Gazetteer, fold

NerSpan = tuple[int, int, str]  # start, end, label
POSSESSIVE = r"(?:'s|’s|')?"

# Qualifiers before a title.  The person it introduces does not hold the office on the
# story's date when they held it before (former, ex-, then-, late, "who was"), will or may
# hold it (incoming, designate, future, nominee), or hold a lesser office (deputy, vice,
# shadow).  Decision: an *outgoing*, acting, caretaker or interim office-holder is still in
# office until the successor takes over ("outgoing Chancellor Olaf Scholz" chaired his
# last cabinet), so those words keep the role.
_NOT_HOLDER_WORDS = (
    r"former|ex|then(?=-)|(?<!and\s)(?<!but\s)then|late|erstwhile|one-?time|previous|"
    r"ousted|deposed|sacked|dismissed|incoming|designate|future|would-be|next|prospective|"
    r"aspiring|nominee|nominated|deputy|vice|first\s+deputy|shadow|assistant|under|junior|"
    r"who\s+was|served\s+as")
_HOLDER_WORDS = (r"acting|new|newly[\s-]+(?:appointed|elected|named)|outgoing|caretaker|interim|"
                 r"current|incumbent|sitting|long-?time|long-serving|top")
_QUALIFIER = rf"(?:{_NOT_HOLDER_WORDS}|{_HOLDER_WORDS})"
QUALIFIERS = rf"(?i:(?:{_QUALIFIER}[\s-]+){{0,3}})"  # up to three, in any case
# "former Russian", "ex-Pakistan PM": a country word may come between.
_NOT_HOLDER = re.compile(rf"\b(?P<word>{_NOT_HOLDER_WORDS})\b[\s-]*"
                         rf"(?-i:[A-Z][\w.]*{POSSESSIVE}[\s-]+)?(?:{_QUALIFIER}[\s-]+)*$",
                         re.IGNORECASE)
_REGION_BEFORE = re.compile(r"\b(?:Latin|North|South|Central|East|West|Southeast|Native|"
                            r"Pan|Anglo|Afro|Sub-Saharan)[\s-]$")
_MODIFIER_GAP = re.compile(rf"{POSSESSIVE}\s+{QUALIFIERS}")

# Honorifics and ranks between a title and the name: "Defence Minister Brig. Gen. Aziz
# Nasirzadeh", "Emir Sheikh Tamim".  After an informal title ("defence chief"), a
# military rank names the chief of the armed forces, not the minister.
_RANK = (r"Gen|General|Lt|Lieut|Lieutenant|Maj|Major|Brig|Brigadier|Col|Colonel|Adm|Admiral|"
         r"Vice|Rear|Air|Chief|Marshal|Field|Cmdr|Commander|Capt|Captain")
_HONORIFIC = (r"Mr|Mrs|Ms|Dr|Prof|Professor|Sir|Dame|Lord|Lady|Sheikh|Shaikh|Sayyid|Seyed|"
              r"Ayatollah|Hojatoleslam|Hon|Honourable|Honorable|Excellency|His\s+Excellency")
HOLDER_GAP = re.compile(rf"[\s,]*(?:(?:{_RANK}|{_HONORIFIC})\.?(?:\s*\(retd?\.?\))?[\s,]+)*")
_RANK_IN_GAP = re.compile(rf"\b(?:{_RANK})\b", re.IGNORECASE)
_INFORMAL = re.compile(r"\b(?:chief|head|boss)\b")

# "the club president", "Free State Premier", "the party's leader": another body's office.
_ORG_NOUN = re.compile(
    r"\b(?:club|company|firm|bank|university|college|school|party|league|federation|"
    r"association|committee|council|board|court|senate|assembly|parliament|chamber|"
    r"foundation|institute|corporation|society|academy|team|commission|church|agency|fund|"
    r"tribunal|state|provincial|regional|municipal|local|city|county|district|student|"
    rf"union|group|opposition){POSSESSIVE}\s+{QUALIFIERS}$", re.IGNORECASE)
# Names before a title that make it another body's office ("Ontario Premier"); an unknown
# demonym (NORP) is left alone: it may be a nationality the gazetteer lacks.
_NAMED_BEFORE = frozenset({"ORG", "GPE", "LOC", "FAC", "EVENT"})
_NAME_AROUND = frozenset({"ORG", "FAC", "EVENT", "WORK_OF_ART", "LAW", "PRODUCT"})
# "of the country", "of the Republic": a state without its name.
_GENERIC_STATE = re.compile(
    r"(?:\w+\s+)?(?:country|nation|republic|kingdom|federation|state|realm|emirate|sultanate|"
    r"confederation|union)\b", re.IGNORECASE)
# "the Premier League", "the President Hotel": a title as the first word of a name.
_THING_AFTER = re.compile(
    r"\s+(?:League|Cup|Trophy|Prize|Award|Hotel|Club|Street|Road|Avenue|Square|Park|Bridge|"
    r"Stakes|Division|Series|College|School|University|Academy|Foundation|Institute|Island|"
    r"Islands|Penguin|Cobra|Air)\b")
# "Minister for Defence Industry", "Minister of Defence Procurement": a junior portfolio.
_DEFENCE_PORTFOLIO = re.compile(
    r"\s+(?:industry|industries|production|procurement|personnel|people|materiel|exports?|"
    r"acquisition|readiness|veterans)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Title:
    start: int  # including a country modifier before the title
    end: int  # including "of <country>" after it
    title_start: int
    title_end: int
    folded: str  # the title as the gazetteer lists it
    countries: tuple[str, ...]  # one for a singular title; any number for a plural one
    holder: bool  # False for "former", "deputy", ...
    plural: bool = False
    other: bool = False  # another body's office: gives no role at all

    @property
    def country(self) -> str | None:
        return self.countries[0] if self.countries else None

    @property
    def informal(self) -> bool:
        return bool(_INFORMAL.search(self.folded))


def strip_possessive(text: str) -> str:
    return re.sub(r"(?:'s|’s|')$", "", text)


def country_of(surface: str, gaz: Gazetteer) -> str | None:
    for target in gaz.targets(re.sub(r"^the\s+", "", strip_possessive(surface), flags=re.I)):
        if target.kind in ("country", "demonym"):
            return target.ref
    return None


def find_titles(text: str, ner: Sequence[NerSpan], gaz: Gazetteer) -> list[Title]:
    """Every role title in ``text``, with its country and whether it is held."""
    if gaz.titles is None:
        return []
    out = []
    for m in gaz.titles.finditer(text):
        if m.group("plural"):
            out.append(_plural_title(text, m, ner, gaz))
            continue
        title_end = m.start("suffix") if m.group("suffix") else m.end()
        folded = fold(text[m.start():title_end])
        start, country = m.start(), gaz.implied.get(folded)
        mod = modifier_before(text[max(0, m.start() - 80):m.start()], gaz)
        if mod is not None:
            start, country = m.start() - mod[0], mod[1]
        end, code_after, other = _after(text, m.end(), folded, gaz)
        country = code_after or country
        if mod is None and not other:
            other = _other_before(text, m.start(), ner, gaz)
        other = other or _inside_other_name(text, m.start(), title_end, ner, gaz)
        # "-designate", "-elect", "nominee", "pick": not in office yet.
        holder = not m.group("suffix") and not _not_holder(text, start, folded) \
            and not _not_holder(text, m.start(), folded)
        out.append(Title(start, end, m.start(), title_end, folded, (country,) if country else (),
                         holder, other=other))
    return out


def _after(text: str, pos: int, folded: str, gaz: Gazetteer) -> tuple[int, str | None, bool]:
    """What follows a title: the end of "of <country>", that country, and whether the
    words after it make it another office ("of the Exchequer", "for Health")."""
    rest = text[pos:]
    if ("defence" in folded and _DEFENCE_PORTFOLIO.match(rest)) or _THING_AFTER.match(rest):
        return pos, None, True
    if "diplomat" in folded and re.match(r"\s+(?:in|to|at)\s+(?:the\s+)?[A-Z]", rest):
        return pos, None, True  # "the top US diplomat in Kyiv": an ambassador
    after = re.match(r"\s+(of|for)\s+(?:(?:the|his|her|its|their|our|this|that)\s+)?", rest)
    if after is None:
        return pos, None, False
    cm = gaz.country_words.match(text, pos + after.end()) if gaz.country_words else None
    code = country_of(cm.group(0), gaz) if cm else None
    if cm and code and after.group(1) == "of":
        if re.match(r"'s|’s", text[cm.end():]):
            return pos, None, True  # "the president of France's football federation"
        return cm.end(), code, False
    return pos, None, _other_after(after.group(1), text[pos + after.end():])


def _not_holder(text: str, pos: int, folded: str) -> bool:
    found = _NOT_HOLDER.search(text[max(0, pos - 30):pos])
    if found is None:
        return False
    # "Under Secretary of Defense" is a lesser office; "under President Putin" is not.
    return fold(found.group("word")) != "under" or (
        folded.startswith("secretary") and fold(found.group(0)).strip(" -") == "under")


def _other_after(word: str, rest: str) -> bool:
    """After "<title> of|for": is this some other body's office?"""
    if word == "for":  # "Secretary of State for Health"; not "minister for two years"
        return rest[:1].isupper()
    if _GENERIC_STATE.match(rest) or rest[:1].isdigit():  # "President of the Republic"
        return False
    return bool(rest[:1].isalpha())  # "Chancellor of the Exchequer", "president of the club"


def _other_before(text: str, pos: int, ner: Sequence[NerSpan], gaz: Gazetteer) -> bool:
    """A body named right before the title: "Ontario Premier", "the club president"."""
    before = text[max(0, pos - 60):pos]
    if _ORG_NOUN.search(before):
        return True
    gap = re.search(rf"{POSSESSIVE}\s+{QUALIFIERS}$", before)
    edge = pos - (len(before) - gap.start()) if gap else pos
    for s, e, label in ner:
        # A name ending at the title ("Ontario Premier") or running into it (spaCy's
        # "European Commission President"), that is not a country.
        if label in _NAMED_BEFORE and s < edge <= e:
            name = strip_possessive(text[s:edge].strip())
            if name and not country_of(name, gaz):
                return True
    return False


def _inside_other_name(text: str, start: int, end: int, ner: Sequence[NerSpan],
                       gaz: Gazetteer) -> bool:
    """"the Premier League", "Burger King", "Stephen King": the title is part of a name."""
    for s, e, label in ner:
        if not (s <= start and end <= e) or (s, e) == (start, end):
            continue
        lead = strip_possessive(text[s:start].strip())
        if label in _NAME_AROUND and not country_of(lead, gaz):  # not "Indian PM Ivan Petrov"
            return True
        if label == "PERSON" and s < start and lead and not country_of(lead, gaz):
            return True  # "Martin Luther King Jr.", "Billie Jean King"
    return False


@lru_cache(maxsize=8)
def list_patterns(words: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Lists of countries before ("the Turkish and Greek ") and after (" of Japan and Italy")."""
    item = rf"(?:the\s+)?(?:{words}){POSSESSIVE}"
    joined = rf"{item}(?:\s*(?:,\s*and|,|and|&)\s*{item})*"
    return (re.compile(rf"({joined})\s+{QUALIFIERS}$"),
            re.compile(rf"\s+(?:of|from)\s+({joined})"))


def list_before(before: str, gaz: Gazetteer) -> re.Match[str] | None:
    """A list of country words ending right before a plural title or "counterparts"."""
    if gaz.country_words is None:
        return None
    found = list_patterns(gaz.country_words.pattern)[0].search(before)
    if found is None or _REGION_BEFORE.search(before, 0, found.start(1)):
        return None  # "Latin American leaders"
    return found


def countries_in(words: str, gaz: Gazetteer) -> tuple[str, ...]:
    if gaz.country_words is None:
        return ()
    return tuple(dict.fromkeys(c for w in gaz.country_words.finditer(words)
                               if (c := country_of(w.group(0), gaz))))


def _plural_title(text: str, m: re.Match[str], ner: Sequence[NerSpan], gaz: Gazetteer) -> Title:
    """"the Turkish and Greek defence ministers": one office-holder per country named."""
    folded = fold(text[m.start():m.start("plural")])
    before = text[max(0, m.start() - 80):m.start()]
    codes: tuple[str, ...] = ()
    start, end = m.start(), m.end()
    if gaz.country_words is not None:
        found = list_before(before, gaz)
        if found:
            start = m.start() - (len(before) - found.start(1))
        else:
            found = list_patterns(gaz.country_words.pattern)[1].match(text, m.end())
            if found and re.search(r"(?:'s|’s)$", found.group(1)):
                found = None  # "leaders of France's far-right party": not France's leaders
            if found:
                end = found.end(1)
        if found:
            codes = countries_in(found.group(1), gaz)
    other = not codes and (_other_before(text, m.start(), ner, gaz) or bool(
        re.match(r"\s+of\s+(?:the\s+)?[A-Z]", text[m.end():])))
    holder = not _not_holder(text, start, folded) and not _not_holder(text, m.start(), folded)
    return Title(start, end, m.start(), m.end(), folded, codes, holder, plural=True, other=other)


def modifier_before(before: str, gaz: Gazetteer) -> tuple[int, str] | None:
    """A country word right before a title: ("Russian ", RU), ("Germany's outgoing ", DE)."""
    if gaz.country_words is None:
        return None
    best = None
    for m in gaz.country_words.finditer(before):
        if _REGION_BEFORE.search(before, 0, m.start()):
            continue  # "Latin American leaders" are not American
        if _MODIFIER_GAP.fullmatch(before, m.end()):
            code = country_of(m.group(0), gaz)
            if code:
                best = (len(before) - m.start(), code)
    return best


def country_after_name(text: str, pos: int, gaz: Gazetteer) -> str | None:
    """"President Ivan Petrov of France": a country right after the holder's name."""
    after = re.match(r"\s+of\s+(?:the\s+)?", text[pos:])
    if after is None or gaz.country_words is None:
        return None
    cm = gaz.country_words.match(text, pos + after.end())
    return country_of(cm.group(0), gaz) if cm else None


def gap_after(text: str, pos: int) -> str:
    """The commas, honorifics and ranks at ``pos`` before a name ("" when there are none)."""
    found = HOLDER_GAP.match(text, pos)
    return found.group(0) if found else ""


def officer_between(gap: str) -> bool:
    """A military rank between an informal title and the name: the officer, not the minister."""
    return bool(_RANK_IN_GAP.search(gap))
