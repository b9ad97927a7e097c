"""Webhook signatures: ``X-Ingest-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The signed message is ``f"{t}.".encode() + body``.  Receivers recompute the HMAC with
the shared secret, compare in constant time and reject timestamps older than their
tolerance (we document 300 s), which defeats replays.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "X-Ingest-Signature"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str | Sequence[str], body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``: one ``v1=`` per secret, so
    while a secret is rotated, receivers holding the old or the new one both verify."""
    secrets = [secret] if isinstance(secret, str) else list(secret)
    message = f"{timestamp}.".encode() + body
    macs = [hmac.new(s.encode(), message, hashlib.sha256).hexdigest() for s in secrets]
    return f"t={timestamp}," + ",".join(f"v1={m}" for m in macs)


def verify(secret: str, header: str, body: bytes, now: float,
           tolerance_s: float = DEFAULT_TOLERANCE_S) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is fresh at ``now``."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, body, timestamp).split("v1=", 1)[1].split(",")[0]
    return any(v.isascii() and hmac.compare_digest(expected, v) for v in parts.get("v1", []))
