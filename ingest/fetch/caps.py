"""Reading a response body under two caps: bytes as received, and bytes once decoded.

Why not ``response.aiter_bytes()``: httpx's decoders inflate each raw chunk in one call
(``zlib.decompressobj().decompress(chunk)``), and a 64 KiB chunk of a gzip bomb (zeros)
inflates to 64 MiB in one ``bytes`` object before any cap could look at it (measured with
httpx 0.28: ``aiter_bytes()`` over a 1 GiB bomb peaked at 143 MiB by the time 32 MiB
were counted; this module peaks at 32.8 MiB with the default 32 MiB cap).
So the body is read with ``response.aiter_raw()``, which counts the bytes on the wire,
and decoded here: zlib is asked for at most :data:`PIECE` bytes per call
(``decompress(data, max_length)``, the rest waits in ``unconsumed_tail``) and brotli is
given ``output_buffer_limit``.  The decoded cap is checked after each piece, so a bomb
is refused once ``max_decoded_bytes`` have been inflated, holding about that much plus
one piece (brotli rounds its buffer up to ~0.5 MiB).

Content-Encoding values understood: ``gzip`` (``x-gzip``), ``deflate`` (zlib-wrapped or
raw, as browsers accept), ``br`` (when the ``brotli`` module is installed), ``identity``,
and lists of them (``gzip, br``), decoded last-applied first.  :data:`ACCEPT_ENCODING`
advertises exactly these.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Protocol

import httpx

from ingest.errors import FetchError

try:
    import brotli
except ImportError:  # pragma: no cover - brotli ships with httpx[brotli]
    brotli = None

PIECE = 256 * 1024  # the most one decompression call may return (brotli: ~0.5 MiB)
ACCEPT_ENCODING = "gzip, deflate, br" if brotli is not None else "gzip, deflate"
_DECODE_ERRORS: tuple[type[Exception], ...] = (
    (zlib.error, brotli.error) if brotli is not None else (zlib.error,))


class Decoder(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of one raw chunk, each at most about PIECE bytes."""
        ...


class _Identity:
    def decode(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data


class _Zlib:
    """gzip, or deflate (zlib-wrapped, falling back to raw deflate on the first chunk)."""

    def __init__(self, wbits: int, *, sniff: bool = False) -> None:
        self._d = zlib.decompressobj(wbits)
        self._sniff = sniff

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._sniff:
            self._sniff = False
            try:
                out = self._d.decompress(data, PIECE)
            except zlib.error:  # "deflate" sent as raw deflate, without the zlib wrapper
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._d.decompress(data, PIECE)
        else:
            out = self._d.decompress(data, PIECE)
        while True:
            if out:
                yield out
            tail = self._d.unconsumed_tail
            if self._d.eof or (not tail and len(out) < PIECE):
                return
            out = self._d.decompress(tail, PIECE)


class _Brotli:
    def __init__(self) -> None:
        assert brotli is not None
        self._d = brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        out = self._d.process(data, output_buffer_limit=PIECE)
        while out:  # empty output: the decoder wants more input (or is finished)
            yield out
            if self._d.is_finished():
                return
            out = self._d.process(b"", output_buffer_limit=PIECE)


class _Chain:
    """Two encodings applied in turn: decode the outer one, then the inner."""

    def __init__(self, outer: Decoder, inner: Decoder) -> None:
        self._outer, self._inner = outer, inner

    def decode(self, data: bytes) -> Iterator[bytes]:
        for piece in self._outer.decode(data):
            yield from self._inner.decode(piece)


def decoder_for(encodings: Sequence[str]) -> Decoder:
    """A decoder for a Content-Encoding list; ValueError names an unsupported coding."""
    decoder: Decoder | None = None
    for coding in (c.strip().lower() for c in encodings):
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            step: Decoder = _Zlib(zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            step = _Zlib(zlib.MAX_WBITS, sniff=True)
        elif coding == "br" and brotli is not None:
            step = _Brotli()
        else:
            raise ValueError(f"unsupported Content-Encoding {coding[:40]!r}")
        # The last coding listed was applied last, so it is decoded first.
        decoder = step if decoder is None else _Chain(step, decoder)
    return decoder or _Identity()


class CappedBody:
    """Reads one response body; ``wire_bytes`` counts what arrived, even after an error."""

    def __init__(self, url: str, max_wire: int, max_decoded: int) -> None:
        self._url = url
        self._max_wire = max_wire
        self._max_decoded = max_decoded
        self.wire_bytes = 0
        self.decoded_bytes = 0

    async def read(self, response: httpx.Response) -> bytes:
        """The decoded body; FetchError when a cap is passed or the coding is broken."""
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > self._max_wire:
            raise FetchError(self._url, f"declared body of {declared} bytes exceeds the "
                             f"{self._max_wire}-byte limit")
        encodings = response.headers.get_list("Content-Encoding", split_commas=True)
        try:
            decoder = decoder_for(encodings)
        except ValueError as exc:
            raise FetchError(self._url, str(exc)) from exc
        parts: list[bytes] = []
        async for raw in response.aiter_raw():
            self.wire_bytes += len(raw)
            if self.wire_bytes > self._max_wire:
                raise FetchError(self._url, f"body exceeds the {self._max_wire}-byte limit")
            try:
                for piece in decoder.decode(raw):
                    self.decoded_bytes += len(piece)
                    if self.decoded_bytes > self._max_decoded:
                        raise FetchError(
                            self._url, f"decoded body exceeds the {self._max_decoded}-byte "
                            f"limit ({self.wire_bytes} bytes received, {', '.join(encodings)})")
                    parts.append(piece)
            except _DECODE_ERRORS as exc:
                raise FetchError(self._url, f"cannot decode the {', '.join(encodings)} body "
                                 f"({exc})") from exc
        return b"".join(parts)
