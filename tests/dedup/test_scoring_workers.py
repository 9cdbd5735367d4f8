"""The scored matcher gives the same records, levels, pairs, weights and groups with one worker and with two:
fields graded on threads, name chunks side by side, learning's unblocked part during blocking, the phones
read by a child process, the pairs blocked and half of them compared by forked children (pure, no database)."""
import os
import random
import signal
import time

import numpy as np
import pytest

from dedup.engine.scoring import forked, graders, matcher, read_apart, sampling, workers

FIRSTS = ["Ivan", "Ivana", "Иван", "Michael", "Mike", "Micheal", "Olga", "Olha", "Anna", "Petr", "Pyotr", "Jonathan"]
LASTS = ["Petrov", "Petrova", "Smith", "Smyth", "Smirnov", "Smirnova", "Kuznetsov", "Lee", "Ivanov", "Orlov"]
COMPANIES = ["Romashka LLC", "OOO Romashka", "Vector 1552", "Vector 1522", "Acme Inc", "Sever", ""]


def typo(text: str, rng: random.Random) -> str:
    if len(text) < 4:
        return text
    at = rng.randrange(1, len(text) - 1)
    return text[:at] + text[at + 1] + text[at] + text[at + 2:]


def people_with_copies(count: int, seed: int) -> list[dict]:
    """Return ``count`` people's records, a third of them with a second record (a typo, another phone format,
    a missing email), shuffled: enough distinct names and phones for every bulk path."""
    rng = random.Random(seed)
    records = []
    for person in range(count):
        digits = "".join(rng.choice("0123456789") for _ in range(7))
        record = {"first_name": rng.choice(FIRSTS), "last_name": rng.choice(LASTS) + rng.choice(["", "", "a", "ov"]),
                  "company": rng.choice(COMPANIES), "phone": f"+7 912 {digits}", "country": rng.choice(["RU", "GB"]),
                  "email": f"user{person}@mail.ru", "birth_date": f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"}
        records.append(record)
        if rng.random() < 0.34:
            copy = dict(record, first_name=typo(record["first_name"], rng), phone=f"8 912 {digits}",
                        email=rng.choice([record["email"], None]))
            records.append(copy)
    rng.shuffle(records)
    return [dict(record, id=row) for row, record in enumerate(records)]


@pytest.fixture(scope="module")
def records():
    return people_with_copies(3000, seed=5)


@pytest.fixture
def small_thresholds(monkeypatch):
    """Let a few thousand records take the paths a million take: the reading child, name chunks on threads, the
    forked children that block and compare."""
    monkeypatch.setattr(read_apart, "MIN_RECORDS", 0)
    monkeypatch.setattr(matcher, "FORK_MIN_RECORDS", 0)
    monkeypatch.setattr(matcher, "FORK_MIN_PAIRS", 1000)
    # learned from a sample of the pairs, so that every candidate is compared afterwards (in two halves)
    sample = sampling.stratified_sample
    monkeypatch.setattr(sampling, "stratified_sample", lambda coded, pairs, budget=0, **kwargs: sample(
        coded, pairs, 3000, **kwargs))
    monkeypatch.setattr(graders, "NAME_PARALLEL_MIN", 0)
    monkeypatch.setattr(graders, "NAME_CHUNK", 5000)


def read_with(records: list[dict], count: int) -> matcher.Records:
    schema = matcher.infer_schema(records, skip=["id"])
    with workers.using(count):
        return matcher.read_records(records, schema, region=matcher.infer_region(records))


def test_read_records_phones_read_by_a_child_equal_those_read_here(records, small_thresholds):
    # given the same records read by one worker and by two (the phones then by a child process)
    alone, apart = read_with(records, 1), read_with(records, 2)
    # then the child ran and every column has the same codes and the same prepared values
    assert apart.child_memory_kb > 0 and alone.child_memory_kb == 0
    phone = [spec.type for spec in apart.schema].index("phone")
    assert len(apart.coded(phone).values) > 3000
    for position in range(len(alone.schema)):
        assert np.array_equal(alone.coded(position).codes, apart.coded(position).codes)
        assert alone.coded(position).values == apart.coded(position).values


def test_read_records_child_that_fails_leaves_its_fields_read_here(records, small_thresholds, monkeypatch):
    # given a child that cannot start its interpreter's module (it exits with an error)
    monkeypatch.setattr(read_apart.sys, "executable", "/bin/false")
    # when the records are read with two workers
    apart, alone = read_with(records, 2), read_with(records, 1)
    # then the phones were read here, as with one worker
    assert apart.child_memory_kb == 0
    for position in range(len(alone.schema)):
        assert np.array_equal(alone.coded(position).codes, apart.coded(position).codes)
        assert alone.coded(position).values == apart.coded(position).values


def test_find_groups_equal_with_one_and_two_workers(records, small_thresholds, monkeypatch):
    # given the records read once, grouped with one worker and with two (learning included), the children
    # forked with two counted
    read = read_with(records, 1)
    started = []
    start = forked.start
    monkeypatch.setattr(forked, "start", lambda function, *, name: started.append(name) or start(function, name=name))
    with workers.using(1):
        alone = matcher.find_groups(read)
    assert started == []
    with workers.using(2):
        together = matcher.find_groups(read)
    # then the pairs were blocked by a child and half of them compared by another
    assert started == ["blocking", "comparing"]
    # then the candidate pairs, their probabilities, the learned weights and the groups are the same
    assert alone.groups and len(alone.groups) > 300
    assert np.array_equal(alone.candidates, together.candidates)
    assert np.array_equal(alone.pairs, together.pairs)
    assert np.array_equal(alone.probabilities, together.probabilities)
    assert alone.model.prior == together.model.prior
    assert [(weights.m, weights.u, weights.tf) for weights in alone.model.fields] == \
        [(weights.m, weights.u, weights.tf) for weights in together.model.fields]
    assert sorted(map(sorted, alone.groups)) == sorted(map(sorted, together.groups))
    # and two workers report each step's CPU beside its wall time
    assert set(together.cpu_timings) == set(together.timings) >= {"blocking", "comparing", "learning"}


def test_comparison_levels_equal_with_one_and_two_workers(records, small_thresholds):
    # given every candidate pair graded on every field with one worker and with two
    read = read_with(records, 1)
    pairs = matcher.candidate_pairs(read)
    with workers.using(1):
        alone = matcher.comparison_levels(read, pairs)
    with workers.using(2):
        together = matcher.comparison_levels(read, pairs)
    # then every level is the same (the name pairs graded in several chunks on threads)
    assert len(pairs) > 5000
    assert np.array_equal(alone, together)


def test_workers_count_follows_the_setting(settings):
    settings.DEDUP_SCORING_WORKERS = 1
    assert workers.count() == 1
    settings.DEDUP_SCORING_WORKERS = 3
    assert workers.count() == 3
    settings.DEDUP_SCORING_WORKERS = 0  # the cores this process may use, at most MAX_WORKERS
    assert 1 <= workers.count() <= workers.MAX_WORKERS
    with workers.using(2):
        assert workers.count() == 2
        # a step on a worker's thread runs its own parts in that thread
        assert workers.run_map(lambda _item: workers.count(), range(3)) == [1, 1, 1]


def test_find_groups_with_a_known_model_forks_no_child(records, small_thresholds, monkeypatch):
    # given a model learned, then the records grouped with it and two workers (the scan's scored chunk)
    read = read_with(records, 1)
    model = matcher.find_groups(read).model
    started = []
    start = forked.start
    monkeypatch.setattr(forked, "start", lambda function, *, name: started.append(name) or start(function, name=name))
    with workers.using(2):
        matcher.find_groups(read, model=model)
    # then no child was forked: the scan's worker keeps its memory to itself
    assert started == []


def test_forked_child_result_comes_back():
    # given a child that computes an array
    child = forked.start(lambda _link: np.arange(1_000_000) * 2, name="test")
    # then its result arrives whole (more than a pipe's buffer), with its CPU time
    assert np.array_equal(child.result(), np.arange(1_000_000) * 2)
    assert child.cpu_seconds >= 0


def test_forked_child_sends_before_its_end_and_takes_what_it_is_sent():
    # given a child that sends a first value, then waits for one from the parent and returns its double
    def step(link):
        link.send("first")
        return link.receive() * 2

    child = forked.start(step, name="test")
    # then the parent reads the first value, sends one (more than a pipe's buffer) and gets its double back
    assert child.receive() == "first"
    child.send(np.arange(500_000))
    assert np.array_equal(child.result(), np.arange(500_000) * 2)


def test_forked_child_waiting_for_a_value_that_never_comes_ends_when_cancelled():
    # given a child waiting for a value from its parent, and a parent that fails before sending it
    child = forked.start(lambda link: link.receive(), name="test")
    started = time.monotonic()
    child.cancel()
    # then the child is ended and waited for, at once
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_forked_child_exception_raises_a_clear_error():
    # given a child whose step raises
    child = forked.start(lambda _link: 1 / 0, name="test")
    # then reading its result raises ChildFailed naming the step, with the child's traceback
    with pytest.raises(forked.ChildFailed, match=r"(?s)matcher's test failed.*ZeroDivisionError"):
        child.result()


def test_forked_child_killed_raises_a_clear_error_not_a_hang():
    # given a child killed before it sends anything (as the kernel's OOM killer would)
    child = forked.start(lambda _link: os.kill(os.getpid(), signal.SIGKILL), name="test")
    started = time.monotonic()
    # then its result raises at once, saying so
    with pytest.raises(forked.ChildFailed, match="killed by signal 9"):
        child.result()
    assert time.monotonic() - started < 10


def test_forked_child_cancelled_ends_at_once():
    # given a child that would run for a minute, no longer wanted
    child = forked.start(lambda _link: time.sleep(60), name="test")
    started = time.monotonic()
    child.cancel()
    # then it is gone (waited for: no zombie) well before
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def _fault_in_children(monkeypatch, name: str, fault) -> None:
    """Make matcher.<name> call ``fault()`` first in any process forked from this one, and run as usual here."""
    parent, real = os.getpid(), getattr(matcher, name)

    def faulty(*args, **kwargs):
        if os.getpid() != parent:
            fault()
        return real(*args, **kwargs)

    monkeypatch.setattr(matcher, name, faulty)


def _no_room_to_block():
    raise MemoryError("no room to block")


def test_find_groups_blocking_child_that_fails_raises_a_clear_error(records, small_thresholds, monkeypatch):
    # given blocking that fails in the forked child only
    read = read_with(records, 1)
    _fault_in_children(monkeypatch, "candidate_pairs", _no_room_to_block)
    # when the records are grouped with two workers
    # then the failure reaches the caller with the child's error, and no child is left behind
    with workers.using(2), pytest.raises(forked.ChildFailed, match=r"(?s)blocking failed.*no room to block"):
        matcher.find_groups(read)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_find_groups_comparing_child_killed_raises_a_clear_error(records, small_thresholds, monkeypatch):
    # given comparing whose forked child is killed midway
    read = read_with(records, 1)
    _fault_in_children(monkeypatch, "comparison_levels", lambda: os.kill(os.getpid(), signal.SIGKILL))
    # then grouping with two workers raises, naming the step and the signal
    with workers.using(2), pytest.raises(forked.ChildFailed, match="comparing was killed by signal 9"):
        matcher.find_groups(read)
