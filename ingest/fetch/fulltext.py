"""Full text for teaser-only feeds (``fulltext: true``): fetch each item's page, keep its article.

Pages are fetched through the shared fetcher, so its per-host politeness and its size
and time caps apply to them as to feeds.  Extraction (:mod:`ingest.fetch.article`) is CPU
work and runs off the event loop, through ``run_cpu``.  A page that cannot be fetched
or holds no article leaves its entry's teaser as it was and adds one line to the
problems returned; it never fails the other pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import structlog

from ingest.config import FulltextSettings
from ingest.errors import FetchError
from ingest.fetch.article import extract_job, is_html
from ingest.fetch.client import Fetcher
from ingest.model import Entry

log = structlog.get_logger("ingest.fulltext")

ACCEPT = "text/html,application/xhtml+xml"
# Article pages in flight for one call (the fetcher also limits requests per host).
FANOUT = 8

# ``await run_cpu(function, *args)``: positional arguments only, all picklable, so
# ``loop.run_in_executor(process_pool, ...)`` can stand in for the default thread.
RunCpu = Callable[..., Awaitable[Any]]


async def with_fulltext(entries: Sequence[Entry], *, fetcher: Fetcher,
                        settings: FulltextSettings, run_cpu: RunCpu | None = None,
                        fanout: int = FANOUT,
                        deadline_s: float | None = None) -> tuple[list[Entry], list[str]]:
    """``entries`` with ``content`` set to their linked article's text, and the problems met.

    Only entries with an http(s) link and a body shorter than ``settings.max_chars``
    are fetched, the first ``settings.max_per_poll`` distinct links in the order given.
    An entry takes the article's text when it is longer than its body; nothing else of
    it changes (never its key).  Each problem is one short line, e.g.
    ``"https://…/story: HTTP 404 Not Found"``.  Never raises for a page's problems.

    ``deadline_s`` bounds the whole call (the service passes twice the polling timeout),
    so that one feed's pages cannot stall its poll: articles not done by then are
    abandoned and keep their teaser (one problem line says how many); those done keep
    their text.
    """
    run = run_cpu or asyncio.to_thread
    wanted: dict[str, list[int]] = {}  # link -> indexes of the entries carrying it
    skipped = 0
    for index, entry in enumerate(entries):
        if not _fetchable(entry.link) or len(entry.body) >= settings.max_chars:
            continue
        if entry.link in wanted:
            wanted[entry.link].append(index)
        elif len(wanted) < settings.max_per_poll:
            wanted[entry.link] = [index]
        else:
            skipped += 1
    gate = asyncio.Semaphore(fanout)

    async def gated(link: str) -> tuple[str | None, str | None]:
        async with gate:
            return await _article(link, fetcher, settings.max_chars, run)

    tasks = {link: asyncio.create_task(gated(link)) for link in wanted}
    await _wait(list(tasks.values()), deadline_s)
    out = list(entries)
    problems: list[str] = []
    late = 0
    for link, task in tasks.items():
        if task.cancelled():
            late += 1
            continue
        text, problem = task.result()
        if problem:
            problems.append(problem)
        for index in wanted[link]:
            if text and len(text) > len(out[index].body):
                out[index] = replace(out[index], content=text)
    if late:
        problems.append(f"full text stopped after {deadline_s:g}s: {late} article(s) "
                        "keep their teaser")
    if skipped:
        problems.append(f"{skipped} more article(s) not fetched: fulltext.max_per_poll is "
                        f"{settings.max_per_poll}")
    return out, problems


async def _wait(tasks: list[asyncio.Task[Any]], timeout: float | None) -> None:
    """Wait for ``tasks`` up to ``timeout`` (None: no limit), then cancel those not done
    (also when the caller is cancelled) and wait for them to unwind, so that their
    requests give back their host slots before this returns."""
    try:
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
    finally:
        unfinished = [t for t in tasks if not t.done()]
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)


async def _article(link: str, fetcher: Fetcher, max_chars: int,
                   run: RunCpu) -> tuple[str | None, str | None]:
    """(article text, None), or (None, the problem) for one link.  Never raises."""
    try:
        page = await fetcher.fetch(link, accept=ACCEPT)
    except FetchError as exc:  # its message already starts with the link
        return None, str(exc)
    except Exception as exc:  # a bug met on one page is that page's problem only
        log.exception("fulltext.fetch_crashed", link=link)
        return None, f"{link}: internal error {type(exc).__name__}"
    if not is_html(page.content_type):
        kind = (page.content_type or "").split(";", 1)[0].strip()
        return None, f"{link}: not an HTML page ({kind})"
    try:
        text = await run(extract_job, page.body, page.url, page.content_type, max_chars)
    except Exception as exc:
        log.exception("fulltext.extract_crashed", link=link)
        return None, f"{link}: extraction failed ({type(exc).__name__})"
    if text is None:
        return None, f"{link}: no article text found"
    return text, None


def _fetchable(link: str) -> bool:
    parts = urlsplit(link)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
