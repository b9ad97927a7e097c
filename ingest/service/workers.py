"""CPU-bound work off the event loop: parsing feed documents, extraction and NLP.

Two runners with one interface (``parse``, ``analyze``, ``run_cpu``, ``configure``,
``close``):

* :class:`~ingest.service.pool.ProcessRunner` (``nlp.workers`` > 0; the default is one
  per core): worker processes, so parsing and NLP use every core and the event loop
  only fetches and stores (see service/pool.py).
* :class:`ThreadRunner` (``nlp.workers: 0``): one thread in the service's process,
  with an analyzer loaded there (small machines; tests share one loaded model).

Both take and return picklable values only: documents' bytes, texts and dates in;
:class:`~ingest.parse.normalize.ParsedFeed` and :class:`~ingest.model.Analysis` out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any, Protocol, TypeVar

from ingest.model import Analysis
from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.pipeline import Analyzer, NlpFeatures
from ingest.parse.normalize import ParsedFeed, parse_document

T = TypeVar("T")

# Documents larger than this are parsed off the loop by the thread runner.
OFFLOOP_PARSE_BYTES = 64 * 1024


class Runner(Protocol):
    @property
    def gaz(self) -> Gazetteer: ...

    @property
    def features(self) -> NlpFeatures: ...

    def configure(self, gaz: Gazetteer, features: NlpFeatures) -> None: ...

    async def parse(self, body: bytes, *, feed_id: str, url: str, now: datetime,
                    content_type: str | None) -> ParsedFeed: ...

    async def analyze(self, texts: Sequence[str], dates: Sequence[date],
                      gaz: Gazetteer | None = None) -> list[Analysis]: ...

    async def run_cpu(self, func: Callable[..., T], *args: Any) -> T:
        """Run a picklable module-level function off the loop (e.g. article extraction)."""
        ...

    def close(self) -> None: ...


def default_workers() -> int:
    """One worker process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ThreadRunner:
    """Parsing (of large documents) and NLP on threads of this process."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self._nlp = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-nlp")

    @property
    def gaz(self) -> Gazetteer:
        return self.analyzer.gaz

    @property
    def features(self) -> NlpFeatures:
        return self.analyzer.features

    def configure(self, gaz: Gazetteer, features: NlpFeatures) -> None:
        self.analyzer.configure(features)
        self.analyzer.gaz = gaz

    async def parse(self, body: bytes, *, feed_id: str, url: str, now: datetime,
                    content_type: str | None) -> ParsedFeed:
        if len(body) <= OFFLOOP_PARSE_BYTES:
            return parse_document(body, feed_id=feed_id, url=url, now=now,
                                  content_type=content_type)
        return await asyncio.to_thread(parse_document, body, feed_id=feed_id, url=url, now=now,
                                       content_type=content_type)

    async def analyze(self, texts: Sequence[str], dates: Sequence[date],
                      gaz: Gazetteer | None = None) -> list[Analysis]:
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._nlp, self.analyzer.analyze, list(texts),
                                          list(dates), gaz)

    async def run_cpu(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(func, *args)

    def close(self) -> None:
        self._nlp.shutdown(wait=True, cancel_futures=True)
