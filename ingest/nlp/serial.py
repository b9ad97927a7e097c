"""An :class:`~ingest.model.Analysis` as compact bytes, so backtests need no NLP (pure).

JSON of parallel arrays, zlib-compressed: about a quarter of the pickled size.  The
format carries a version; an unknown version reads as ``None`` (analyse again).
"""

from __future__ import annotations

import json
import zlib

from ingest.model import Analysis, Mention, Token

VERSION = 1


def dump_analysis(a: Analysis) -> bytes:
    data = {
        "v": VERSION,
        "text": a.text,
        "sentences": [list(s) for s in a.sentences],
        "tokens": [[t.start, len(t.text), t.lemma if t.lemma != t.text.lower() else None,
                    t.sent, t.head, t.dep, t.pos] for t in a.tokens],
        "mentions": [[m.text, m.start, m.end, m.label, m.sent, m.name, m.id, m.country,
                      list(m.roles), m.source] for m in a.mentions],
    }
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return zlib.compress(raw, 6)


def load_analysis(blob: bytes | None) -> Analysis | None:
    """The analysis stored in ``blob``, or None when absent, damaged or of another version."""
    if not blob:
        return None
    try:
        data = json.loads(zlib.decompress(blob))
    except (zlib.error, ValueError):
        return None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        return None
    try:
        text = data["text"]
        tokens = []
        for start, length, lemma, sent, head, dep, pos in data["tokens"]:
            word = text[start:start + length]
            tokens.append(Token(word, lemma if lemma is not None else word.lower(), start, sent,
                                head, dep, pos))
        mentions = tuple(Mention(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], tuple(m[8]),
                                 m[9]) for m in data["mentions"])
        sentences = tuple((s, e) for s, e in data["sentences"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return Analysis(text, tuple(tokens), sentences, mentions)
