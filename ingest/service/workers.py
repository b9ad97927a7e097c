"""CPU-bound work off the event loop: parsing feed documents and NLP.

Two runners with one interface (``parse``, ``analyze``, ``configure``, ``close``):

* :class:`ProcessRunner` (``nlp.workers`` > 0; the default is one per core): a pool
  of worker processes, so parsing and NLP use every core and the event loop only
  fetches and stores.  Each worker loads the spaCy model on its first NLP batch; the
  gazetteer travels pickled once per reload (a generation number) and is cached in
  each worker, so a batch keeps the gazetteer it was started with.
* :class:`ThreadRunner` (``nlp.workers: 0``): one thread in the service's process,
  with an analyzer loaded there (small machines; tests share one loaded model).

Both take and return picklable values only: documents' bytes, texts and dates in;
:class:`~ingest.parse.normalize.ParsedFeed` and :class:`~ingest.model.Analysis` out.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
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


class ProcessRunner:
    """Parsing and NLP in a pool of worker processes."""

    def __init__(self, workers: int, model: str, gaz: Gazetteer, features: NlpFeatures,
                 batch_size: int) -> None:
        self._model, self._batch_size = model, batch_size
        # spawn, not fork: the service's process holds threads and open connections.
        self._pool: Executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        self.workers = workers
        self._generation = 0
        self.gaz, self.features = gaz, features
        self._blob = pickle.dumps(gaz, protocol=pickle.HIGHEST_PROTOCOL)

    def configure(self, gaz: Gazetteer, features: NlpFeatures) -> None:
        if gaz is not self.gaz:
            self._generation += 1
            self._blob = pickle.dumps(gaz, protocol=pickle.HIGHEST_PROTOCOL)
        self.gaz, self.features = gaz, features

    async def parse(self, body: bytes, *, feed_id: str, url: str, now: datetime,
                    content_type: str | None) -> ParsedFeed:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _parse, body, feed_id, url, now,
                                          content_type)

    async def analyze(self, texts: Sequence[str], dates: Sequence[date],
                      gaz: Gazetteer | None = None) -> list[Analysis]:
        if not texts:
            return []
        if gaz is not None and gaz is not self.gaz:  # pinned to an older generation
            generation, blob = -id(gaz), pickle.dumps(gaz, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            generation, blob = self._generation, self._blob
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, _analyze, self._model, self.features, self._batch_size, generation,
            blob, list(texts), list(dates))

    async def run_cpu(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    async def start(self) -> None:
        """Load the model in a worker now, so a missing model stops the start, not a batch."""
        await self.analyze(["Warm-up."], [date(2000, 1, 1)])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- in the worker processes ------------------------------------------------------------

_worker: dict[str, Any] = {}


def _parse(body: bytes, feed_id: str, url: str, now: datetime,
           content_type: str | None) -> ParsedFeed:
    return parse_document(body, feed_id=feed_id, url=url, now=now, content_type=content_type)


def _analyze(model: str, features: NlpFeatures, batch_size: int, generation: int, blob: bytes,
             texts: list[str], dates: list[date]) -> list[Analysis]:
    from ingest.nlp.pipeline import load_model

    if _worker.get("model") != model:
        _worker.update(model=model, nlp=load_model(model, features))
    if _worker.get("generation") != generation:
        _worker.update(generation=generation, gaz=pickle.loads(blob))
    analyzer = Analyzer(_worker["nlp"], _worker["gaz"], batch_size, features)
    return analyzer.analyze(texts, dates)
