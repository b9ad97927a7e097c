"""RSS, Atom and RDF documents read by feedparser, made safe and mended where it fails.

* feedparser is given a stream, never bytes: given bytes that name an existing file
  ("/etc/passwd", "/dev/zero"), it opens and reads that file instead.
* Its HTML sanitiser and link resolver are off: the HTML becomes plain text, which they
  do not change, they cost a fifth of the parse, and the sanitiser drops text that a
  publisher wrapped twice in CDATA.
* A byte-order mark (or UTF-16/32 byte pattern) outranks the charset the server names.
* Its lenient parser crashes on a reference to a character that cannot exist
  (``&#xD800;``, ``&#99999999;``): such references become U+FFFD and it reads again.
* When it could only guess an encoding, :mod:`ingest.parse.charset` has a second look.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import feedparser

from ingest.errors import ParseError
from ingest.parse import charset

_BAD_REFERENCE = re.compile(rb"&#([xX][0-9a-fA-F]+|[0-9]+);")
_FEEDPARSER_CRASHES = (ValueError, UnicodeError, OverflowError)
# Encodings the first bytes prove, whatever the server says (longest marks first).
_BYTE_MARKS = (
    (codecs.BOM_UTF32_BE, "utf-32be"), (codecs.BOM_UTF32_LE, "utf-32le"),
    (b"\x00\x00\x00<", "utf-32be"), (b"<\x00\x00\x00", "utf-32le"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_BE, "utf-16be"),
    (codecs.BOM_UTF16_LE, "utf-16le"), (b"\x00<\x00?", "utf-16be"), (b"<\x00?\x00", "utf-16le"),
)


class RawFeed(NamedTuple):
    """What a reader found: feed fields and entries in feedparser's shapes."""

    feed: Mapping[str, Any]
    entries: list[Mapping[str, Any]]
    found: bool  # a feed format was recognised
    warning: str | None = None


def read_xml(body: bytes, content_type: str | None, url: str) -> RawFeed:
    """feedparser's view of ``body``; ParseError when feedparser cannot read it at all."""
    content_type = _trust_byte_marks(body, content_type)
    parsed = _feedparser(body, content_type, url)
    used = parsed.get("encoding") or ""
    note = None
    if (isinstance(parsed.get("bozo_exception"), feedparser.CharacterEncodingOverride)
            and charset.blind_guess(used, body, content_type)):
        if better := charset.better_encoding(body, used):
            utf8, utf8_type = charset.as_utf8(body, better, content_type)
            parsed = _feedparser(utf8, utf8_type, url)
            note = f"the document is not in its declared encoding; read as {better} (detected)"
        elif charset.looks_misdecoded(body, used):
            raise ParseError(url, "the document is not in the encoding it declares (or "
                                  "UTF-8), and too short to tell which it is; the publisher "
                                  "must declare it (XML declaration or Content-Type charset)")
    return RawFeed(parsed.get("feed") or {}, list(parsed.entries),
                   bool(parsed.get("version") or parsed.entries), _warning(parsed, note))


def _trust_byte_marks(body: bytes, content_type: str | None) -> str | None:
    """``content_type`` with the charset the first bytes prove, when they prove one."""
    for mark, encoding in _BYTE_MARKS:
        if body.startswith(mark):
            if content_type is None:
                return None
            media_type = content_type.split(";", 1)[0].strip() or "application/xml"
            return f"{media_type}; charset={encoding}"
    return content_type


def _feedparser(body: bytes, content_type: str | None, url: str) -> Any:
    try:
        return _run(body, content_type)
    except _FEEDPARSER_CRASHES:
        pass
    try:
        return _run(_BAD_REFERENCE.sub(_replace_bad_reference, body), content_type)
    except _FEEDPARSER_CRASHES as exc:
        raise ParseError(url, f"feedparser cannot read it: {type(exc).__name__}: {exc}"
                         ) from exc


def _run(body: bytes, content_type: str | None) -> Any:
    return feedparser.parse(io.BytesIO(body),
                            response_headers={"content-type": content_type} if content_type
                            else None, sanitize_html=False, resolve_relative_uris=False)


def _replace_bad_reference(match: re.Match[bytes]) -> bytes:
    digits = match.group(1)
    try:
        code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    except ValueError:  # more digits than int() takes
        return b"&#xFFFD;"
    return b"&#xFFFD;" if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else match.group(0)


def _warning(parsed: Any, note: str | None) -> str | None:
    if not parsed.get("bozo"):
        return note
    exc = parsed.get("bozo_exception")
    bozo = ("feed is malformed but usable: " + (f"{type(exc).__name__}: {exc}" if exc
                                                 else "malformed feed"))
    return f"{note}; {bozo}" if note else bozo
