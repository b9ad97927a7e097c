"""Near-duplicate fingerprints of entry texts (pure): MinHash signatures and LSH bands.

Two outlets' copies of one wire story share most of their word 3-grams even when
headlines, bylines and boilerplate differ.  Each entry gets a MinHash signature of
its shingles (datasketch); the signature is cut into LSH bands whose hashes are
stored, so candidates are found with an indexed lookup in the database (across
restarts and instances) and confirmed by comparing signatures.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
SEED = 20261125  # fixed: signatures must stay comparable across restarts and releases
SHINGLE_WORDS = 3
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Fingerprint:
    """An entry's signature and the LSH band keys it is filed under."""

    signature: bytes  # NUM_PERM little-endian uint32 values
    bands: tuple[int, ...]  # one signed 63-bit key per band (fits a BIGINT column)


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[bytes]:
    """Word ``size``-grams of the lower-cased text (the words themselves when it is shorter)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < size:
        return {w.encode() for w in words}
    return {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)}


@lru_cache(maxsize=8)
def band_layout(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's LSH picks for a Jaccard ``threshold``."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def fingerprint(text: str, threshold: float) -> Fingerprint:
    """The MinHash signature of ``text`` and its band keys for ``threshold``."""
    mh = MinHash(num_perm=NUM_PERM, seed=SEED)
    grams = shingles(text)
    if grams:
        mh.update_batch(list(grams))
    values = np.asarray(mh.hashvalues, dtype=np.uint32)
    b, r = band_layout(threshold)
    keys = []
    for band in range(b):
        chunk = values[band * r:(band + 1) * r].tobytes()
        digest = hashlib.blake2b(bytes([band]) + chunk, digest_size=8).digest()
        keys.append(struct.unpack("<q", digest)[0])
    return Fingerprint(values.astype("<u4").tobytes(), tuple(keys))


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures (the share of equal values)."""
    if not a or not b or len(a) != len(b):
        return 0.0
    va, vb = np.frombuffer(a, dtype="<u4"), np.frombuffer(b, dtype="<u4")
    return float(np.count_nonzero(va == vb)) / len(va)
