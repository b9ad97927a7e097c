"""Tests of full text for teaser-only feeds: extraction (pure), with_fulltext (loopback HTTP)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from ingest.config import FulltextSettings, PollingSettings
from ingest.fetch.article import extract_article, extract_job
from ingest.fetch.client import Fetcher, make_http_client
from ingest.fetch.fulltext import with_fulltext
from ingest.model import Entry
from ingest.testing import FeedServer, Route

HTML = "text/html; charset=utf-8"

PARAGRAPHS = (
    "A Chinese coastguard ship and a Philippine supply vessel collided on Monday near the "
    "Second Thomas Shoal in the South China Sea, the Philippine armed forces said, in the most "
    "serious confrontation between the two countries in the disputed waters this year.",
    "The Philippine military said the Chinese vessel had rammed the supply boat and that "
    "coastguard personnel armed with knives and axes had boarded two inflatable boats carrying "
    "food and water to troops stationed on a grounded warship at the shoal.",
    "China's coastguard said the Philippine vessels had \u201cdeliberately and dangerously\u201d "
    "approached a Chinese ship in an unprofessional manner and that it had taken \u201ccontrol "
    "measures\u201d in accordance with the law, accusing Manila of illegally intruding into "
    "waters near the Ren'ai Reef, the name China uses for the shoal.",
    "The collision followed months of increasingly tense encounters, in which Chinese vessels "
    "have used water cannon against Philippine boats on resupply missions. The United States, "
    "which has a mutual defence treaty with the Philippines, said it stood with its ally.",
    "One Filipino sailor lost a thumb in the incident, the military said. Officials in Manila "
    "said they were assessing whether the episode could be considered an armed attack under "
    "the treaty, a determination that could oblige Washington to respond.",
)

# Text of every piece of boilerplate on the page: none of it may reach the rules.
BOILERPLATE = (
    "We use cookies to personalise content", "Accept all", "Manage preferences",
    "The Harbour Post Ltd", "Politics", "Business", "Share on Facebook", "Typhoon batters",
    "Sign up for our morning briefing", "Celebrity chef", "Stock markets fall", "Advertisement",
    "Manila summons Chinese envoy", "What is the Second Thomas Shoal", "seawatcher42",
    "tribunal ruling", "Stay safe to all our sailors", "Privacy policy", "All rights reserved",
    "dataLayer", "font-family", "NewsArticle", "Home", "Comments", "More on this story",
    "accuses China of piracy", "reaffirms defence pact", "](",
)


def article_page(paragraphs: tuple[str, ...] | list[str] = PARAGRAPHS,
                 charset: str = "utf-8") -> str:
    """A news article page with everything a real one wraps its story in."""
    first, second, *rest = paragraphs
    first = first.replace("Second Thomas Shoal", '<a href="/tag/shoal">Second Thomas Shoal</a>')
    body = "\n".join(f"    <p>{p}</p>" for p in rest)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="{charset}">
<title>Coastguard ships collide near disputed shoal | The Harbour Post</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta property="og:title" content="Coastguard ships collide near disputed shoal">
<link rel="stylesheet" href="https://static.harbourpost.example/site.css">
<style>
  body {{ font-family: Georgia, serif; }} .cookie-banner {{ position: fixed; bottom: 0; }}
</style>
<script>
  window.dataLayer = window.dataLayer || [];
  function gtag(){{dataLayer.push(arguments);}} gtag('js', new Date());
</script>
<script type="application/ld+json">
{{"@context": "https://schema.org", "@type": "NewsArticle",
 "headline": "Coastguard ships collide near disputed shoal",
 "datePublished": "2024-06-17T08:30:00Z"}}
</script>
</head>
<body>
<div id="cookie-consent" class="cookie-banner" role="dialog">
  <p>We use cookies to personalise content and ads, to provide social media features and to
  analyse our traffic. By clicking "Accept all" you agree to our use of cookies.</p>
  <button>Accept all</button> <button>Manage preferences</button>
</div>
<header class="site-header">
  <a class="logo" href="/">The Harbour Post</a>
  <nav class="main-nav" aria-label="Sections"><ul>
    <li><a href="/world">World</a></li><li><a href="/politics">Politics</a></li>
    <li><a href="/business">Business</a></li><li><a href="/sport">Sport</a></li>
  </ul></nav>
  <form class="search" action="/search"><input name="q" placeholder="Search"></form>
</header>
<div class="breadcrumbs"><a href="/">Home</a> &rsaquo; <a href="/world">World</a></div>
<main id="main">
<div class="layout">
<article class="story">
  <header class="story-header">
    <h1>Coastguard ships collide near disputed shoal</h1>
    <p class="byline">By Maria Santos, Manila correspondent</p>
    <time datetime="2024-06-17T08:30:00Z">17 June 2024</time>
    <div class="share"><a href="https://x.example/share">Share on X</a>
      <a href="https://facebook.example/sharer">Share on Facebook</a></div>
  </header>
  <figure><img src="https://img.harbourpost.example/shoal.jpg" alt="Ships at sea"></figure>
  <div class="story-body">
    <p>{first}</p>
    <p>{second}</p>
    <aside class="inline-related"><h3>Read more</h3><ul>
      <li><a href="/world/asia/typhoon">Typhoon batters northern Luzon</a></li>
    </ul></aside>
{body}
    <h2>More on this story</h2>
    <ul><li><a href="/world/asia/3">Philippines accuses China of piracy after clash</a></li>
      <li><a href="/world/asia/4">US reaffirms defence pact with Manila</a></li></ul>
  </div>
  <div class="newsletter">Sign up for our morning briefing <input type="email">
    <button>Sign up</button></div>
</article>
<aside class="sidebar" role="complementary">
  <section class="most-read"><h2>Most read</h2><ol>
    <li><a href="/a">Celebrity chef opens fourth restaurant</a></li>
    <li><a href="/b">Stock markets fall as oil rises</a></li>
  </ol></section>
  <div class="ad" id="ad-slot-2">Advertisement</div>
</aside>
</div>
<section class="related" aria-label="Related stories"><h2>Related stories</h2><ul>
  <li><a href="/world/asia/1">Manila summons Chinese envoy over water cannon incident</a></li>
  <li><a href="/world/asia/2">What is the Second Thomas Shoal and why does it matter?</a></li>
</ul></section>
<section id="comments" class="comments"><h2>Comments (2)</h2>
  <div class="comment"><p class="comment-author">seawatcher42</p><p>This is what happens
  when nobody enforces the tribunal ruling, absolutely shameful behaviour.</p></div>
  <div class="comment"><p class="comment-author">j.reyes</p>
  <p>Stay safe to all our sailors out there.</p></div>
</section>
</main>
<footer class="site-footer">
  <nav><a href="/about">About us</a> | <a href="/privacy">Privacy policy</a></nav>
  <p>&copy; 2024 The Harbour Post Ltd. All rights reserved.</p>
</footer>
<script src="https://static.harbourpost.example/app.js"></script>
</body>
</html>
"""


ARTICLE = article_page().encode()

# A section front: navigation and forty headlines, no story.
INDEX = ("""<!DOCTYPE html><html><head><meta charset="utf-8"><title>World | The Harbour Post
</title></head><body><header><nav><a href="/">Home</a> <a href="/world">World</a></nav></header>
<main><h1>World</h1><ul class="headlines">"""
         + "".join(f'<li><a href="/world/{i}">Headline {i}: ministers meet to discuss the '
                   f'crisis in a faraway country</a> <span>{i}h ago</span></li>'
                   for i in range(40))
         + """</ul></main><footer><a href="/privacy">Privacy</a> &copy; 2024 The Harbour Post
</footer></body></html>""").encode()

# The first paragraph, then the paywall.
PAYWALL = article_page([
    PARAGRAPHS[0][:110],
    "This article is for subscribers only",
    "Subscribe now for unlimited access to The Harbour Post from just \u00a31 a week. "
    "Already a subscriber? Log in to continue reading.",
    "Subscribe",
]).encode()

RUSSIAN = (
    "Министерство обороны России сообщило в понедельник о перехвате двух беспилотников над "
    "Белгородской областью, заявив, что никто не пострадал.",
    "По словам губернатора области, обломки одного из аппаратов повредили крышу склада на "
    "окраине города, а оперативные службы работали на месте всю ночь.",
    "Ранее на этой неделе Киев не комментировал сообщения о новых атаках, однако в Генштабе "
    "Украины заявили о продолжении ударов по военным объектам.",
    "Эксперты отмечают, что число подобных инцидентов в приграничных регионах заметно выросло "
    "с начала года, и призывают власти усилить систему оповещения населения.",
)


def _entry(key: str, link: str, summary: str = "A short teaser.", content: str = "") -> Entry:
    return Entry("harbour-post", key, f"Headline {key}", link, summary, content,
                 datetime(2024, 6, 17, 8, 30, tzinfo=UTC))


# --- extract_article (pure) ----------------------------------------------------------------


def test_article_text_without_boilerplate() -> None:
    """Every article paragraph is kept, none of the page's boilerplate is."""
    text = extract_article(ARTICLE, "https://harbourpost.example/world/collide",
                           content_type=HTML, max_chars=50_000)
    assert text is not None
    for paragraph in PARAGRAPHS:
        assert paragraph in text
    for junk in BOILERPLATE:
        assert junk not in text, junk


def test_paragraphs_separated_by_blank_lines() -> None:
    """The text is the article's paragraphs, in order, one blank line apart."""
    text = extract_article(ARTICLE, "https://harbourpost.example/world/collide",
                           content_type="text/html", max_chars=50_000)
    assert text is not None
    assert text.split("\n\n") == list(PARAGRAPHS)


def test_text_lists_kept_link_lists_dropped() -> None:
    """A list of key points stays in the text; the list of related stories does not."""
    points = ("Two inflatable boats were boarded by coastguard personnel",
              "One Filipino sailor was injured in the collision")
    page = ARTICLE.replace(b"</p>\n    <p>The Philippine military", (
        "</p><ul>" + "".join(f"<li>{p}</li>" for p in points)
        + "</ul>\n    <p>The Philippine military").encode(), 1)
    text = extract_article(page, "https://harbourpost.example/world/collide", content_type=HTML,
                           max_chars=50_000)
    assert text is not None
    assert text.split("\n\n")[1:3] == [f"- {p}" for p in points]
    assert "More on this story" not in text
    assert "accuses China of piracy" not in text


@pytest.mark.parametrize("page", [
    INDEX,
    PAYWALL,
    b"<html><body><div id='app'></div><script>render()</script></body></html>",
    b"",
], ids=["section-front", "paywall", "script-only", "empty"])
def test_no_article_gives_none(page: bytes) -> None:
    """A page without an article (or only a paywall's invitation) gives None."""
    assert extract_article(page, "https://harbourpost.example/world", content_type=HTML,
                           max_chars=50_000) is None


def test_not_html_gives_none() -> None:
    """A PDF or an image is not read, whatever its bytes hold."""
    assert extract_article(ARTICLE, "https://harbourpost.example/report.pdf",
                           content_type="application/pdf", max_chars=50_000) is None


def test_windows_1251_declared_by_meta() -> None:
    """A windows-1251 page declared only in <meta charset> is decoded right."""
    page = article_page(RUSSIAN, charset="windows-1251").encode("windows-1251")
    text = extract_article(page, "https://news.example/ru/1", content_type="text/html",
                           max_chars=50_000)
    assert text is not None
    assert text.split("\n\n") == list(RUSSIAN)


def test_header_charset_comes_before_meta() -> None:
    """The Content-Type charset comes before a <meta> charset that contradicts it."""
    page = article_page(RUSSIAN, charset="koi8-r").encode("windows-1251")
    text = extract_article(page, "https://news.example/ru/1",
                           content_type="text/html; charset=windows-1251", max_chars=50_000)
    assert text is not None
    assert text.split("\n\n") == list(RUSSIAN)


def test_valid_utf8_wins_over_a_default_latin1_header() -> None:
    """A UTF-8 page served with a server's default "charset=iso-8859-1" reads as UTF-8."""
    text = extract_article(article_page(RUSSIAN).encode(), "https://news.example/ru/1",
                           content_type="text/html; charset=ISO-8859-1", max_chars=50_000)
    assert text is not None
    assert text.split("\n\n") == list(RUSSIAN)


def test_huge_page_bounded_by_max_chars() -> None:
    """A page of 3,000 paragraphs gives at most max_chars, cut between paragraphs."""
    paragraphs = [f"Paragraph {i}: {PARAGRAPHS[i % 5]}" for i in range(3000)]
    page = article_page(paragraphs).encode()
    assert len(page) > 500_000
    text = extract_article(page, "https://harbourpost.example/long", content_type=HTML,
                           max_chars=5_000)
    assert text is not None
    assert 4_500 <= len(text) <= 5_000
    assert text.startswith(paragraphs[0])
    assert text.split("\n\n")[-1] in paragraphs


def test_extraction_does_no_network_io() -> None:
    """Extraction opens no socket, though the page links scripts, images and styles."""
    events: list[str] = []
    _network_events.append(events)
    try:
        text = extract_article(ARTICLE, "https://harbourpost.example/world/collide",
                               content_type=HTML, max_chars=50_000)
    finally:
        _network_events.remove(events)
    assert text is not None
    assert events == []


_network_events: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _network_events and event.startswith(("socket.", "urllib.Request", "http.client")):
        _network_events[-1].append(event)


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one records only when asked


# --- with_fulltext over loopback HTTP -------------------------------------------------------


@asynccontextmanager
async def _fetcher() -> AsyncIterator[Fetcher]:
    polling = PollingSettings(host_spacing=0)
    async with make_http_client(polling) as client:
        yield Fetcher(client, polling)


async def test_article_replaces_teaser_and_problems_name_the_rest(
        feed_server: FeedServer) -> None:
    """The page with an article gives its entry the text; a 404 and an empty page do not."""
    feed_server.routes["/story"] = Route(ARTICLE, HTML)
    feed_server.routes["/gone"] = Route(b"Not here", "text/html", status=404)
    feed_server.routes["/empty"] = Route(INDEX, HTML)
    entries = [_entry("a", feed_server.url("/story")), _entry("b", feed_server.url("/gone")),
               _entry("c", feed_server.url("/empty"))]
    async with _fetcher() as fetcher:
        out, problems = await with_fulltext(entries, fetcher=fetcher,
                                            settings=FulltextSettings())
    assert out[0] == replace(entries[0], content="\n\n".join(PARAGRAPHS))
    assert out[0].body == out[0].content
    assert out[1:] == entries[1:]
    assert sorted(problems) == [f"{feed_server.url('/empty')}: no article text found",
                                f"{feed_server.url('/gone')}: HTTP 404 Not Found"]


async def test_slow_page_times_out_alone(feed_server: FeedServer) -> None:
    """A page slower than the fetcher's timeout is a problem line; the other page is read."""
    feed_server.routes["/story"] = Route(ARTICLE, HTML)
    feed_server.routes["/slow"] = Route(ARTICLE, HTML, delay_s=3.0)
    entries = [_entry("slow", feed_server.url("/slow")), _entry("a", feed_server.url("/story"))]
    polling = PollingSettings(host_spacing=0, timeout=0.5)
    async with make_http_client(polling) as client:
        out, problems = await with_fulltext(entries, fetcher=Fetcher(client, polling),
                                            settings=FulltextSettings())
    assert out[0] == entries[0]
    assert out[1].content == "\n\n".join(PARAGRAPHS)
    assert len(problems) == 1
    assert problems[0].startswith(f"{feed_server.url('/slow')}: timed out after 0.5s")


async def test_deadline_keeps_finished_articles_and_teasers_of_the_rest(
        feed_server: FeedServer) -> None:
    """At the deadline the slow pages are abandoned (teasers kept, one problem line);
    the article read before it keeps its text, and the call returns on time."""
    extract_job(ARTICLE, "https://x.example/", HTML, 2_000)  # extraction's imports, warm
    feed_server.routes["/story"] = Route(ARTICLE, HTML)
    for slow in ("/slow1", "/slow2"):
        feed_server.routes[slow] = Route(ARTICLE, HTML, delay_s=5.0)
    entries = [_entry("a", feed_server.url("/story")), _entry("s1", feed_server.url("/slow1")),
               _entry("s2", feed_server.url("/slow2"))]
    polling = PollingSettings(host_spacing=0, timeout=30)
    started = time.monotonic()
    async with make_http_client(polling) as client:
        fetcher = Fetcher(client, polling)
        out, problems = await with_fulltext(entries, fetcher=fetcher,
                                            settings=FulltextSettings(), deadline_s=1.5)
        assert time.monotonic() - started < 4
        # The abandoned requests gave their host slots back (per_host is 2).
        again = await asyncio.wait_for(fetcher.fetch(feed_server.url("/story")), 2)
        assert again.status == 200
    assert out[0].content == "\n\n".join(PARAGRAPHS)
    assert out[1:] == entries[1:]
    assert problems == ["full text stopped after 1.5s: 2 article(s) keep their teaser"]


async def test_failed_extraction_keeps_teaser(feed_server: FeedServer) -> None:
    """When the CPU runner fails (e.g. a broken pool), the entry keeps its teaser."""
    feed_server.routes["/story"] = Route(ARTICLE, HTML)

    async def broken(function: Any, *args: Any) -> Any:
        raise RuntimeError("pool is gone")

    entries = [_entry("a", feed_server.url("/story"))]
    async with _fetcher() as fetcher:
        out, problems = await with_fulltext(entries, fetcher=fetcher,
                                            settings=FulltextSettings(), run_cpu=broken)
    assert out == entries
    assert problems == [f"{feed_server.url('/story')}: extraction failed (RuntimeError)"]


async def test_max_per_poll_limits_fetches(feed_server: FeedServer) -> None:
    """Only the first max_per_poll links are fetched; the rest keep their teaser."""
    for i in range(5):
        feed_server.routes[f"/s{i}"] = Route(ARTICLE, HTML)
    entries = [_entry(str(i), feed_server.url(f"/s{i}")) for i in range(5)]
    async with _fetcher() as fetcher:
        out, problems = await with_fulltext(entries, fetcher=fetcher,
                                            settings=FulltextSettings(max_per_poll=2))
    assert [feed_server.hits(f"/s{i}") for i in range(5)] == [1, 1, 0, 0, 0]
    assert [bool(e.content) for e in out] == [True, True, False, False, False]
    assert out[2:] == entries[2:]
    assert problems == ["3 more article(s) not fetched: fulltext.max_per_poll is 2"]


async def test_entries_without_http_links_untouched(feed_server: FeedServer) -> None:
    """No link, a mailto: or a relative link: nothing is fetched, nothing changes."""
    entries = [_entry("a", ""), _entry("b", "mailto:desk@harbourpost.example"),
               _entry("c", "/world/collide"), _entry("d", "file:///etc/passwd")]
    async with _fetcher() as fetcher:
        out, problems = await with_fulltext(entries, fetcher=fetcher,
                                            settings=FulltextSettings())
    assert out == entries
    assert problems == []
    assert feed_server.requests == []


async def test_shared_link_fetched_once(feed_server: FeedServer) -> None:
    """Two entries pointing at one page cost one request and both get the text."""
    feed_server.routes["/story"] = Route(ARTICLE, HTML)
    entries = [_entry("a", feed_server.url("/story")), _entry("b", feed_server.url("/story"))]
    async with _fetcher() as fetcher:
        out, _ = await with_fulltext(entries, fetcher=fetcher, settings=FulltextSettings())
    assert feed_server.hits("/story") == 1
    assert [e.content for e in out] == ["\n\n".join(PARAGRAPHS)] * 2
    assert [e.key for e in out] == ["a", "b"]


async def test_longer_body_and_non_html_kept(feed_server: FeedServer) -> None:
    """A body longer than the article stays; a PDF link is reported, not read."""
    feed_server.routes["/story"] = Route(ARTICLE, HTML)
    feed_server.routes["/report.pdf"] = Route(b"%PDF-1.7 ...", "application/pdf")
    long_summary = "Full story as the feed carries it. " * 60
    entries = [_entry("a", feed_server.url("/story"), summary=long_summary),
               _entry("b", feed_server.url("/report.pdf"))]
    async with _fetcher() as fetcher:
        out, problems = await with_fulltext(entries, fetcher=fetcher,
                                            settings=FulltextSettings())
    assert out == entries
    assert problems == [f"{feed_server.url('/report.pdf')}: not an HTML page (application/pdf)"]


async def test_extraction_runs_in_a_process_pool(feed_server: FeedServer) -> None:
    """run_cpu may hand the extraction to another process: the call pickles."""
    feed_server.routes["/story"] = Route(ARTICLE, HTML)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:

        async def run_cpu(function: Any, *args: Any) -> Any:
            return await loop.run_in_executor(pool, function, *args)

        async with _fetcher() as fetcher:
            out, problems = await with_fulltext([_entry("a", feed_server.url("/story"))],
                                                fetcher=fetcher, settings=FulltextSettings(),
                                                run_cpu=run_cpu)
    assert problems == []
    assert out[0].content == "\n\n".join(PARAGRAPHS)


def test_extract_job_is_extract_article() -> None:
    """The positional job gives what extract_article gives."""
    assert extract_job(ARTICLE, "https://x.example/", HTML, 2_000) == extract_article(
        ARTICLE, "https://x.example/", content_type=HTML, max_chars=2_000)
