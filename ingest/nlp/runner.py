"""Running the CPU-bound analyzer off the event loop.

Today: one dedicated worker thread (spaCy holds the GIL for part of its work, but
the loop keeps serving fetches and deliveries).  The interface takes and returns
picklable values only, so a process pool can replace the thread without callers
changing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from ingest.model import Analysis
from ingest.nlp.gazetteer import Gazetteer
from ingest.nlp.pipeline import Analyzer


class NlpRunner:
    """``await runner.analyze(texts, dates)`` runs the analyzer in its worker."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-nlp")

    async def analyze(self, texts: Sequence[str], dates: Sequence[date],
                      gaz: Gazetteer | None = None) -> list[Analysis]:
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.analyzer.analyze, list(texts),
                                          list(dates), gaz)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
