"""Worker processes for the CPU-bound stages: parsing and extraction, and NLP.

:class:`ProcessRunner` keeps two pools of spawned processes, so that feed parsing never
queues behind NLP batches:

* ``cpu``: parsing feed documents and extracting articles (light: no model), half as
  many processes as ``nlp.workers`` (at least one);
* ``nlp``: spaCy and the gazetteer, ``nlp.workers`` processes; each loads the model on
  its first batch.

A pool whose worker died (killed for memory, a crash in a C extension) is rebuilt and the
call tried once more; a second death on the same call is that input's fault and is raised
as its error (:class:`ParseError` for a document, :class:`NlpError` for a batch), so one
poisonous document costs one feed or one entry, never the service.  A parse that runs past
:data:`PARSE_TIMEOUT_S` has its pool's processes terminated and rebuilt.

The gazetteer reaches the NLP workers as a file per generation (a reload writes a new
one); each call names the generation and workers load a file once, so batches carry
texts only and each keeps the gazetteer it started with.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from ingest.errors import IngestError, NlpError, ParseError
from ingest.model import Analysis
from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.pipeline import Analyzer, NlpFeatures
from ingest.parse.normalize import ParsedFeed, parse_document

log = structlog.get_logger("ingest.workers")

T = TypeVar("T")
PARSE_TIMEOUT_S = 120.0  # a document taking longer is abandoned and its worker replaced
_KEPT_GENERATIONS = 4  # gazetteers a batch in flight may still be pinned to


class _Pool:
    """A process pool that is rebuilt when a worker dies or a call overruns."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size
        self._executor = self._new()
        # No more calls handed to the executor than it has workers, so a timeout measures
        # a call's running time, never its wait in a queue.
        self._slots = asyncio.Semaphore(size)

    def _new(self) -> ProcessPoolExecutor:
        # spawn, not fork: the service's process holds threads and open connections.
        return ProcessPoolExecutor(max_workers=self.size,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_follow_parent, initargs=(os.getpid(),))

    async def call(self, timeout: float | None, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` in a worker; rebuild and retry once if the pool broke."""
        for attempt in (1, 2):
            executor = self._executor
            try:
                async with self._slots:
                    executor = self._executor
                    future = asyncio.get_running_loop().run_in_executor(executor, func, *args)
                    return await asyncio.wait_for(future, timeout)
            except BrokenProcessPool:
                self._replace(executor, "a worker process died")
                if attempt == 2:
                    raise
            except TimeoutError:
                self._replace(executor, f"a call ran past {timeout:g}s")
                raise
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if executor is self._executor or (task is not None and task.cancelling()):
                    raise  # really cancelled
                # Queued in a pool that was replaced meanwhile: run it on the new one.
                if attempt == 2:
                    raise BrokenProcessPool("the pool was replaced twice") from None
        raise AssertionError("unreachable")

    def _replace(self, broken: ProcessPoolExecutor, why: str) -> None:
        if broken is not self._executor:  # another call has rebuilt it already
            return
        log.warning("workers.restarted", pool=self.name, reason=why)
        self._executor = self._new()
        _terminate(broken)

    def close(self) -> None:
        _terminate(self._executor)


def _terminate(executor: ProcessPoolExecutor) -> None:
    """Stop a pool without waiting for its work (a hung parse must not hold the service)."""
    processes = list(getattr(executor, "_processes", {}).values())  # no public API in 3.11
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()


class ProcessRunner:
    """Parsing, extraction and NLP in worker processes (see the module docstring)."""

    def __init__(self, workers: int, model: str, gaz: Gazetteer, features: NlpFeatures,
                 batch_size: int) -> None:
        self._model, self._batch_size = model, batch_size
        # NLP is the heavy stage (and each of its workers holds the model); parsing needs
        # about half as many processes to keep up with the event loop's fetching.
        self._cpu = _Pool("cpu", max(1, workers // 2))
        self._nlp = _Pool("nlp", workers)
        self._dir = tempfile.TemporaryDirectory(prefix="ingest-gaz-")
        self._generations = itertools.count(1)
        self._kept: list[tuple[Gazetteer, int, str]] = []
        self.gaz, self.features = gaz, features
        self._remember(gaz)

    def _remember(self, gaz: Gazetteer) -> tuple[int, str]:
        """The generation and file of a gazetteer, written once."""
        for kept, generation, path in self._kept:
            if kept is gaz:
                return generation, path
        generation = next(self._generations)
        path = str(Path(self._dir.name) / f"gaz-{generation}.pickle")
        Path(path).write_bytes(pickle.dumps(gaz, protocol=pickle.HIGHEST_PROTOCOL))
        self._kept = [*self._kept[-(_KEPT_GENERATIONS - 1):], (gaz, generation, path)]
        return generation, path

    def configure(self, gaz: Gazetteer, features: NlpFeatures) -> None:
        self._remember(gaz)
        self.gaz, self.features = gaz, features

    async def parse(self, body: bytes, *, feed_id: str, url: str, now: datetime,
                    content_type: str | None) -> ParsedFeed:
        try:
            return await self._cpu.call(PARSE_TIMEOUT_S, _parse, body, feed_id, url, now,
                                        content_type)
        except BrokenProcessPool as exc:
            raise ParseError(url, "the parser's process died on this document twice") from exc
        except TimeoutError as exc:
            raise ParseError(url, f"parsing took longer than {PARSE_TIMEOUT_S:g}s") from exc

    async def analyze(self, texts: Sequence[str], dates: Sequence[date],
                      gaz: Gazetteer | None = None) -> list[Analysis]:
        if not texts:
            return []
        generation, path = self._remember(gaz if gaz is not None else self.gaz)
        try:
            return await self._nlp.call(None, _analyze, self._model, self.features,
                                        self._batch_size, generation, path, list(texts),
                                        list(dates))
        except BrokenProcessPool as exc:
            raise NlpError(f"the NLP process died twice on a batch of {len(texts)}") from exc

    async def run_cpu(self, func: Callable[..., T], *args: Any) -> T:
        try:
            return await self._cpu.call(PARSE_TIMEOUT_S, _run, func, *args)
        except BrokenProcessPool as exc:
            raise RuntimeError("the worker process died twice on this input") from exc

    async def start(self) -> None:
        """Load the model in a worker now, so a missing model stops the start, not a batch."""
        await self.analyze(["Warm-up."], [date(2000, 1, 1)])

    def close(self) -> None:
        self._cpu.close()
        self._nlp.close()
        self._dir.cleanup()


# -- in the worker processes: errors leave as picklable ingest errors ---------------------

_worker: dict[str, Any] = {}
PARENT_CHECK_S = 1.0


def _follow_parent(parent: int) -> None:
    """End this worker when the service's process is gone, even if it was SIGKILLed
    (a pool's workers otherwise wait on their queue forever, holding the model's memory)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="ingest-parent-watch", daemon=True).start()


def _parse(body: bytes, feed_id: str, url: str, now: datetime,
           content_type: str | None) -> ParsedFeed:
    try:
        return parse_document(body, feed_id=feed_id, url=url, now=now,
                              content_type=content_type)
    except IngestError:
        raise
    except Exception as exc:  # e.g. an lxml error, which does not pickle
        raise ParseError(url, f"internal error {type(exc).__name__}: {exc}") from None


def _run(func: Callable[..., T], *args: Any) -> T:
    try:
        return func(*args)
    except IngestError:
        raise
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def _analyze(model: str, features: NlpFeatures, batch_size: int, generation: int, path: str,
             texts: list[str], dates: list[date]) -> list[Analysis]:
    from ingest.nlp.pipeline import load_model

    try:
        if _worker.get("model") != model:
            _worker.update(model=model, nlp=load_model(model, features))
        if _worker.get("generation") != generation:
            _worker.update(generation=generation, gaz=pickle.loads(Path(path).read_bytes()))
        return Analyzer(_worker["nlp"], _worker["gaz"], batch_size, features).analyze(texts,
                                                                                      dates)
    except IngestError:
        raise
    except Exception as exc:
        raise NlpError(f"NLP failed: {type(exc).__name__}: {exc}") from None
