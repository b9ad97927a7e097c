"""Hostile and broken documents at the parse level: pure, no servers.

Wrong encodings must give readable text or a clear ParseError, never silent mojibake;
entity bombs and external entities must cost little and resolve nothing; no document can
make the parser read a local file or crash with anything but ParseError.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from ingest.errors import ParseError
from ingest.parse.normalize import ParsedFeed, parse_document
from ingest.parse.text import html_to_text

NOW = datetime(2024, 9, 2, 12, 0, tzinfo=UTC)
DECLARED_UTF8 = '<?xml version="1.0" encoding="utf-8"?>\n'
RUSSIAN = ("Министр обороны провёл переговоры с коллегой",
           "Стороны обсудили ситуацию на границе и договорились о новых консультациях.")


def rss(title: str, description: str = "", prolog: str = DECLARED_UTF8,
        doctype: str = "", channel: str = "Лента") -> str:
    return (f'{prolog}{doctype}<rss version="2.0"><channel><title>{channel}</title>'
            f"<link>https://example.ru/</link><item><title>{title}</title>"
            f"<link>https://example.ru/1</link><description>{description}</description>"
            f"<guid>n1</guid></item></channel></rss>")


def parse(body: bytes, content_type: str | None = None) -> ParsedFeed:
    return parse_document(body, feed_id="t", url="https://example.ru/rss", now=NOW,
                          content_type=content_type)


def bounded(work: Callable[[], object]) -> tuple[float, float]:
    """Seconds taken (untraced) and peak traced memory in MB of ``work``."""
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        work()
        peak = tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()
    return elapsed, peak


# --- encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("prolog", "content_type"), [
    (DECLARED_UTF8, None),  # the XML declaration lies
    ("", "application/rss+xml; charset=utf-8"),  # the Content-Type lies
    (DECLARED_UTF8, "application/rss+xml; charset=utf-8"),  # both lie
    (DECLARED_UTF8, "text/xml"),  # text/xml without charset: us-ascii, then guesses
])
def test_windows_1251_declared_utf8_reads_as_cyrillic(prolog: str,
                                                      content_type: str | None) -> None:
    """A windows-1251 feed declared as UTF-8 comes out as readable Cyrillic, with a warning."""
    body = rss(*RUSSIAN, prolog=prolog).encode("cp1251")
    parsed = parse(body, content_type)
    entry = parsed.entries[0]
    assert (entry.title, entry.summary) == RUSSIAN
    assert parsed.title == "Лента"
    assert parsed.warning is not None and "read as cp1251 (detected)" in parsed.warning


def test_koi8r_without_declaration_reads_as_cyrillic() -> None:
    """An undeclared KOI8-R feed is detected too."""
    parsed = parse(rss(*RUSSIAN, prolog="").encode("koi8_r"))
    assert parsed.entries[0].title == RUSSIAN[0]


def test_tiny_misdeclared_feed_is_refused_not_mojibake() -> None:
    """Two Cyrillic words are too few to detect an encoding: a clear error, not mojibake."""
    with pytest.raises(ParseError, match="not in the encoding it declares"):
        parse(rss("Привет", "Война").encode("cp1251"))


def test_latin1_feed_without_declaration_stays_latin1() -> None:
    """Undeclared Latin-1 Portuguese keeps its accents (windows-1252 is plausible for it)."""
    title = "Notícias: ação do governo não é aprovada; eleição em São Paulo"
    parsed = parse(rss(title, "Câmara vota reforma", prolog="", channel="UOL").encode("latin-1"))
    assert parsed.entries[0].title == title
    assert parsed.entries[0].summary == "Câmara vota reforma"


def test_correctly_declared_windows_1251_needs_no_detection() -> None:
    """A feed that declares windows-1251 is read as such, without a warning."""
    prolog = '<?xml version="1.0" encoding="windows-1251"?>\n'
    parsed = parse(rss(*RUSSIAN, prolog=prolog).encode("cp1251"))
    assert parsed.entries[0].title == RUSSIAN[0]
    assert parsed.warning is None


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_byte_order_outranks_a_lying_charset(encoding: str) -> None:
    """A UTF-16/32 feed (with or without a BOM) served as charset=utf-8 is still read."""
    body = rss(*RUSSIAN, prolog=f'<?xml version="1.0" encoding="{encoding}"?>').encode(encoding)
    parsed = parse(body, "application/rss+xml; charset=utf-8")
    assert parsed.entries[0].title == RUSSIAN[0]


# --- entities -----------------------------------------------------------------------------

BILLION_LAUGHS = """<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


def test_billion_laughs_is_cheap_and_not_expanded() -> None:
    """A billion-laughs entity bomb parses fast, in little memory, with nothing expanded."""
    body = rss("&lol9;", "&lol9; &lol9;", doctype=BILLION_LAUGHS).encode()
    elapsed, peak_mb = bounded(lambda: parse(body))
    assert elapsed < 10 and peak_mb < 100
    entry = parse(body).entries[0]
    assert "lollol" not in entry.title + entry.summary


def test_quadratic_blowup_is_bounded() -> None:
    """One 50 kB entity referenced 50,000 times (2.5 GB expanded) stays cheap."""
    doctype = '<!DOCTYPE rss [<!ENTITY a "' + "x" * 50_000 + '">]>'
    body = rss("title", "&a;" * 50_000, doctype=doctype).encode()
    elapsed, peak_mb = bounded(lambda: parse(body))
    assert elapsed < 10 and peak_mb < 100
    assert len(parse(body).entries[0].summary) < 1_000_000


def test_external_entity_is_not_resolved(tmp_path: Path) -> None:
    """XXE: an external entity naming a local file (or /etc/passwd) is never read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER", encoding="utf-8")
    for target in (secret.as_uri(), "file:///etc/passwd"):
        doctype = f'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{target}">]>'
        entry = parse(rss("x &xxe; y", "&xxe;", doctype=doctype).encode()).entries[0]
        text = entry.title + entry.summary
        assert "TOP-SECRET-MARKER" not in text and "root:" not in text


def test_external_dtd_and_parameter_entities_are_not_loaded(tmp_path: Path) -> None:
    """An external DTD or parameter entity defining an entity is not fetched."""
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "DTD-WAS-LOADED">', encoding="utf-8")
    for doctype in (f'<!DOCTYPE rss SYSTEM "{dtd.as_uri()}">',
                    f'<!DOCTYPE rss [<!ENTITY % p SYSTEM "{dtd.as_uri()}"> %p;]>'):
        parsed = parse(rss("a &leak; b", doctype=doctype).encode())
        assert all("DTD-WAS-LOADED" not in e.title for e in parsed.entries)


def test_body_naming_a_local_file_is_not_read(tmp_path: Path) -> None:
    """A body that is a file path is a (bad) document, not a file to open: feedparser
    given bytes would read the file."""
    local = tmp_path / "local-feed.xml"
    local.write_text(rss("LOCAL-FILE-MARKER"), encoding="utf-8")
    with pytest.raises(ParseError):
        parse(str(local).encode())


# --- characters feedparser or databases choke on ------------------------------------------


def test_impossible_character_references_do_not_crash() -> None:
    """References to surrogates or past U+10FFFF (which crash feedparser's lenient parser)
    become U+FFFD."""
    title = "A &#xD800; B &#55357; C &#99999999; D &#" + "9" * 5000 + ";"
    parsed = parse(rss(title, "&amp;#xD800;", prolog="").encode())
    assert parsed.entries[0].title == "A \ufffd B \ufffd C \ufffd D \ufffd"
    assert parsed.entries[0].summary == "\ufffd"


def test_nul_and_control_characters_never_reach_the_text() -> None:
    """NUL and other control characters in a (malformed) feed are dropped."""
    parsed = parse(rss("A\x00B\x01C", "x\x00y &amp;#0; z").encode())
    entry = parsed.entries[0]
    assert entry.title == "ABC"
    assert not any(ord(c) < 9 for c in entry.summary)


def test_php_notice_before_the_declaration_still_parses() -> None:
    """Server warnings printed before the XML declaration do not lose the entries."""
    notice = "<br />\n<b>Notice</b>:  Undefined index: x in <b>/var/www/feed.php</b><br />\n"
    parsed = parse((notice + rss(*RUSSIAN)).encode())
    assert parsed.entries[0].title == RUSSIAN[0]
    assert parsed.warning


def test_deeply_nested_and_unterminated_html_is_bounded() -> None:
    """Hostile HTML (deep nesting, an unterminated comment, a huge attribute) is cheap."""
    for fragment in ("<div>" * 100_000 + "deep", "<p>ok</p><!--" + "x" * 1_000_000,
                     '<a title="' + "y" * 1_000_000 + '">link</a> after',
                     "<" * 500_000, "&amp;" * 200_000):
        elapsed, peak_mb = bounded(partial(html_to_text, fragment))
        assert elapsed < 10 and peak_mb < 200


def test_many_entries_parse_in_bounded_time() -> None:
    """20,000 tiny items parse in well under the bound."""
    items = "".join(f"<item><title>T{i}</title><guid>{i}</guid></item>" for i in range(20_000))
    body = f'<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()
    started = time.perf_counter()
    assert len(parse(body).entries) == 20_000
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("ttl", ["9" * 5000, "0" * 5000 + "60", "-60", "1e9", "99999999"])
def test_absurd_ttl_is_ignored(ttl: str) -> None:
    """A <ttl> of thousands of digits (int() refuses > 4,300) or out of range gives no hint."""
    body = rss(*RUSSIAN).replace("<title>Лента</title>", f"<title>Лента</title><ttl>{ttl}</ttl>")
    parsed = parse(body.encode())
    assert parsed.ttl_minutes is None
    assert parsed.entries[0].title == RUSSIAN[0]


def test_sane_ttl_is_read() -> None:
    """A <ttl> of 60 minutes, spaces around it, is read."""
    body = rss(*RUSSIAN).replace("<title>Лента</title>", "<title>Лента</title><ttl> 60 </ttl>")
    assert parse(body.encode()).ttl_minutes == 60
