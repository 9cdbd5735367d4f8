"""Print the throughput of the normalisers and the block sizes and recall of name blocking on Faker data.

Usage: .venv/bin/python bench/bench_normalize.py [--rows 100000] [--block-rows 200000] [--seed 1]
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faker import Faker  # noqa: E402

from dedup.engine.normalize import (  # noqa: E402
    company_name_key,
    email_key,
    fold_token,
    name_blocking_keys,
    person_name_key,
    phone_e164,
)
from dedup.engine.similarity import best_pairs  # noqa: E402

# Half of the base Russian, half American: the two regions and scripts the product ships for.
LOCALES = (("ru_RU", "RU"), ("en_US", "US"))


def fakers(seed: int) -> list[tuple[Faker, str]]:
    made = []
    for offset, (locale, region) in enumerate(LOCALES):
        faker = Faker(locale)
        faker.seed_instance(seed + offset)
        made.append((faker, region))
    return made


def rate(label: str, values: list, keyer, *, unit: str = "keys") -> list:
    # CPU time of this process, not wall time: the figures hold on a machine shared with other jobs.
    started = time.process_time()
    keys = [keyer(value) for value in values]
    elapsed = time.process_time() - started
    matched = sum(key is not None for key in keys) / len(values)
    print(f"{label:<44} {len(values) / elapsed:>12,.0f} {unit}/s   keyed {matched:6.1%}")
    return keys


def typo(text: str, rng: random.Random) -> str:
    """Return the text with one random edit (substitution, insertion, deletion or swap) inside a word."""
    positions = [index for index, char in enumerate(text) if char.isalpha()]
    if len(positions) < 2:
        return text
    index = rng.choice(positions)
    letter = rng.choice("абвгдежзиклмнопрстуфхцчшщыэюяabcdefghijklmnopqrstuvwxyz")
    edit = rng.choice(["substitute", "insert", "delete", "swap"])
    if edit == "substitute":
        return text[:index] + letter + text[index + 1:]
    if edit == "insert":
        return text[:index] + letter + text[index:]
    if edit == "delete":
        return text[:index] + text[index + 1:]
    if index + 1 < len(text) and text[index + 1].isalpha():
        return text[:index] + text[index + 1] + text[index] + text[index + 2:]
    return text


def bench_throughput(rows: int, seed: int) -> None:
    made = fakers(seed)
    names, phones, regions, emails, companies = [], [], [], [], []
    for index in range(rows):
        faker, region = made[index % len(made)]
        names.append(faker.name())
        phones.append(faker.phone_number())
        regions.append(region)
        emails.append(faker.email())
        companies.append(faker.company())
    rng = random.Random(seed)
    typo_names = [typo(name, rng) for name in names]

    print(f"Throughput over {rows:,} Faker values (ru_RU and en_US), per CPU-second of one core")
    fold_token.cache_clear()
    rate("person_name_key (cold word cache)", names, person_name_key)
    rate("person_name_key (warm word cache)", names, person_name_key)
    fold_token.cache_clear()
    rate("person_name_key (one typo each, cold cache)", typo_names, person_name_key)
    pairs = list(zip(phones, regions))
    rate("phone_e164 (region per locale)", pairs, lambda pair: phone_e164(pair[0], pair[1]))
    rate("email_key (fold_provider)", emails, lambda value: email_key(value, fold_provider=True))
    rate("company_name_key", companies, company_name_key)
    rate("name_blocking_keys", names, name_blocking_keys, unit="names")
    print(f"  (word cache: {fold_token.cache_info().currsize:,} distinct words)")


def bench_blocking(rows: int, seed: int) -> None:
    made = fakers(seed + 100)
    rng = random.Random(seed)
    names = [made[index % len(made)][0].name() for index in range(rows)]
    # One record in ten gets a near duplicate with one typo: does blocking put the two in one block?
    duplicates = [(name, typo(name, rng)) for name in names[: rows // 10]]
    block_sizes: Counter[str] = Counter()
    started = time.process_time()
    for name in names:
        block_sizes.update(name_blocking_keys(name))
    elapsed = time.process_time() - started
    sizes = sorted(block_sizes.values())
    pairs = sum(size * (size - 1) // 2 for size in sizes)
    keys_per_name = sum(sizes) / rows
    # The block a random record lands in, weighted by its size: what a "find the duplicates of this card" costs.
    record_weighted = sum(size * size for size in sizes) / sum(sizes)
    shared = sum(bool(name_blocking_keys(a) & name_blocking_keys(b)) for a, b in duplicates)
    exact = sum(person_name_key(a) == person_name_key(b) for a, b in duplicates)
    print()
    print(f"Name blocking over {rows:,} Faker names ({elapsed:.1f} CPU-s to key)")
    print(f"  keys per name {keys_per_name:.2f}, blocks {len(sizes):,}, pairs to compare {pairs:,}")
    print(
        f"  block size: median {statistics.median(sizes):.0f}, p99 {sizes[int(len(sizes) * 0.99)]:,},"
        f" max {sizes[-1]:,}, size of a record's block on average {record_weighted:,.0f}"
    )
    print(f"  largest blocks: {', '.join(f'{key} ({size:,})' for key, size in block_sizes.most_common(5))}")
    print(
        f"  one-typo duplicates sharing a block: {shared / len(duplicates):.1%}"
        f" (same exact key: {exact / len(duplicates):.1%})"
    )
    largest_key = block_sizes.most_common(1)[0][0]
    largest = [name for name in names if largest_key in name_blocking_keys(name)]
    for label, block in (("the largest block", largest), ("a block of 3,000 random names", names[:3000])):
        keys = [person_name_key(name) for name in block]
        started = time.process_time()
        found = best_pairs(keys, 90)
        elapsed = max(time.process_time() - started, 1e-6)
        compared = len(keys) * (len(keys) - 1) // 2
        print(
            f"  best_pairs on {label} ({len(keys):,} names): {elapsed:.2f} CPU-s,"
            f" {compared / elapsed:,.0f} pairs/s, {len(found):,} pairs >= 90"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="values per normaliser for throughput")
    parser.add_argument("--block-rows", type=int, default=200_000, help="names for the blocking figures")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    bench_throughput(args.rows, args.seed)
    bench_blocking(args.block_rows, args.seed)


if __name__ == "__main__":
    main()
