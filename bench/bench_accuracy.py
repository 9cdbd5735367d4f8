#!/usr/bin/env python
"""Measure how well `dedup_scan` finds the duplicates planted by `seed_demo`: precision and recall of pairs.

Runs standalone: `.venv/bin/python bench/bench_accuracy.py [--customers 2000] [--seed 7]`. It uses a throwaway
SQLite database in a temporary folder (or DATABASE_URL, which must name an empty database), seeds the demo base,
runs `manage.py dedup_scan customer --json` with the default rules, and compares the groups with the ground truth
the demo writes on every customer (custom_fields["demo_person"]: the real person behind the record). Then it
does the same with one more rule an admin might add, "full name similar by 90% and the same company", to show
what fuzzy matching adds.

Pairs: two records are a true pair when they have the same demo_person; a found pair when one scan group holds
both. Precision = found true pairs / found pairs; recall = found true pairs / true pairs. Recall is also given
per kind of planted duplicate (custom_fields["demo_duplicate"]).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pairs_of(groups) -> set[tuple[int, int]]:
    return {pair for ids in groups for pair in combinations(sorted(ids), 2)}


def evaluate(groups: list[list[int]], truth: dict[int, str], kinds: dict[int, str]) -> dict:
    by_person = defaultdict(list)
    for pk, person in truth.items():
        by_person[person].append(pk)
    true_pairs = pairs_of(ids for ids in by_person.values() if len(ids) > 1)
    found = pairs_of(groups)
    hits = found & true_pairs
    group_of = {pk: index for index, ids in enumerate(groups) for pk in ids}
    per_kind = Counter()
    per_kind_found = Counter()
    for pk, kind in kinds.items():
        others = [other for other in by_person[truth[pk]] if other != pk]
        per_kind[kind] += 1
        if pk in group_of and any(group_of.get(other) == group_of[pk] for other in others):
            per_kind_found[kind] += 1
    wrong = Counter()
    for a, b in found - true_pairs:
        wrong["different people grouped"] += 1
    return {
        "groups": len(groups),
        "found_pairs": len(found),
        "true_pairs": len(true_pairs),
        "precision": len(hits) / len(found) if found else 1.0,
        "recall": len(hits) / len(true_pairs) if true_pairs else 1.0,
        "per_kind": {kind: (per_kind_found[kind], per_kind[kind]) for kind in sorted(per_kind)},
        "false_pairs": len(found - true_pairs),
    }


def scan(path: Path) -> list[list[int]]:
    from django.core.management import call_command

    call_command("dedup_scan", "customer", "--json", str(path), "--no-progress")
    data = json.loads(path.read_text(encoding="utf-8"))
    return [group["ids"] for group in data["groups"]], data["stats"]


def print_result(title: str, result: dict, stats: dict) -> None:
    print(f"\n{title}")
    print(f"  scan: {stats['records']} customers, {stats['groups']} groups, {stats['seconds']} s")
    print(f"  pairs: {result['found_pairs']} found, {result['true_pairs']} true, {result['false_pairs']} false")
    print(f"  precision {result['precision']:.3f}   recall {result['recall']:.3f}")
    print("  recall of planted duplicates by kind: " + ", ".join(
        f"{kind} {found}/{total}" for kind, (found, total) in result["per_kind"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mergewise-bench-accuracy-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'accuracy.sqlite3'}")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    import django

    django.setup()
    from django.core.management import call_command

    from crm.models import Customer
    from dedup.models import Condition, Rule

    call_command("migrate", verbosity=0)
    if Customer.objects.exists():
        sys.exit("The database is not empty: point DATABASE_URL at an empty one, or unset it.")
    call_command("seed_demo", "--customers", str(args.customers), "--seed", str(args.seed), verbosity=0)
    truth, kinds = {}, {}
    for pk, custom in Customer.objects.filter(is_archived=False).values_list("pk", "custom_fields"):
        custom = custom or {}
        if "demo_person" in custom:
            truth[pk] = str(custom["demo_person"])
        if "demo_duplicate" in custom:
            kinds[pk] = custom["demo_duplicate"]
    print(f"Demo base: seed_demo --customers {args.customers} --seed {args.seed}: {len(truth)} customers, "
          f"{len(kinds)} planted duplicates")

    groups, stats = scan(workdir / "default.json")
    print_result("Default rules (phone; email; full name + company; messenger)", evaluate(groups, truth, kinds), stats)

    rule = Rule.objects.create(entity="customer", name="Similar name at the same company", position=99)
    Condition.objects.create(rule=rule, field="full_name", method="fuzzy", threshold=90, position=0)
    Condition.objects.create(rule=rule, field="company_name", method="normalized", position=1)
    groups, stats = scan(workdir / "fuzzy.json")
    print_result("Default rules + full name similar by 90% and same company", evaluate(groups, truth, kinds), stats)


if __name__ == "__main__":
    main()
