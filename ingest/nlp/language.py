"""The language of an entry (pure): detected from its text, else as the feed declares it.

Detection uses py3langid (a small, fast model shipped in the wheel: nothing is
downloaded).  Short texts are unreliable, so below ``MIN_CHARS`` the answer is
``None`` (unknown), which every rule accepts.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import py3langid

MIN_CHARS = 40
MIN_CONFIDENCE = 0.5
_LOCK = threading.Lock()  # the identifier is not documented as thread-safe


@lru_cache(maxsize=1)
def _identifier() -> py3langid.langid.LanguageIdentifier:
    return py3langid.langid.LanguageIdentifier.from_model_file(
        py3langid.langid.MODEL_FILE, norm_probs=True)


def declared(tag: str | None) -> str | None:
    """``en-GB`` -> ``en``; None or junk -> None."""
    if not tag:
        return None
    code = tag.strip().lower().replace("_", "-").split("-")[0]
    return code if len(code) == 2 and code.isalpha() else None


def detect(text: str) -> str | None:
    """The ISO 639-1 code of ``text``'s language, or None when unsure."""
    sample = " ".join(text.split())[:2000]
    if len(sample) < MIN_CHARS:
        return None
    with _LOCK:
        code, prob = _identifier().classify(sample)
    return str(code) if prob >= MIN_CONFIDENCE else None
