"""HTML fragments from feeds turned into clean plain text."""

from __future__ import annotations

import re
import warnings

from bs4 import BeautifulSoup, MarkupResemblesLocatorWarning

_DROP = ("script", "style", "noscript", "iframe", "object", "template")
_BLOCK = ("p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
          "blockquote", "tr", "table", "section", "article", "figure", "figcaption")
_SPACES = re.compile(r"[ \t\u00a0\u2009\u200a\u202f]+")
_BLANKS = re.compile(r"\n\s*\n+")
_LOOKS_HTML = re.compile(r"<[a-zA-Z!/]|&[#a-zA-Z0-9]+;")
# Invisible characters some outlets sprinkle through their text (zero-width spaces and
# joiners, word joiners, soft hyphens, BOMs); they split words for every matcher.
# NUL and other C0 controls (but tab and newline) are dropped too: databases refuse NUL.
_INVISIBLE = dict.fromkeys(
    [*map(ord, "\u200b\u200c\u200d\u2060\u00ad\ufeff"),
     *(c for c in range(32) if c not in (9, 10, 13))], None)
# Block-level tags become paragraph breaks.  Marked with one regex pass over the source
# (linear), because inserting text around each tag in the parsed tree is quadratic.
_BLOCK_TAG = re.compile(rf"<(?:/?(?:{'|'.join(_BLOCK)})\b[^>]*)>", re.IGNORECASE)
# A fragment longer than this is cut before parsing: more text than any rule reads.
MAX_FRAGMENT_CHARS = 2_000_000


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment: tags gone, entities decoded, paragraphs kept.

    Block elements become paragraph breaks; runs of spaces collapse; scripts and
    styles are dropped with their content.
    """
    if not fragment:
        return ""
    fragment = fragment[:MAX_FRAGMENT_CHARS]
    if not _LOOKS_HTML.search(fragment):
        return normalise_space(fragment)
    marked = _BLOCK_TAG.sub(lambda m: f"\n\n{m.group(0)}\n\n", fragment)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MarkupResemblesLocatorWarning)
        soup = BeautifulSoup(marked, "html.parser")
    for tag in soup(_DROP):
        tag.decompose()
    return normalise_space(soup.get_text())


def normalise_space(text: str) -> str:
    """Collapse spaces within lines and blank-line runs into one paragraph break."""
    text = text.translate(_INVISIBLE).replace("\r", "")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
