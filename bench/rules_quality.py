"""How the shipped rules behave on real labelled news (../shared/corpus/events).

Prints, per corpus and gold label, how many items each rule fires on, and lists
the items it fires on where the label says it should not (and the reverse for
the labels that are positives).  Nothing here is committed data: the corpus is
read from ../shared and skipped with a message when absent.

    .venv/bin/python bench/rules_quality.py [--show]
    .venv/bin/python bench/rules_quality.py --items labelled.yaml [--show]

``--items`` scores the rules on a YAML list of labelled items instead
(``- {rule: ID, expect: true|false, date: YYYY-MM-DD, text: "..."}``) and prints
precision, recall and F1 per rule, with the misses when ``--show`` is given.
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

# Labels that are positives for each rule (the corpus README's mapping, extended for the
# newer rules).  The corpora's labels are coarser than the rules, so these are the labels a
# rule's alerts belong under, not labels whose every item the rule should fire on: PLOVER
# SANCTION also covers expulsions and aid cuts, THREATEN covers non-military threats,
# AGREE covers every kind of agreement, and CASE DIPLO mixes sanctions, expulsions and
# closures.  Rules with no corresponding label (weapons tests, airspace, naval incidents,
# arms transfers, ceasefire violations, cyber-attacks) count every alert as outside.
POSITIVE = {
    "missile-deployment": {"plover:MOBILIZE"},
    "defence-minister-contact": {"plover:CONSULT"},
    "head-of-state-contact": {"plover:CONSULT"},
    "force-deployment": {"plover:MOBILIZE", "case:CHANGE_TO_GROUP_ACT", "case:HQ_ESTABLISHED"},
    "mobilisation": {"plover:MOBILIZE"},
    "retaliation-threat": {"plover:THREATEN"},
    "sanctions-announced": {"plover:SANCTION", "case:DIPLO"},
    "embassy-closure": {"plover:SANCTION", "case:DIPLO"},
    "ceasefire-agreed": {"plover:AGREE", "plover:RETREAT", "case:AGREEMENT"},
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


def score_items(path: Path, show: bool) -> int:
    """Precision/recall per rule on a labelled YAML list."""
    import yaml

    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    gaz = load_gazetteer(REPO / "rules" / "entities.yaml")
    rules = load_rules([REPO / "rules"], gaz)
    analyzer = Analyzer(load_model("en_core_web_sm"), gaz)
    analyses = analyzer.analyze([i["text"] for i in items],
                                [date.fromisoformat(str(i["date"])) for i in items])
    print(f"| {'rule':26} | {'items':>5} | {'tp':>3} | {'fp':>3} | {'fn':>3} | {'prec':>5} | "
          f"{'recall':>6} | {'F1':>5} |")
    print(f"|{'-' * 28}|{'-' * 7}|{'-' * 5}|{'-' * 5}|{'-' * 5}|{'-' * 7}|{'-' * 8}|{'-' * 7}|")
    misses = []
    for rule in rules.rules:
        mine = [(i, a) for i, a in zip(items, analyses, strict=True) if i["rule"] == rule.id]
        if not mine:
            continue
        tp = fp = fn = 0
        for item, analysis in mine:
            fired = any(m.rule_id == rule.id for m in match_all((rule,), analysis, "eval"))
            tp += fired and item["expect"]
            fp += fired and not item["expect"]
            fn += (not fired) and item["expect"]
            if fired != item["expect"]:
                misses.append(f"{'FP' if fired else 'FN'} {rule.id:26} {item['text'][:150]}")
        prec = tp / (tp + fp) if tp + fp else 1.0
        rec = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        print(f"| {rule.id:26} | {len(mine):5} | {tp:3} | {fp:3} | {fn:3} | {prec:5.2f} | "
              f"{rec:6.2f} | {f1:5.2f} |")
    if show:
        print("\n".join(["", *misses]))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--show", action="store_true", help="print every item a rule fires on")
    parser.add_argument("--items", type=Path, help="a labelled YAML list to score instead")
    args = parser.parse_args()
    if args.items:
        return score_items(args.items, args.show)
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
