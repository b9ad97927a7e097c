"""The shipped rules keep their precision and recall on the labelled regression set."""

from __future__ import annotations

from datetime import date

import pytest
import yaml
from conftest import REPO

from ingest.nlp.pipeline import Analyzer
from ingest.rules.load import RuleSet
from ingest.rules.match import match_rule

ITEMS = yaml.safe_load((REPO / "bench" / "data" / "rule-items.yaml").read_text())


@pytest.mark.parametrize("rule_id", ["missile-deployment", "defence-minister-contact"])
def test_rule_quality_on_regression_set(analyzer: Analyzer, ruleset: RuleSet,
                                        rule_id: str) -> None:
    """Precision and recall both stay at or above 0.9 on bench/data/rule-items.yaml."""
    rule = ruleset.get(rule_id)
    assert rule is not None
    items = [i for i in ITEMS if i["rule"] == rule_id]
    analyses = analyzer.analyze([i["text"] for i in items],
                                [date.fromisoformat(str(i["date"])) for i in items])
    fired = [match_rule(rule, a, "-") is not None for a in analyses]
    tp = sum(f and i["expect"] for f, i in zip(fired, items, strict=True))
    fp = sum(f and not i["expect"] for f, i in zip(fired, items, strict=True))
    positives = sum(i["expect"] for i in items)
    assert len(items) == 90 and positives == 45
    assert tp / (tp + fp) >= 0.9, f"precision {tp / (tp + fp):.2f}"
    assert tp / positives >= 0.9, f"recall {tp / positives:.2f}"
