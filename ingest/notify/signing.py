"""Webhook signatures: ``X-Ingest-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``.

The signed message is ``f"{t}.".encode() + body``.  Receivers recompute the HMAC with
the shared secret, compare in constant time and reject timestamps older than their
tolerance (we document 300 s), which defeats replays.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Ingest-Signature"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


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
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return any(v.isascii() and hmac.compare_digest(expected, v) for v in parts.get("v1", []))
