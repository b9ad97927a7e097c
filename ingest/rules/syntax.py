"""Who does what to whom, read off spaCy's dependency parse (pure).

Used by the ``action`` leaf: given the index of an action word ("deploy",
"deployment", "stationed"), find the heads of its object and subject phrases and
the words that directly modify those heads.
"""

from __future__ import annotations

from collections.abc import Sequence

from ingest.model import Token

OBJECT_DEPS = frozenset({"dobj", "obj", "nsubjpass", "attr", "oprd"})
SUBJECT_DEPS = frozenset({"nsubj", "csubj"})
# Words that say what kind of thing a head noun is: "Patriot batteries", "cruise missiles".
MODIFIER_DEPS = frozenset({"compound", "amod", "nmod", "appos", "npadvmod"})
NOUN_POS = frozenset({"NOUN", "PROPN", "NUM", "PRON", "X"})
# Title-case headlines make the small model tag verbs as PROPN ("U.S. to Begin Deploying
# Missiles"): a PROPN may still be the action's verb.
COMMON_NOUN_POS = frozenset({"NOUN", "NUM", "PRON", "X"})


def children(tokens: Sequence[Token]) -> list[list[int]]:
    """For each token, the indexes of the tokens whose head it is."""
    kids: list[list[int]] = [[] for _ in tokens]
    for i, tok in enumerate(tokens):
        if 0 <= tok.head < len(tokens) and tok.head != i:
            kids[tok.head].append(i)
    return kids


def _with_conjuncts(heads: list[int], kids: list[list[int]], tokens: Sequence[Token]) -> list[int]:
    out, todo = [], list(heads)
    while todo:
        i = todo.pop()
        if i in out:
            continue
        out.append(i)
        todo.extend(k for k in kids[i] if tokens[k].dep == "conj")
    return out


def object_heads(tokens: Sequence[Token], kids: list[list[int]], i: int) -> list[int]:
    """Heads of what the action at ``i`` is done to."""
    tok = tokens[i]
    heads = [k for k in kids[i] if tokens[k].dep in OBJECT_DEPS]
    if tok.pos in NOUN_POS:  # "deployment of missiles", "missile deployment"
        for k in kids[i]:
            if tokens[k].dep == "prep" and tokens[k].text.lower() == "of":
                heads.extend(p for p in kids[k] if tokens[p].dep == "pobj")
            elif tokens[k].dep in ("compound", "nmod"):
                heads.append(k)
    if tok.dep == "acl" and 0 <= tok.head < len(tokens):  # "missiles deployed in Germany"
        heads.append(tok.head)
    return _with_of_complements(_with_conjuncts(heads, kids, tokens), kids, tokens)


def _with_of_complements(heads: list[int], kids: list[list[int]],
                         tokens: Sequence[Token]) -> list[int]:
    """"a pair of Patriot batteries", "elements of the THAAD system": the "of" noun too."""
    out = list(heads)
    for h in heads:
        for k in kids[h]:
            if tokens[k].dep == "prep" and tokens[k].text.lower() == "of":
                out.extend(p for p in kids[k] if tokens[p].dep == "pobj" and p not in out)
    return out


def subject_heads(tokens: Sequence[Token], kids: list[list[int]], i: int) -> list[int]:
    """Heads of who or what performs the action at ``i``."""
    return _with_conjuncts([k for k in kids[i] if tokens[k].dep in SUBJECT_DEPS], kids, tokens)


def head_words(kids: list[list[int]], tokens: Sequence[Token], head: int) -> list[int]:
    """The head and the words directly modifying it: where the argument's kind is said."""
    return [head, *(k for k in kids[head] if tokens[k].dep in MODIFIER_DEPS)]


def subtree_span(kids: list[list[int]], tokens: Sequence[Token], head: int) -> tuple[int, int]:
    """Character span of the phrase headed by ``head``."""
    start, end = tokens[head].start, tokens[head].end
    todo = list(kids[head])
    while todo:
        k = todo.pop()
        start, end = min(start, tokens[k].start), max(end, tokens[k].end)
        todo.extend(kids[k])
    return start, end


# Words that deny or rule out what they govern: "denied plans to deploy", "ruled out sending".
DENIAL_LEMMAS = frozenset({"deny", "reject", "dismiss", "refute", "rebuff", "disavow",
                           "abandon", "scrap", "cancel", "halt", "suspend", "shelve", "drop"})
NEGATORS = frozenset({"not", "n't", "never", "no", "without", "nor", "neither"})
# Links through which a governing word's negation or denial reaches the action word.
_GOVERNED_BY = frozenset({"xcomp", "ccomp", "acl", "relcl", "dobj", "pobj", "pcomp", "prep",
                          "advcl", "nsubjpass", "nsubj", "attr"})


def is_negated(tokens: Sequence[Token], kids: list[list[int]], i: int, depth: int = 4) -> bool:
    """Whether the action at ``i`` is negated or denied ("did not deploy", "no plans to
    deploy", "denied sending troops", "ruled out a deployment", "without deploying")."""
    j = i
    for _ in range(depth + 1):
        tok = tokens[j]
        if any(tokens[k].dep in ("neg", "det", "advmod", "preconj")
               and tokens[k].text.lower() in NEGATORS for k in kids[j]):
            return True
        if j != i and (tok.lemma in DENIAL_LEMMAS or tok.text.lower() in ("without",)
                       or (tok.lemma == "rule" and any(tokens[k].text.lower() == "out"
                                                       for k in kids[j]))):
            return True
        if tok.dep not in _GOVERNED_BY or not 0 <= tok.head < len(tokens) or tok.head == j:
            return False
        j = tok.head
    return False
