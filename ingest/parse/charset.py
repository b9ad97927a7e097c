"""A second opinion on a document's character encoding, when feedparser had to guess.

feedparser decodes with the encoding the HTTP header or the XML declaration names; when
that fails (a feed in windows-1251 declared as UTF-8), it falls back to windows-1252, then
iso-8859-2, which nearly always "succeed" and turn Cyrillic, Greek, Hebrew or CJK text
into mojibake, with only a bozo warning.  charset_normalizer is asked whether that guess is
plausible at all; when it is not, the document is decoded with the encoding
charset_normalizer finds instead.  A plausible guess is kept: a Portuguese feed in
Latin-1 without a declaration reads right as windows-1252, and detection can only
disagree there by picking another Latin code page.

Detection needs some text: on a document with a handful of words it cannot tell
windows-1251 from Big5.  There the shape of the words decides: text in a Latin code
page has a few accented letters among plain ones ("notícias"), while Cyrillic, Greek or
Hebrew read as windows-1252 gives words made of accented letters only ("Ïðèâåò").
Such a document is refused (:func:`looks_misdecoded`) rather than stored as mojibake.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

# feedparser's last resorts, tried when every declared encoding and UTF-8 failed.
_BLIND_GUESSES = ("cp1252", "iso8859-2")
_XML_ENCODING = re.compile(rb"(\A\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])([A-Za-z0-9._:-]*)\2")
_CHARSET_PARAM = re.compile(r";\s*charset\s*=\s*[\"']?([^\s;\"']+)[\"']?", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"
# A word with a letter of the Latin-1 upper half (À-ÿ), and those letters alone.
_ACCENTED_WORD = re.compile(r"[A-Za-z\u00c0-\u00ff]*[\u00c0-\u00ff][A-Za-z\u00c0-\u00ff]*")
_ACCENTED = re.compile(r"[\u00c0-\u00ff]")


def codec_name(label: str) -> str:
    """Python's name for an encoding label ("windows-1251" -> "cp1251"), else the label."""
    try:
        return codecs.lookup(label).name
    except LookupError:
        return label.lower()


def declared_encodings(body: bytes, content_type: str | None) -> set[str]:
    """The encodings the Content-Type and the XML declaration name, as codec names."""
    names = set()
    if content_type and (param := _CHARSET_PARAM.search(content_type)):
        names.add(codec_name(param.group(1)))
    if (match := _XML_ENCODING.match(body.removeprefix(_BOM)[:1024])) and match.group(3):
        names.add(codec_name(match.group(3).decode("ascii")))
    return names


def blind_guess(used: str, body: bytes, content_type: str | None) -> bool:
    """Whether feedparser decoded with one of its last-resort guesses, not a declared one."""
    name = codec_name(used) if used else ""
    return name in _BLIND_GUESSES and name not in declared_encodings(body, content_type)


def better_encoding(body: bytes, guessed: str) -> str | None:
    """The encoding to read ``body`` with instead of feedparser's ``guessed`` one, or None
    when the guess is plausible or nothing better is found."""
    if charset_normalizer.from_bytes(body, cp_isolation=[guessed]).best() is not None:
        return None
    best = charset_normalizer.from_bytes(body).best()
    if best is None or codec_name(best.encoding) == codec_name(guessed):
        return None
    return codec_name(best.encoding)


def looks_misdecoded(body: bytes, guessed: str) -> bool:
    """Whether ``body`` read as ``guessed`` (a Latin code page) gives mojibake words: at
    least half its accented words made of three or more letters, three quarters accented."""
    words = _ACCENTED_WORD.findall(body.decode(guessed, errors="replace"))
    shaped = sum(1 for w in words
                 if len(w) >= 3 and 4 * len(_ACCENTED.findall(w)) >= 3 * len(w))
    return shaped > 0 and 2 * shaped >= len(words)


def as_utf8(body: bytes, encoding: str,
            content_type: str | None) -> tuple[bytes, str]:
    """``body`` re-encoded from ``encoding`` to UTF-8, with its XML declaration and a
    Content-Type that say so."""
    text = body.removeprefix(_BOM).decode(encoding, errors="replace").encode("utf-8")
    text = _XML_ENCODING.sub(rb"\1\2utf-8\2", text, count=1)
    media_type = (content_type or "application/xml").split(";", 1)[0].strip()
    return text, f"{media_type or 'application/xml'}; charset=utf-8"
