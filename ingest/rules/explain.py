"""Why a rule fired or did not (pure): its ``when`` tree evaluated node by node.

For a sentence- or paragraph-scoped rule the tree is shown on the unit where it
held, or, when it held nowhere, on the unit that came closest (most leaves true).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ingest.model import Analysis
from ingest.rules.compile import ActionLeaf, Branch, CompiledRule, Node, Scoped
from ingest.rules.match import View, evaluate, split, whole


@dataclass(frozen=True)
class Explained:
    """One node of the tree: whether it held on the unit, and the text it found."""

    label: str
    path: str
    ok: bool
    found: tuple[str, ...] = ()
    children: tuple[Explained, ...] = ()


@dataclass(frozen=True)
class Explanation:
    rule_id: str
    fired: bool
    unit: str  # the sentence/paragraph/document text the tree was evaluated on
    tree: Explained
    reason: str = ""  # why the rule was not evaluated at all (disabled, language)


def explain_node(node: Node, view: View) -> Explained:
    hits = evaluate(node, view)
    found = tuple(dict.fromkeys(h.text for h in hits or () if h.text))
    if isinstance(node, Branch):
        label = {"all": "all of", "any": "any of", "not": "none of"}[node.op]
        return Explained(label, node.path, hits is not None, (),
                         tuple(explain_node(c, view) for c in node.children))
    if isinstance(node, Scoped):
        units = split(view, node.scope)
        best = next((u for u in units if evaluate(node.child, u) is not None),
                    max(units, key=lambda u: _score(node.child, u)))
        return Explained(f"in one {node.scope}", node.path, hits is not None, (),
                         (explain_node(node.child, best),))
    children: tuple[Explained, ...] = ()
    if isinstance(node, ActionLeaf):
        # Each argument judged with the action: does the action hold with this one alone?
        children = tuple(
            Explained(f"{role}: {_describe(arg)}", getattr(arg, "path", ""),
                      evaluate(replace(node, object=node.object if role == "object" else None,
                                       subject=node.subject if role == "subject" else None),
                               view) is not None)
            for role, arg in (("object", node.object), ("subject", node.subject))
            if arg is not None)
    return Explained(node.describe, node.path, hits is not None, found, children)


def _describe(node: Node) -> str:
    if isinstance(node, Branch):
        inner = "; ".join(_describe(c) for c in node.children)
        return {"all": "all of", "any": "any of", "not": "none of"}[node.op] + f" ({inner})"
    if isinstance(node, Scoped):
        return f"in one {node.scope}: {_describe(node.child)}"
    return node.describe


def _score(node: Node, view: View) -> int:
    """How many leaves hold on ``view``: how close the unit came to satisfying the tree."""
    if isinstance(node, Branch):
        if node.op == "not":  # a veto that holds brings the unit no closer
            return int(evaluate(node, view) is not None)
        return sum(_score(c, view) for c in node.children)
    if isinstance(node, Scoped):
        return _score(node.child, view)
    return int(evaluate(node, view) is not None)


def explain(rule: CompiledRule, analysis: Analysis, feed_id: str = "-",
            language: str | None = None) -> Explanation:
    doc = whole(analysis, feed_id)
    reason = ""
    if not rule.spec.enabled:
        reason = "the rule is disabled (enabled: false)"
    elif rule.spec.language and language is not None and language not in rule.spec.language:
        reason = f"the text is in {language!r}; the rule reads {', '.join(rule.spec.language)}"
    units = split(doc, rule.spec.scope)
    held = [u for u in units if evaluate(rule.when, u) is not None]
    unit = held[0] if held else max(units, key=lambda u: _score(rule.when, u))
    text = " ".join(analysis.text[unit.start:unit.end].split())
    return Explanation(rule.id, bool(held) and not reason, text, explain_node(rule.when, unit),
                       reason)


def render(explanation: Explanation, width: int = 100) -> list[str]:
    """The explanation as indented lines with ✓/✗ per node."""
    e = explanation
    lines = [f"{'✓' if e.fired else '✗'} {e.rule_id}" + (" fires" if e.fired else
                                                          " does not fire")]
    if e.reason:
        lines.append(f"    ({e.reason})")
    unit = e.unit if len(e.unit) <= width else e.unit[:width - 1] + "…"
    lines.append(f"    on: {unit}")

    def walk(node: Explained, depth: int) -> None:
        found = f"  ← {', '.join(repr(f) for f in node.found[:5])}" if node.found else ""
        lines.append(f"    {'  ' * depth}{'✓' if node.ok else '✗'} {node.label}{found}")
        for child in node.children:
            walk(child, depth + 1)

    walk(e.tree, 0)
    return lines
