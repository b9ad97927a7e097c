"""The main text of a fetched article page (pure: bytes in, plain text out, no I/O).

trafilatura finds the article among the page's navigation, sidebars, banners, related
links and comments.  It is told to favour precision (rules should read the story, not
the boilerplate around it), to leave comments out (readers' words are not the outlet's)
and to leave tables out: on news pages they are mostly tickers, results and fact boxes
whose cells make no sentences, and entity-only rule leaves would fire on them.  Links
are kept through extraction only to measure them: a page whose text is mostly links (a
section front, a tag page) is not an article.  A short line asking the reader to
subscribe or sign in is dropped, so a paywall stub comes out too short to use.

trafilatura can download pages itself; it is only ever handed bytes or text here.  Its
import costs about 0.15 s and 16 MB in a process that already holds ingest (0.2 s and
40 MB alone), so it is imported on first use, not by every command that imports this.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from ingest.parse.text import normalise_space

# Less text than this is a teaser, a caption or a paywall stub, not an article.
MIN_CHARS = 200
# Extraction takes about 0.25 s per MB of HTML; a page is cut here before parsing.
MAX_HTML_BYTES = 5 * 1024 * 1024
HTML_TYPES = ("text/html", "application/xhtml+xml")
# A page whose text is mostly links is a section front or a list of stories, not a story.
MAX_LINK_SHARE = 0.5

_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?\s*([\w:.+-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]+?charset\s*=\s*[\"']?\s*([\w:.+-]+)", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
# Labels a browser reads as windows-1252 (WHATWG Encoding), and a meta "utf-16" that
# cannot be true of bytes an ASCII prescan just read.
_LABELS = {"iso-8859-1": "windows-1252", "latin1": "windows-1252", "latin-1": "windows-1252",
           "us-ascii": "windows-1252", "ascii": "windows-1252", "utf-16": "utf-8"}
# A short line that asks the reader to pay or sign in: it names the account ...
_PAYWALL_WHO = re.compile(r"subscri|sign in|sign up|log ?in|register|account|member",
                          re.IGNORECASE)
# ... and what it is for.
_PAYWALL_WHAT = re.compile(
    r"continue reading|keep reading|read (?:the|this) (?:full|rest|whole|entire)|"
    r"(?:for|to) (?:paying )?(?:subscribers|members)|subscribers only|already a|"
    r"unlimited access|full access|a (?:week|month)\b", re.IGNORECASE)
_PAYWALL_LONE = re.compile(r"(?:subscribe|sign in|log in|register)(?: now| today)?\W*",
                           re.IGNORECASE)
_PAYWALL_LINE_CHARS = 300


def is_html(content_type: str | None) -> bool:
    """True for an HTML page, or when the server did not say what it sent."""
    if not content_type:
        return True
    return content_type.split(";", 1)[0].strip().lower() in HTML_TYPES


def extract_article(html: bytes, url: str, *, content_type: str | None,
                    max_chars: int) -> str | None:
    """The main text of an article page, or None when it holds no usable article.

    Paragraphs are separated by blank lines; the text is cut to ``max_chars`` (at a
    paragraph or word boundary when one is near).  None for a page that is not HTML,
    holds less than :data:`MIN_CHARS` characters of article text, or only a paywall's
    invitation to subscribe.
    """
    if not html.strip() or not is_html(content_type):
        return None
    from trafilatura import bare_extraction  # costly to import (see the module docstring)
    from trafilatura.xml import xmltotxt

    document = bare_extraction(
        _decode(html[:MAX_HTML_BYTES], content_type), url=url or None, favor_precision=True,
        include_comments=False, include_tables=False, include_images=False,
        include_links=True, include_formatting=False, deduplicate=False, with_metadata=False,
        as_dict=False)
    body = getattr(document, "body", None)
    if body is None:
        return None
    if _link_share(body) > MAX_LINK_SHARE:
        return None
    etree.strip_tags(body, "ref")
    raw = xmltotxt(body, include_formatting=False)
    lines = [line for line in normalise_space(raw).split("\n") if not _paywall(line)]
    text = "\n\n".join(line for line in lines if line)
    if len(text) < MIN_CHARS:
        return None
    return _truncate(text, max_chars)


def extract_job(html: bytes, url: str, content_type: str | None, max_chars: int) -> str | None:
    """:func:`extract_article` with positional arguments, for ``run_in_executor`` and pools."""
    return extract_article(html, url, content_type=content_type, max_chars=max_chars)


def _decode(html: bytes, content_type: str | None) -> str | bytes:
    """The page as text, in the first encoding that fits its bytes.

    A byte-order mark comes first; then UTF-8, since bytes that are valid UTF-8 are
    UTF-8 whatever a server's default header claims; then the Content-Type charset;
    then a ``<meta>`` charset in the first 4 KB.  When none fits, the bytes go to
    trafilatura, which guesses (charset_normalizer).  A character cut in two at the end
    (a page cut at :data:`MAX_HTML_BYTES`) is dropped, not counted as a misfit.
    """
    labels = [name for bom, name in _BOMS if html.startswith(bom)] + ["utf-8"]
    if content_type and (found := _CHARSET_PARAM.search(content_type)):
        labels.append(found.group(1))
    if found_meta := _META_CHARSET.search(html[:4096]):
        labels.append(found_meta.group(1).decode("ascii", "replace"))
    for label in labels:
        name = _LABELS.get(label.lower(), label)
        try:
            decoder = codecs.getincrementaldecoder(name)(errors="strict")
            return decoder.decode(html, final=False).removeprefix("\ufeff")
        except (LookupError, UnicodeDecodeError):
            continue
    return html


def _link_share(element: etree._Element) -> float:
    """How much of an element's text is the text of links."""
    total = len(_text(element))
    return sum(len(_text(ref)) for ref in element.iter("ref")) / total if total else 0.0


def _text(element: etree._Element) -> str:
    return "".join(element.itertext()).strip()


def _paywall(line: str) -> bool:
    """A short line inviting the reader to subscribe or sign in to read on."""
    if len(line) > _PAYWALL_LINE_CHARS:
        return False
    if _PAYWALL_LONE.fullmatch(line):
        return True
    return bool(_PAYWALL_WHO.search(line) and _PAYWALL_WHAT.search(line))


def _truncate(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars``, at a paragraph (else word) break in the last tenth."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    for separator in ("\n\n", " "):
        at = cut.rfind(separator)
        if at >= max_chars * 0.9:
            return cut[:at].rstrip()
    return cut
