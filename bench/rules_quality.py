"""How the shipped rules behave on real labelled news (../shared/corpus/events).

Prints, per corpus and gold label, how many items each rule fires on, and lists
the items it fires on where the label says it should not (and the reverse for
the labels that are positives).  Nothing here is committed data: the corpus is
read from ../shared and skipped with a message when absent.

    .venv/bin/python bench/rules_quality.py [--show]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

from ingest.nlp.gazetteer import load_gazetteer
from ingest.nlp.pipeline import Analyzer, load_model
from ingest.rules.load import load_rules
from ingest.rules.match import match_all

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO.parent / "shared" / "corpus" / "events"
ON = date(2020, 1, 1)  # the corpora are older news; roles are judged at a neutral date

# Labels that are positives for each rule (the corpus README's mapping).
POSITIVE = {
    "missile-deployment": {"plover:MOBILIZE"},
    "defence-minister-contact": {"plover:CONSULT"},
}


def load_items() -> list[tuple[str, str]]:
    """(corpus:label, text) for every labelled item."""
    items: list[tuple[str, str]] = []
    for rec in json.loads((EVENTS / "plover_gsr" / "PLOVER_GSR_CAMEO.txt").read_text()):
        if rec.get("event") and rec.get("text"):
            items.append((f"plover:{rec['event']}", rec["text"]))
    with (EVENTS / "case2021_task2" / "test_set_final_release_with_labels.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            items.append((f"case:{row['SubType']}", row["EventSnippet"]))
    for name in ("train.tsv", "test.tsv"):
        with (EVENTS / "conflibert_cameo_pentaclass" / name).open() as fh:
            for line in fh:
                text, _, label = line.rstrip("\n").rpartition("\t")
                if text:
                    items.append((f"cameo:{label}", text))
    return items


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--show", action="store_true", help="print every item a rule fires on")
    args = parser.parse_args()
    if not EVENTS.exists():
        print(f"skipped: {EVENTS} is absent (the shared corpus lives beside the repository)")
        return 0
    gaz = load_gazetteer(REPO / "rules" / "entities.yaml")
    rules = load_rules([REPO / "rules"], gaz)
    analyzer = Analyzer(load_model("en_core_web_sm"), gaz)
    items = load_items()
    analyses = analyzer.analyze([t for _, t in items], [ON] * len(items))
    fired: dict[str, Counter[str]] = defaultdict(Counter)
    totals = Counter(label for label, _ in items)
    shown: list[str] = []
    for (label, text), analysis in zip(items, analyses, strict=True):
        for m in match_all(rules.rules, analysis, "corpus"):
            fired[m.rule_id][label] += 1
            if args.show:
                shown.append(f"{m.rule_id:26} {label:28} {text[:160]}")
    print(f"{len(items)} labelled items; rules judged on {ON}")
    for rule in rules.rules:
        counts = fired[rule.id]
        pos = POSITIVE.get(rule.id, set())
        tp = sum(counts[lab] for lab in pos)
        npos = sum(totals[lab] for lab in pos)
        fp = sum(n for lab, n in counts.items() if lab not in pos)
        print(f"\n{rule.id}: fires on {sum(counts.values())} items; "
              f"positives {tp}/{npos}; outside positive labels {fp}")
        for lab, n in counts.most_common():
            print(f"  {lab:32} {n:4} / {totals[lab]}")
    for line in shown:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
