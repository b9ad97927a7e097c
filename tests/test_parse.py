"""Unit tests of the pure parsing code: text, dates, dedup keys, feed documents, HTML pages
and feed lists."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.errors import ConfigError, ParseError
from ingest.feedlist import load_feed_file
from ingest.parse.dates import published_at
from ingest.parse.dedup import alert_id, canonical_url, content_hash, entry_key
from ingest.parse.normalize import parse_document
from ingest.parse.text import MAX_FRAGMENT_CHARS, html_to_text

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2024, 9, 2, 12, 0, tzinfo=UTC)

RSS = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0">
  <channel>
    <title>Test &amp; Feed</title>
    <link>https://example.org/</link>
    <description>A test feed</description>
    <item>
      <title>Troops move north</title>
      <link>https://example.org/news/1?utm_source=rss</link>
<description>&lt;p&gt;First &amp;amp; second.&lt;/p&gt;&lt;p&gt;Para two.&lt;/p&gt;</description>
      <pubDate>Mon, 02 Sep 2024 10:00:00 +0200</pubDate>
      <guid isPermaLink="false">item-1</guid>
    </item>
  </channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom Test</title>
  <id>urn:example:feed</id>
  <updated>2024-09-02T10:00:00+02:00</updated>
  <entry>
    <title>Atom entry</title>
    <id>urn:uuid:0001</id>
    <link rel="alternate" href="https://example.org/atom/1"/>
    <published>2024-09-02T10:00:00+02:00</published>
    <updated>2024-09-02T11:00:00+02:00</updated>
    <summary type="html">&lt;p&gt;Hello &lt;em&gt;world&lt;/em&gt;&lt;/p&gt;</summary>
    <content type="html">&lt;p&gt;Longer content here.&lt;/p&gt;&lt;p&gt;Second.&lt;/p&gt;</content>
  </entry>
</feed>
"""


def _rss_item(pub_date: str) -> bytes:
    return f"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>T</title><link>https://example.org/</link>
<description>d</description>
<item><title>Dated</title><link>https://example.org/d</link>
<pubDate>{pub_date}</pubDate></item>
</channel></rss>""".encode()


# --- html_to_text -------------------------------------------------------------------------


def test_html_to_text_drops_tags() -> None:
    """Tags are removed and only their text remains."""
    assert html_to_text("<b>Bold</b> and <a href='x'>link</a>") == "Bold and link"


def test_html_to_text_decodes_entities() -> None:
    """Named and numeric character entities are decoded."""
    assert html_to_text("Tom &amp; Jerry &#8211; &quot;cartoon&quot;") == 'Tom & Jerry – "cartoon"'


def test_html_to_text_drops_script_and_style_content() -> None:
    """The content of <script> and <style> elements is dropped, not just the tags."""
    text = html_to_text("<p>Hi</p><script>alert('x')</script><style>p {color: red}</style>")
    assert text == "Hi"
    assert "alert" not in text
    assert "color" not in text


def test_html_to_text_keeps_paragraphs_as_blank_lines() -> None:
    """Separate paragraphs come out separated by exactly one blank line."""
    assert html_to_text("<p>One</p>\n\n\n<p>Two   words</p><div>Three</div>") == (
        "One\n\nTwo words\n\nThree")


def test_html_to_text_plain_text_unchanged() -> None:
    """Text that is not HTML comes back as it was (ampersands and < included)."""
    for text in ["Plain text", "Tom & Jerry at 5 < 6", "Line one\n\nLine two"]:
        assert html_to_text(text) == text


def test_html_to_text_empty() -> None:
    """An empty fragment yields an empty string."""
    assert html_to_text("") == ""


# --- canonical_url ------------------------------------------------------------------------


def test_canonical_url_removes_tracking_params() -> None:
    """utm_* and fbclid parameters are stripped."""
    url = "https://example.com/a?utm_source=rss&utm_medium=feed&fbclid=abc"
    assert canonical_url(url) == "https://example.com/a"


def test_canonical_url_removes_fragment() -> None:
    """The #fragment is dropped."""
    assert canonical_url("https://example.com/a#comments") == "https://example.com/a"


def test_canonical_url_lowercases_host_not_path() -> None:
    """Scheme and host are lower-cased; the path keeps its case."""
    assert canonical_url("HTTPS://Example.COM/Path/To") == "https://example.com/Path/To"


def test_canonical_url_drops_default_port_only() -> None:
    """Ports 80 (http) and 443 (https) are dropped; other ports are kept."""
    assert canonical_url("http://example.com:80/a") == "http://example.com/a"
    assert canonical_url("https://example.com:443/a") == "https://example.com/a"
    assert canonical_url("http://example.com:8080/a") == "http://example.com:8080/a"


def test_canonical_url_keeps_and_sorts_other_params() -> None:
    """Non-tracking parameters survive, sorted by name."""
    url = "https://example.com/a?b=2&utm_campaign=x&a=1&fbclid=z#top"
    assert canonical_url(url) == "https://example.com/a?a=1&b=2"


def test_canonical_url_same_for_tracking_variants() -> None:
    """Two links differing only by tracking, fragment and host case canonicalise equally."""
    assert (canonical_url("https://News.example.com/story?id=7&utm_source=tw#x")
            == canonical_url("https://news.example.com/story?fbclid=1&id=7"))


def test_canonical_url_ipv6_host_keeps_brackets() -> None:
    """An IPv6 literal host stays bracketed so the URL remains valid."""
    assert canonical_url("http://[::1]:8080/x") == "http://[::1]:8080/x"


# --- entry_key / content_hash / alert_id --------------------------------------------------


def test_entry_key_prefers_guid() -> None:
    """With a guid the key is the guid, whatever the link and content."""
    assert entry_key(" g-1 ", "https://example.com/a", "T", "B") == "guid:g-1"


def test_entry_key_falls_back_to_canonical_link() -> None:
    """Without a guid the key is the canonical link (tracking parameters ignored)."""
    key = entry_key(None, "https://Example.com/a?utm_source=x", "T", "B")
    assert key == "link:https://example.com/a"
    assert key == entry_key("  ", "https://example.com/a#frag", "Other", "Other body")


def test_entry_key_falls_back_to_content_hash() -> None:
    """Without guid or link the key is a hash of title and body."""
    key = entry_key(None, None, "Title", "Body")
    assert key.startswith("hash:")
    assert key == "hash:" + content_hash("Title", "Body")
    assert key != entry_key(None, "", "Title", "Other body")


def test_entry_key_is_stable() -> None:
    """The same inputs always give the same key."""
    args = (None, None, "Same title", "Same body")
    assert entry_key(*args) == entry_key(*args)
    assert entry_key("g", None, "t", "b") == entry_key("g", None, "t", "b")


def test_entry_key_different_guids_differ() -> None:
    """Entries with different guids get different keys even with identical content."""
    assert entry_key("g-1", "https://e.com/a", "T", "B") != entry_key("g-2", "https://e.com/a",
                                                                      "T", "B")


def test_entry_key_hash_ignores_whitespace() -> None:
    """The content hash does not change with runs of spaces or newlines."""
    assert (entry_key(None, None, "A  title", "Body\n\n text  here ")
            == entry_key(None, None, "A title", "Body text here"))


def test_alert_id_is_stable_and_distinct() -> None:
    """alert_id is deterministic, 32 hex digits, and differs per rule, feed and entry."""
    first = alert_id("rule-a", "feed-1", "guid:x")
    assert first == alert_id("rule-a", "feed-1", "guid:x")
    assert len(first) == 32
    assert set(first) <= set("0123456789abcdef")
    assert first != alert_id("rule-b", "feed-1", "guid:x")
    assert first != alert_id("rule-a", "feed-2", "guid:x")
    assert first != alert_id("rule-a", "feed-1", "guid:y")


# --- parse_document -----------------------------------------------------------------------


def test_parse_rss_document() -> None:
    """An RSS 2.0 document yields its title and a normalised entry in UTC."""
    parsed = parse_document(RSS, feed_id="test", url="https://example.org/rss", now=NOW)
    assert parsed.title == "Test & Feed"
    assert parsed.warning is None
    assert len(parsed.entries) == 1
    entry = parsed.entries[0]
    assert entry.feed_id == "test"
    assert entry.title == "Troops move north"
    assert entry.summary == "First & second.\n\nPara two."
    assert entry.link == "https://example.org/news/1?utm_source=rss"
    assert entry.published == datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
    assert entry.guid == "item-1"
    assert entry.key == "guid:item-1"


def test_parse_atom_document() -> None:
    """An Atom document yields title, plain summary and content, link, id and UTC date."""
    parsed = parse_document(ATOM, feed_id="atom", url="https://example.org/atom", now=NOW)
    assert parsed.title == "Atom Test"
    assert len(parsed.entries) == 1
    entry = parsed.entries[0]
    assert entry.title == "Atom entry"
    assert entry.summary == "Hello world"
    assert entry.content == "Longer content here.\n\nSecond."
    assert entry.body == entry.content
    assert entry.link == "https://example.org/atom/1"
    assert entry.guid == "urn:uuid:0001"
    assert entry.published == datetime(2024, 9, 2, 8, 0, tzinfo=UTC)


def test_parse_far_future_date_becomes_fetch_time() -> None:
    """A publication date years ahead of the fetch time becomes the fetch time, flagged."""
    parsed = parse_document(_rss_item("Mon, 02 Sep 2030 10:00:00 +0000"), feed_id="t",
                            url="u", now=NOW)
    assert parsed.entries[0].published == NOW
    assert parsed.future_dated == 1
    assert parsed.warning == "1 entry dated in the future: dated the fetch time instead"


def test_parse_hours_ahead_date_becomes_fetch_time() -> None:
    """A date hours ahead (a zone mistake) is past the 10-minute skew: the fetch time."""
    parsed = parse_document(_rss_item("Mon, 02 Sep 2024 18:00:00 +0000"), feed_id="t",
                            url="u", now=NOW)
    assert parsed.entries[0].published == NOW
    assert parsed.future_dated == 1


def test_parse_minutes_ahead_date_is_kept() -> None:
    """A date a few minutes ahead (clock skew, within FUTURE_SKEW) is kept as is."""
    parsed = parse_document(_rss_item("Mon, 02 Sep 2024 12:09:00 +0000"), feed_id="t",
                            url="u", now=NOW)
    assert parsed.entries[0].published == NOW + timedelta(minutes=9)
    assert parsed.future_dated == 0 and parsed.warning is None


def test_parse_html_page_raises() -> None:
    """An HTML page raises ParseError saying it is an HTML page."""
    page = b"<!DOCTYPE html>\n<html><head><title>Home</title></head><body><p>Hi</p></body></html>"
    with pytest.raises(ParseError, match="HTML page") as info:
        parse_document(page, feed_id="t", url="https://example.org/", now=NOW)
    assert info.value.url == "https://example.org/"


def test_parse_html_page_with_bom_raises_html_message() -> None:
    """An HTML page starting with a UTF-8 byte-order mark is still reported as an HTML page."""
    page = b"\xef\xbb\xbf<!DOCTYPE html><html><body><p>Hi</p></body></html>"
    with pytest.raises(ParseError, match="HTML page"):
        parse_document(page, feed_id="t", url="u", now=NOW)


def test_parse_garbage_raises() -> None:
    """Binary garbage raises ParseError."""
    with pytest.raises(ParseError):
        parse_document(b"\x00\x01\x02\xff\xfe garbage \x9c", feed_id="t", url="u", now=NOW)


def test_parse_recoverable_feed_returns_entries_and_warning() -> None:
    """An unescaped & in a title still parses, with a warning about the malformed XML."""
    body = RSS.replace(b"Troops move north", b"Troops & tanks move north")
    parsed = parse_document(body, feed_id="t", url="u", now=NOW)
    assert parsed.warning
    assert len(parsed.entries) == 1
    assert parsed.entries[0].title == "Troops & tanks move north"
    assert parsed.entries[0].guid == "item-1"


# --- feed lists ---------------------------------------------------------------------------


def test_load_feed_file_yaml_and_opml_list_the_same_feeds() -> None:
    """seeds/feeds.yaml and seeds/feeds.opml list the same feed URLs (and titles)."""
    yaml_feeds = load_feed_file(REPO / "seeds" / "feeds.yaml")
    opml_feeds = load_feed_file(REPO / "seeds" / "feeds.opml")
    assert yaml_feeds
    assert {f.url for f in yaml_feeds} == {f.url for f in opml_feeds}
    assert {f.url: f.title for f in yaml_feeds} == {f.url: f.title for f in opml_feeds}
    assert len({f.id for f in yaml_feeds}) == len(yaml_feeds)
    assert len({f.id for f in opml_feeds}) == len(opml_feeds)


def test_load_feed_file_yaml_fields() -> None:
    """A YAML feed keeps its declared id, title and tags."""
    feeds = {f.id: f for f in load_feed_file(REPO / "seeds" / "feeds.yaml")}
    bbc = feeds["bbc-world"]
    assert bbc.url == "https://feeds.bbci.co.uk/news/world/rss.xml"
    assert bbc.tags == ("world",)
    assert bbc.enabled


def test_load_feed_file_bad_id_raises_located_config_error(tmp_path: Path) -> None:
    """A bad feed id raises ConfigError naming the file and the line of the id."""
    path = tmp_path / "myfeeds.yaml"
    path.write_text(
        "feeds:\n"
        "  - id: good-one\n"
        "    url: https://example.org/a.xml\n"
        "  - id: \"Bad ID!\"\n"
        "    url: https://example.org/b.xml\n",
        encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_feed_file(path)
    message = str(info.value)
    assert "myfeeds.yaml" in message
    assert f"{path}:4:" in message
    assert "feeds.1.id: " in message
    assert info.value.problems[0].line == 4


def test_invisible_characters_are_removed() -> None:
    """Zero-width spaces and soft hyphens inside words are dropped, so matchers see words."""
    assert html_to_text("<p>Defence\u200b Minister\u2060 Pis\u00adtorius</p>") == \
        "Defence Minister Pistorius"


def test_control_characters_are_removed() -> None:
    """NUL and other control characters never reach the database."""
    assert html_to_text("a\x00b\x07c") == "abc"


def test_many_paragraphs_keep_their_breaks() -> None:
    """Thousands of paragraphs are all kept apart (the marking pass is linear)."""
    text = html_to_text("<p>x</p>" * 5000)
    assert text.count("x") == 5000 and text.count("\n\n") == 4999


def test_placeholder_date_is_unknown() -> None:
    """A 1970-01-01 publication date is a placeholder: the entry's date is unknown."""
    doc = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
           b"<title>x</title><guid>g</guid><pubDate>Thu, 01 Jan 1970 00:00:00 GMT</pubDate>"
           b"</item></channel></rss>")
    parsed = parse_document(doc, feed_id="f", url="u", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert parsed.entries[0].published is None


# --- entry hygiene: text ------------------------------------------------------------------


def test_html_to_text_decodes_double_escaped_entities() -> None:
    """Entities escaped twice (&amp;amp;, &amp;#8217;) are decoded, never into < or >."""
    assert html_to_text("<p>AT&amp;amp;T&amp;#8217;s &amp;quot;deal&amp;quot;</p>") == (
        "AT&T’s \"deal\"")
    assert html_to_text("a &amp;lt;b&amp;gt; c") == "a &lt;b&gt; c"


def test_html_to_text_numeric_entities_and_nbsp() -> None:
    """Decimal and hex references decode; non-breaking spaces become plain spaces."""
    assert html_to_text("<b>Kyiv&#8217;s&nbsp;&nbsp;air&#x2014;defence</b>") == (
        "Kyiv’s air—defence")


def test_html_to_text_drops_noscript_and_iframe_content() -> None:
    """<noscript>, <iframe> and <template> content is dropped; the text after them stays."""
    text = html_to_text("<p>Body</p><noscript>Enable JS</noscript><iframe>x</iframe>tail")
    assert text == "Body\n\ntail"


def test_html_to_text_reads_cdata_as_html() -> None:
    """HTML wrapped in a CDATA section inside the fragment is read as HTML, not as tags."""
    assert html_to_text("<![CDATA[<p>Troops <b>moved</b></p>]]>") == "Troops moved"


def test_html_to_text_keeps_text_after_document_end() -> None:
    """Text after </body></html> in a fragment is kept."""
    assert html_to_text("<html><body><p>One</p></body></html><p>Two</p>") == "One\n\nTwo"


def test_html_to_text_deep_nesting_keeps_text() -> None:
    """Text nested deeper than libxml2's limit (256) is still extracted."""
    assert html_to_text("<span>" * 5000 + "deep text") == "deep text"


def test_html_to_text_carriage_returns_end_lines() -> None:
    """CRLF and a lone CR both end a line; words are never glued together."""
    assert html_to_text("<p>one\r\ntwo\rthree</p>") == "one\ntwo\nthree"


def test_html_to_text_is_linear_on_a_large_fragment() -> None:
    """A fragment past MAX_FRAGMENT_CHARS is cut, and converted quickly."""
    fragment = "<p>Missiles were moved to the border, officials said.</p>" * 50_000
    started = time.perf_counter()
    text = html_to_text(fragment)
    assert time.perf_counter() - started < 5
    assert len(fragment) > MAX_FRAGMENT_CHARS > len(text)
    assert text.count("\n\n") > 30_000


# --- entry hygiene: dates and links -------------------------------------------------------


def test_date_without_zone_is_utc() -> None:
    """A date without a time zone is read as UTC, with or without a weekday."""
    for text in ("Mon, 02 Sep 2024 10:00:00", "02 Sep 2024 10:00:00", "2024-09-02T10:00:00"):
        parsed = parse_document(_rss_item(text), feed_id="t", url="u", now=NOW)
        assert parsed.entries[0].published == datetime(2024, 9, 2, 10, 0, tzinfo=UTC), text


def test_date_with_foreign_month_name_is_read() -> None:
    """A date with a Portuguese weekday and month (Seg, Set) is read, with its offset."""
    parsed = parse_document(_rss_item("Seg, 24 Set 2018 19:42:40 -0300"), feed_id="t",
                            url="u", now=NOW)
    assert parsed.entries[0].published == datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)


def test_unparseable_date_is_unknown() -> None:
    """A date nobody can read leaves the publication time unknown (None)."""
    parsed = parse_document(_rss_item("yesterday-ish"), feed_id="t", url="u", now=NOW)
    assert parsed.entries[0].published is None
    assert parsed.future_dated == 0


def test_future_published_falls_back_to_updated() -> None:
    """A future published date gives way to a plausible updated date."""
    raw = {"published_parsed": (2031, 1, 1, 0, 0, 0, 0, 1, 0),
           "updated_parsed": (2024, 9, 1, 8, 0, 0, 0, 245, 0)}
    assert published_at(raw, NOW) == (datetime(2024, 9, 1, 8, 0, tzinfo=UTC), False)
    assert published_at({"published_parsed": raw["published_parsed"]}, NOW) == (NOW, True)


def test_relative_entry_link_is_resolved_but_key_unchanged() -> None:
    """A relative item link is made absolute against the feed URL; the key keeps the link
    as written, so entries stored before keep their keys."""
    doc = _rss_item("Mon, 02 Sep 2024 10:00:00 +0000").replace(
        b"https://example.org/d", b"/news/7")
    entry = parse_document(doc, feed_id="t", url="https://example.org/feed/rss.xml",
                           now=NOW).entries[0]
    assert entry.link == "https://example.org/news/7"
    assert entry.key == "link:/news/7"


# --- HTML pages instead of feeds ----------------------------------------------------------


def _page(head: str, body: str = "<p>Welcome</p>") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode()


def test_html_page_names_the_feed_it_links_to() -> None:
    """The error names the page's feed link, resolved against the page URL."""
    page = _page('<link rel="alternate" type="application/rss+xml" href="rss.xml">')
    with pytest.raises(ParseError) as info:
        parse_document(page, feed_id="t", url="https://x.example/news/", now=NOW)
    assert str(info.value) == ("https://x.example/news/: this is an HTML page, not a feed; "
                               "it links to a feed at https://x.example/news/rss.xml "
                               "— use that URL")


def test_html_page_with_several_feeds_lists_them_with_titles() -> None:
    """Several feed links are all listed, with their titles, in page order."""
    page = _page('<base href="https://cdn.example/site/">'
                 '<link rel="alternate" type="application/atom+xml" title="Posts" '
                 'href="/atom.xml">'
                 '<link rel="alternate" type="application/json" href="/wp-json/">'
                 '<link rel="stylesheet" href="/s.css">'
                 '<link rel="alternate" type="application/rss+xml" title="Comments" '
                 'href="comments/feed">')
    with pytest.raises(ParseError) as info:
        parse_document(page, feed_id="t", url="https://x.example/", now=NOW)
    assert str(info.value).endswith(
        'it links to feeds at https://cdn.example/atom.xml ("Posts"), '
        'https://cdn.example/site/comments/feed ("Comments") — use one of those URLs')


def test_html_page_without_feed_links_says_so() -> None:
    """A page with no feed link gets the plain HTML-page error."""
    with pytest.raises(ParseError, match="HTML page, not a feed, and it links to no feed"):
        parse_document(_page("<title>Home</title>"), feed_id="t", url="u", now=NOW)


def test_html_page_detected_after_comments_and_whitespace() -> None:
    """Leading whitespace, a BOM, an XML declaration and comments do not hide a page."""
    page = (b"\xef\xbb\xbf \n<?xml version='1.0'?>\n<!-- cached 12:00 -->\n"
            b'<html><head><link rel="alternate" type="application/atom+xml" href="/a">'
            b"</head><body>x</body></html>")
    with pytest.raises(ParseError, match=r"links to a feed at https://x\.example/a"):
        parse_document(page, feed_id="t", url="https://x.example/b", now=NOW)


def test_html_fragment_served_as_html_is_a_page() -> None:
    """A document with no doctype and no <html>, served as text/html, is an HTML page."""
    with pytest.raises(ParseError, match="HTML page"):
        parse_document(b"<div>Maintenance</div>", feed_id="t", url="u", now=NOW,
                       content_type="text/html; charset=utf-8")


def test_feed_with_xhtml_doctype_is_still_a_feed() -> None:
    """An RSS document carrying an XHTML doctype is parsed: its root element decides."""
    doc = RSS.replace(b"<rss", b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0//EN" '
                               b'"http://site.invalid/">\n<rss', 1)
    assert len(parse_document(doc, feed_id="t", url="u", now=NOW).entries) == 1


def test_feed_served_as_text_html_is_still_a_feed() -> None:
    """A real feed served with Content-Type text/html is parsed, not refused."""
    parsed = parse_document(RSS, feed_id="t", url="u", now=NOW, content_type="text/html")
    assert len(parsed.entries) == 1


def test_huge_html_page_reads_only_its_head() -> None:
    """A feed link past the first 256 KiB is not looked for; a huge page is refused fast."""
    filler = "<p>" + "x" * 1000 + "</p>"
    page = _page('<link rel="alternate" type="application/rss+xml" href="/early.xml">',
                 filler * 8000 + '<link rel="alternate" type="application/rss+xml" '
                                 'href="/late.xml">')
    started = time.perf_counter()
    with pytest.raises(ParseError) as info:
        parse_document(page, feed_id="t", url="https://x.example/", now=NOW)
    assert time.perf_counter() - started < 5
    assert "https://x.example/early.xml" in str(info.value)
    assert "late.xml" not in str(info.value)


def test_entry_key_front_page_link_is_no_identifier() -> None:
    """Items that all link to the site's front page (scraped feeds) keep distinct keys."""
    first = entry_key(None, "https://meduza.io/", "Story one", "Body one")
    assert first.startswith("hash:")
    assert first != entry_key(None, "https://meduza.io", "Story two", "Body two")
    assert entry_key(None, "https://x.org/?p=12", "T", "B") == "link:https://x.org/?p=12"


def test_rss_ttl_is_read() -> None:
    """RSS <ttl> (minutes) is passed on; a nonsense value is ignored."""
    for ttl, minutes in (("60", 60), (" 15 ", 15), ("-5", None), ("soon", None)):
        doc = RSS.replace(b"<title>Test &amp; Feed</title>",
                          f"<title>T</title><ttl>{ttl}</ttl>".encode())
        assert parse_document(doc, feed_id="t", url="u", now=NOW).ttl_minutes == minutes


def test_json_feed_is_parsed() -> None:
    """A JSON Feed (which feedparser 6.0 cannot read) gives entries like RSS does."""
    doc = json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": "JSON &amp; news",
        "language": "en", "items": [
            {"id": 7, "url": "https://example.org/7", "title": "Troops move",
             "content_html": "<p>North <b>fast</b></p>", "summary": "S & T",
             "date_published": "2024-09-02T10:00:00+02:00"},
            {"id": "8", "content_text": "Plain <text> & more",
             "date_modified": "2024-09-01T10:00:00"}]}).encode()
    parsed = parse_document(doc, feed_id="j", url="https://example.org/feed.json", now=NOW)
    assert parsed.title == "JSON & news"
    first, second = parsed.entries
    assert (first.key, first.title, first.link) == ("guid:7", "Troops move",
                                                    "https://example.org/7")
    assert (first.content, first.summary) == ("North fast", "S & T")
    assert first.published == datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
    assert first.language == "en"
    assert second.body == "Plain <text> & more"
    assert second.published == datetime(2024, 9, 1, 10, 0, tzinfo=UTC)


def test_json_that_is_no_json_feed_is_refused() -> None:
    """JSON that is not a JSON Feed, or broken JSON, raises a clear ParseError."""
    with pytest.raises(ParseError, match="not a JSON Feed"):
        parse_document(b'{"hello": 1}', feed_id="j", url="u", now=NOW)
    with pytest.raises(ParseError, match="invalid JSON"):
        parse_document(b'{"version": ' + b"[" * 100_000, feed_id="j", url="u", now=NOW)
