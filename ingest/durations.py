"""Durations as analysts write them: ``90s``, ``15m``, ``6h``, ``2d``, ``1h30m``, or seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raise ``ValueError`` with an example when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 6h or 2d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return float(text)
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNITS[u] for n, u in parts)
    raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 15m, 6h or 2d")


Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({
    "anyOf": [{"type": "number", "minimum": 0},
              {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"}],
    "description": "A duration: 90s, 15m, 6h, 2d, 1h30m, or seconds as a number."})]
"""A pydantic field type: accepts ``15m`` style strings or seconds, holds seconds."""
