"""Grouping entries into stories (pure): one story per event report across outlets.

An entry joins the story of an earlier entry when both link to the same article
(canonical URL, tracking parameters stripped) or their texts are near-duplicates
(estimated Jaccard similarity of word 3-grams at least ``similarity``).  Otherwise
it starts a story of its own, named by its entry id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.stories.minhash import similarity

# Too little text to judge similarity by: such entries join stories by link only.
MIN_SIGNATURE_WORDS = 8


@dataclass(frozen=True)
class StoryInput:
    """An entry waiting for its story."""

    entry_id: int
    link: str  # canonical URL, or ""
    signature: bytes
    bands: tuple[int, ...]
    words: int  # how many words the fingerprinted text has


@dataclass(frozen=True)
class StoryCandidate:
    """An earlier entry that may report the same story."""

    entry_id: int
    story_id: int
    link: str
    signature: bytes
    bands: tuple[int, ...] = ()


def assign_stories(items: Sequence[StoryInput], candidates: Sequence[StoryCandidate],
                   threshold: float) -> dict[int, int]:
    """The story id of each item; items are taken in order and can join each other."""
    by_band: dict[int, list[StoryCandidate]] = {}
    for cand in candidates:
        for key in cand.bands:
            by_band.setdefault(key, []).append(cand)
    by_link: dict[str, int] = {}
    for c in sorted(candidates, key=lambda c: c.story_id):
        if c.link:
            by_link.setdefault(c.link, c.story_id)
    out: dict[int, int] = {}
    for item in items:
        story = by_link.get(item.link) if item.link else None
        if story is None and item.words >= MIN_SIGNATURE_WORDS:
            best, best_score = None, threshold
            near = {c.entry_id: c for key in item.bands for c in by_band.get(key, ())}
            for cand in near.values():
                score = similarity(item.signature, cand.signature)
                if score >= best_score and (best is None or score > best_score
                                            or cand.story_id < best):
                    best, best_score = cand.story_id, score
            story = best
        story = story if story is not None else item.entry_id
        out[item.entry_id] = story
        if item.link:
            by_link.setdefault(item.link, story)
        if item.words >= MIN_SIGNATURE_WORDS:
            filed = StoryCandidate(item.entry_id, story, item.link, item.signature, item.bands)
            for key in item.bands:
                by_band.setdefault(key, []).append(filed)
    return out
