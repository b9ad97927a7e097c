"""Following redirects by hand, to tell a feed that moved (301/308) from a detour.

httpx could follow redirects itself, but then the fetcher could not tell a permanent
chain from one with a temporary hop, nor apply per-host politeness to every hop.
:class:`Redirects` records one fetch's chain: each hop is checked (a Location, an
http(s) target, no loop, at most ``max_redirects``), and it remembers whether every
hop was permanent and whether the chain has left the first host (per-feed headers,
such as Authorization, are then no longer sent).
"""

from __future__ import annotations

import httpx

from ingest.errors import FetchError
from ingest.fetch.hosts import same_origin

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PERMANENT_STATUSES = frozenset({301, 308})
_SHOWN = 200  # characters of a Location shown in a message


def _show(location: str) -> str:
    return location if len(location) <= _SHOWN else location[:_SHOWN] + "…"


class Redirects:
    """The redirect chain of one fetch, starting at ``start`` (the URL asked for)."""

    def __init__(self, url: str, start: httpx.URL, max_redirects: int) -> None:
        self._url = url  # as the caller wrote it: errors are raised for it
        self._max = max_redirects
        self.chain = [start]
        self.permanent = True  # every hop so far was 301 or 308
        self.left_origin = False  # a hop left the origin (see hosts.same_origin)

    @property
    def current(self) -> httpx.URL:
        return self.chain[-1]

    @property
    def hops(self) -> int:
        return len(self.chain) - 1

    @property
    def moved_to(self) -> str | None:
        """Where permanent redirects alone lead; None after any temporary hop, or none."""
        return str(self.current) if self.hops and self.permanent else None

    def follow(self, status: int, location: str | None) -> httpx.URL:
        """The next URL to request after a ``status`` redirect to ``location``."""
        here = self.current
        if not location or not location.strip():
            raise FetchError(self._url, f"HTTP {status} redirect without a Location header",
                             status=status)
        try:
            target = here.join(location.strip()).copy_with(fragment=None)
        except httpx.InvalidURL as exc:
            raise FetchError(self._url, f"HTTP {status} redirect to an invalid Location "
                             f"{_show(location)!r}", status=status) from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise FetchError(self._url, f"HTTP {status} redirect to an unsupported URL "
                             f"{_show(location)!r}", status=status)
        hops = self.hops + 1
        if target in self.chain:
            raise FetchError(self._url, f"redirect loop: after {hops} redirects, Location "
                             f"{_show(location)!r} leads back to a URL already visited")
        if hops > self._max:
            raise FetchError(self._url, f"too many redirects: {hops} (the limit is "
                             f"{self._max}); last Location {_show(location)!r}")
        if status not in PERMANENT_STATUSES:
            self.permanent = False
        if not same_origin(self.chain[0], target):
            self.left_origin = True
        self.chain.append(target)
        return target
