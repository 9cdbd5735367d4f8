"""Each record's duplicates as stored figures (DuplicatePair), kept current by the engine, so change-list counts
and the "Has duplicates" filter are one indexed lookup.

Computing "has this record a duplicate" for a whole list from the match keys is a self-join of the index per
rule: seconds at 2,000 customers, never finishing for a million. Instead the pairs the finder reports are
stored and refreshed whenever they can change: a record or one of its contact rows saved or deleted, a merge
or an undo (records_bulk_saved) — once the transaction commits, for all the records it changed —, a "not a
duplicate" decision, a rule change (a rebuild task) and every scan (a full rebuild of the entity). A refresh
re-finds the duplicates of the changed records, of every record that was or is now their duplicate and of the
other holders of their keys (a number becoming shared by a third person), so both sides of a pair stay right.
One case is left to the next scan (or the next save of a holder): a number that stops being shared when one of
its holders changes it, after which the remaining holders are duplicates again.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterable
from functools import partial

from django.db import connection, models, transaction
from django.db.models import Count, Exists, OuterRef
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from dedup import registry
from dedup.db import lock_if_free, lock_until_commit
from dedup.engine import finder
from dedup.engine.figures_messages import refresh_send, refresh_taken
from dedup.models import DuplicatePair, FiguresPending, MatchKey
from dedup.registry import EntitySpec
from dedup.signals import records_bulk_saved

logger = logging.getLogger(__name__)

# Records re-found per finder call: its three queries carry this many ids (well under SQLite's 999 parameters
# once the keys are added) and its candidates stay a few thousand rows.
REFRESH_BATCH = 300


def _spec(entity: str | EntitySpec | type[models.Model]) -> EntitySpec | None:
    if isinstance(entity, EntitySpec):
        return entity
    if isinstance(entity, str):
        return registry.get(entity)
    return registry.for_model(entity)


def _store(spec: EntitySpec, ids: list[int]) -> set[int]:
    """Re-find the duplicates of these records and store them; return every partner seen (old and new)."""
    old = set(
        DuplicatePair.objects.filter(entity=spec.key, record_id__in=ids).values_list("other_id", flat=True)
    )
    found = finder.duplicate_partners(spec.model, ids)
    DuplicatePair.objects.filter(entity=spec.key, record_id__in=ids).delete()
    DuplicatePair.objects.bulk_create(
        [
            DuplicatePair(entity=spec.key, record_id=pk, other_id=other)
            for pk, others in found.items()
            for other in sorted(others)
        ],
        ignore_conflicts=True,
    )
    return old | set().union(*found.values()) if found else old


# A key held by more records than this is far past being "shared" (an office number): its holders' pairs do not
# depend on one more or one fewer holder, so they are not refreshed with it.
CO_HOLDERS_MAX = 50


def co_holders(spec: EntitySpec, pks: Iterable[int]) -> set[int]:
    """Return the other records holding a lookup key of these records (fewer than CO_HOLDERS_MAX per key).

    A key shared by a few people stops counting once one more name holds it (and counts again when one leaves),
    so a record's change can change the pairs of every holder of its keys, not only of its own duplicates.
    """
    ids = [int(pk) for pk in pks if pk is not None]
    compiled = finder.rules.active_rules(spec.key) if ids else []
    kinds = sorted(set().union(*(rule.kinds for rule in compiled))) if compiled else []
    if not kinds:
        return set()
    mine = MatchKey.objects.filter(entity=spec.key, record_id__in=ids, kind__in=kinds)
    crowded = (
        MatchKey.objects.filter(entity=spec.key, kind=models.OuterRef("kind"), key=models.OuterRef("key"))
        .values("kind")
        .annotate(holders=Count("record_id"))
        .values("holders")
    )
    keys = (
        mine.annotate(holders=models.Subquery(crowded))
        .filter(holders__lte=CO_HOLDERS_MAX)
        .values_list("kind", "key")
    )
    # One term per kind (its keys in one IN list): a term per key nested past SQLite's expression depth (1,000)
    # once a batch of 300 records held more keys than that.
    by_kind: dict[str, set[str]] = defaultdict(set)
    for kind, key in keys:
        by_kind[kind].add(key)
    condition = models.Q()
    for kind, kind_keys in sorted(by_kind.items()):
        condition |= models.Q(kind=kind, key__in=sorted(kind_keys))
    if not condition:
        return set()
    holders = MatchKey.objects.filter(condition, entity=spec.key).exclude(record_id__in=ids)
    return set(holders.values_list("record_id", flat=True))


def refresh_lock_id(entity: str) -> int:
    """The advisory lock id of an entity's figures: held by a refresh batch and by the whole rebuild."""
    digest = hashlib.blake2b(f"dedup.counts_refresh:{entity}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@transaction.atomic
def counts_refresh(
    *, entity: str | EntitySpec | type[models.Model], pks: Iterable[int], also: Iterable[int] = ()
) -> None:
    """Bring the stored duplicates of these records up to date, and of every record whose pairs they can change:
    those that were or are now their duplicates, the other holders of their keys, and ``also`` (the holders of
    the keys they had before the change)."""
    spec = _spec(entity)
    if spec is None:
        return
    # One refresh of an entity at a time (PostgreSQL; SQLite has one writer anyway): two workers refreshing
    # overlapping records could otherwise write pairs read before the other's commit, last writer wins.
    lock_until_commit(connection, [refresh_lock_id(spec.key)])
    pks = {int(pk) for pk in pks if pk is not None}
    todo = sorted(pks | co_holders(spec, pks) | {int(pk) for pk in also})
    done: set[int] = set()
    for start in range(0, len(todo), REFRESH_BATCH):
        batch = todo[start : start + REFRESH_BATCH]
        partners = _store(spec, batch)
        done.update(batch)
        # Their partners' figures changed too (a pair appears or disappears on both sides): refresh them once.
        others = sorted(partners - done - set(todo))
        for other_start in range(0, len(others), REFRESH_BATCH):
            other_batch = others[other_start : other_start + REFRESH_BATCH]
            _store(spec, other_batch)
            done.update(other_batch)


@transaction.atomic
def counts_rebuild(*, entity: str | EntitySpec | type[models.Model]) -> int:
    """Store the duplicates of every record of the entity afresh (after a rule change or a scan); return pairs.

    Set-based where the decision allows: the holders of every shared lookup key are counted in one aggregate over
    the index, so each batch reads its records' keys by their ids and asks for candidates only by the keys
    someone else holds too (at 1,000,000 customers most phones and emails are one person's). The decision itself
    stays the finder's, in Python, so the figures are exactly what a card shows. Over 25 minutes at 1,000,000
    customers before (each batch counted the holders of its 900 keys again, and its candidates' query read the
    whole index); measured in bench/README.md.
    """
    spec = _spec(entity)
    if spec is None:
        return 0
    # The refreshes of the entity wait for the rebuild: it holds every stored pair of the entity until it commits
    # (80 s at 1,000,000 customers), and a refresh task finding this lock taken comes back later instead of waiting
    # for those rows (counts_refresh_waiting).
    lock_until_commit(connection, [refresh_lock_id(spec.key)])
    began = timezone.now()
    holders = finder.shared_key_counts(spec.model)
    DuplicatePair.objects.filter(entity=spec.key).delete()
    ids = list(
        MatchKey.objects.filter(entity=spec.key).order_by("record_id").values_list("record_id", flat=True).distinct()
    )
    for start in range(0, len(ids), REFRESH_BATCH):
        batch = ids[start : start + REFRESH_BATCH]
        found = finder.duplicate_partners(spec.model, batch, holders=holders)
        DuplicatePair.objects.bulk_create(
            [DuplicatePair(entity=spec.key, record_id=pk, other_id=o) for pk, others in found.items() for o in others],
            ignore_conflicts=True,
        )
    # Records changed before the rebuild began are done; those changed since wait for their own refresh, sent once
    # this commits (their own messages found the rebuild holding the entity and left them waiting).
    FiguresPending.objects.filter(entity=spec.key, changed_at__lte=began).delete()
    if FiguresPending.objects.filter(entity=spec.key).exists():
        transaction.on_commit(partial(refresh_send, entity=spec.key, bulk=False))
    return DuplicatePair.objects.filter(entity=spec.key).count()


# --- Reads ------------------------------------------------------------------------------------------------------


def stored_counts(model: type[models.Model], pks: Iterable[int]) -> dict[int, int]:
    """Return {pk: number of duplicates} from the stored figures: one indexed query for a page of records."""
    spec = registry.for_model(model)
    ids = [pk for pk in dict.fromkeys(pks) if pk is not None]
    counts = {pk: 0 for pk in ids}
    if spec is None or not ids:
        return counts
    for pk, count in (
        DuplicatePair.objects.filter(entity=spec.key, record_id__in=ids)
        .values_list("record_id")
        .annotate(count=Count("other_id"))
        .values_list("record_id", "count")
    ):
        counts[pk] = count
    return counts


def with_stored_duplicates(queryset: models.QuerySet, has: bool = True) -> models.QuerySet:
    """Return the records of the queryset that have (or, has=False, have no) stored duplicate."""
    spec = registry.for_model(queryset.model)
    if spec is None:
        raise ValueError(f"{queryset.model.__name__} is not registered with duplicate control")
    if has:
        return queryset.filter(pk__in=DuplicatePair.objects.filter(entity=spec.key).values("record_id"))
    # NOT EXISTS, not NOT IN: PostgreSQL plans NOT IN (subquery) as a hashed subplan of every stored pair (about
    # 100 ms at 1,000,000 customers on every page view); NOT EXISTS is an anti-join that stops at the page.
    return queryset.exclude(Exists(DuplicatePair.objects.filter(entity=spec.key, record_id=OuterRef("pk"))))


# --- Keeping them current ---------------------------------------------------------------------------------------


def _owners(spec: EntitySpec, instance) -> list[int]:
    if isinstance(instance, spec.model):
        return [instance.pk]
    # A contact row (phone, email, messenger) of a record: generic, naming its owner's type and id.
    content_type_id = getattr(instance, "content_type_id", None)
    if content_type_id is None:
        return []
    from django.contrib.contenttypes.models import ContentType

    if ContentType.objects.get_for_model(spec.model).pk != content_type_id:
        return []
    return [instance.object_id]


def _watched() -> dict[type[models.Model], list[EntitySpec]]:
    """The models whose rows change a record's duplicates: the entities and the rows their match fields read."""
    watched: dict[type[models.Model], list[EntitySpec]] = {}
    for spec in registry.all_specs():
        watched.setdefault(spec.model, []).append(spec)
        for match_field in spec.fields.values() if isinstance(spec.fields, dict) else spec.fields:
            for column in match_field.columns or ():
                relation = column.split("__")[0]
                try:
                    related = spec.model._meta.get_field(relation).related_model
                except Exception:  # noqa: BLE001 - a plain column, not a relation
                    continue
                if related is not None and related is not spec.model and spec not in watched.get(related, []):
                    watched.setdefault(related, []).append(spec)
    return watched


class PendingRefresh:
    """The records whose figures a transaction changed, by entity, refreshed once it commits: the transaction's
    on_commit callback itself. A card saved with its inline phones is one refresh, and the save itself pays nothing
    for the figures.

    Django holds the callback until the transaction ends and drops it with a rollback, so the records of a
    rolled-back transaction go with it; the thread keeps only a weak reference, to add the rest of the
    transaction's records. (A per-thread set kept them before: a rolled-back transaction's records were sent by
    the next commit on the thread, and a test that saved without committing left its records to the next test.)
    A savepoint rolled back inside a transaction that commits leaves its records to that commit's refresh, which
    re-finds their figures as they are: harmless.
    """

    def __init__(self) -> None:
        self.records: dict[str, set[int]] = {}

    def add(self, entity: str, pks: Iterable[int]) -> None:
        self.records.setdefault(entity, set()).update(int(pk) for pk in pks if pk is not None)

    def __call__(self) -> None:
        # Registered with every change: the first call sends them all, the others find nothing left.
        records, self.records = self.records, {}
        refresh_pending(records)


# The current transaction's PendingRefresh, per thread (a weak reference: Django's on_commit list owns it).
_current = threading.local()

# A change of more records than this (an import, a bulk action) is refreshed on the bulk queue from the start.
REFRESH_INTERACTIVE_MAX = 200
# How long a refresh batch waits for a lock (PostgreSQL's lock_timeout) before its task gives up and retries: a few
# times a batch's own time under load (1 to 3 s for 300 records), far below the figures' rebuild.
REFRESH_LOCK_WAIT = "5s"


def refresh_pending(records: dict[str, set[int]]) -> None:
    """Mark the records a committed transaction changed ({entity key: pks}) as waiting for their figures, and send
    the refresh task unless one waits already (called by the transaction's PendingRefresh, on commit).

    The refresh is not part of the request: re-finding the duplicates of a saved record, of its partners and of the
    other holders of its keys was half of an intake request's time (10 of its 19 queries, bench/README.md
    2026-12-05). The request writes one row per record (FiguresPending) and, when no refresh message of the entity
    waits on its queue, a message (dedup.engine.figures_messages: the marks and the look for a waiting message are
    one statement on PostgreSQL); a worker of the "figures" queue refreshes every record waiting, REFRESH_BATCH
    at a time, reading what is committed by then. Under load the records of many requests are refreshed together
    by one task, and the merges, on a queue and worker of their own, never wait for them. A broker that refuses
    the message gets the refresh done here, as before.
    """
    for entity, pks in records.items():
        ids = sorted(pks)
        refresh_send(
            entity=entity, bulk=len(ids) > REFRESH_INTERACTIVE_MAX, on_failure=partial(_refresh_here, entity), waiting=ids
        )


def _refresh_here(entity: str, error: Exception | None = None) -> None:
    try:
        counts_refresh_waiting(entity=entity)
    except Exception:  # the figures are repaired by the next scan; never fail what already committed
        logger.exception("Could not refresh the duplicate figures of %s", entity)


def counts_refresh_waiting(*, entity: str, max_batches: int | None = None, queue: str | None = None) -> int:
    """Refresh the figures of the records waiting for them (FiguresPending), oldest first, REFRESH_BATCH at a
    time, each batch in a transaction of its own; stop after ``max_batches`` and hand what is left to a task on the
    bulk queue. ``queue`` names the queue of the message being run: it is marked taken first, so a change committed
    from then on sends a message of its own. Return how many records were refreshed.

    Only rows written before a batch begins are taken, and deleted unless written again meanwhile: a record
    changed again while its batch was being refreshed keeps its row and is refreshed by the next task.
    """
    refresh_taken(entity=entity, queue=queue)
    spec = _spec(entity)
    if spec is None:
        FiguresPending.objects.filter(entity=entity).delete()
        return 0
    refreshed = batches = 0
    busy = False
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            # One refresh of an entity at a time. Taken by the entity's rebuild (counts_rebuild holds it until it
            # commits, then sends the refresh of what changed meanwhile) or another refresh (which reads the rows
            # after this task's): a task leaves the records waiting and its worker to the other entities' refreshes;
            # a direct call waits its turn (then finds the rows taken). Any other lock held
            # longer than a batch takes (REFRESH_LOCK_WAIT): the batch gives up, the task's retry comes back later
            # instead of holding its worker (the records stay waiting; nothing is lost).
            if not lock_if_free(connection, [refresh_lock_id(spec.key)], lock_timeout=REFRESH_LOCK_WAIT):
                if queue is not None:
                    busy = True
                    break
                lock_until_commit(connection, [refresh_lock_id(spec.key)])
            began = timezone.now()
            rows = list(
                FiguresPending.objects.filter(entity=spec.key, changed_at__lte=began)
                .order_by("changed_at", "pk")
                .values_list("pk", "record_id")[:REFRESH_BATCH]
            )
            if not rows:
                return refreshed
            counts_refresh(entity=spec, pks=[record_id for _pk, record_id in rows])
            FiguresPending.objects.filter(pk__in=[pk for pk, _record_id in rows], changed_at__lte=began).delete()
        refreshed += len(rows)
        batches += 1
    if not busy and FiguresPending.objects.filter(entity=spec.key).exists():
        refresh_send(entity=spec.key, bulk=True)
    return refreshed


def counts_refresh_on_commit(*, entity: str | EntitySpec | type[models.Model], pks: Iterable[int]) -> None:
    """Refresh these records' figures once the current transaction commits (together with the others it changed)."""
    spec = _spec(entity)
    if spec is None:
        return
    current = getattr(_current, "refresh", None)
    pending = current() if current is not None else None
    if pending is None:  # the first change of this transaction, or the last one's callback is gone
        pending = PendingRefresh()
        _current.refresh = weakref.ref(pending)
    pending.add(spec.key, pks)
    # Registered with every change, so a callback registered inside a savepoint that is rolled back does not take
    # the records of the transaction's other changes with it (and outside a transaction it runs at once).
    transaction.on_commit(pending)


def _on_change(sender, instance, raw=False, **kwargs):
    if raw:
        return
    for spec in _WATCHED.get(sender, []):
        pks = _owners(spec, instance)
        if pks:
            counts_refresh_on_commit(entity=spec, pks=pks)


def _on_bulk_saved(sender=None, model=None, pks=(), **kwargs):
    spec = registry.for_model(model) if model is not None else None
    if spec is not None and pks:
        counts_refresh_on_commit(entity=spec, pks=pks)


# The registered name of the rebuild task (dedup/tasks.py), sent when a rule changes.
REBUILD_TASK = "dedup.tasks.duplicate_counts_rebuild"


def _on_rule_change(sender, instance, raw=False, **kwargs):
    if raw:
        return  # rows loaded as they are (loaddata, a test database restored): their figures come with them
    from functools import partial

    from dedup.dispatch import task_send
    from dedup.models import Rule

    rule = instance if isinstance(instance, Rule) else getattr(instance, "rule", None)
    spec = getattr(rule, "spec", None) if rule is not None else None
    if spec is not None:
        # Once committed (the rule's conditions are saved after it), in the background: a rebuild reads every record.
        transaction.on_commit(partial(task_send, REBUILD_TASK, args=[spec.key]))


def counts_rebuild_send(*, entity: str) -> None:
    """Rebuild an entity's stored figures in the background once the transaction commits (what decides its pairs
    changed: a rule, the scoring model's threshold)."""
    from functools import partial

    from dedup.dispatch import task_send

    transaction.on_commit(partial(task_send, REBUILD_TASK, args=[entity]))


def connect() -> None:
    """Keep the stored figures current (called from DedupConfig.ready after the index connects, so the keys
    are written before the duplicates are re-found)."""
    from dedup.models import Condition, Rule

    records_bulk_saved.connect(_on_bulk_saved, dispatch_uid="dedup.engine.counts.bulk_saved")
    for model in (Rule, Condition):
        post_save.connect(_on_rule_change, sender=model, dispatch_uid=f"dedup.engine.counts.rule_save.{model.__name__}")
        post_delete.connect(
            _on_rule_change, sender=model, dispatch_uid=f"dedup.engine.counts.rule_delete.{model.__name__}"
        )
    _connect_watched()
    registry.on_register(lambda spec: _connect_watched())


_WATCHED: dict[type[models.Model], list[EntitySpec]] = {}


def _connect_watched() -> None:
    _WATCHED.clear()
    _WATCHED.update(_watched())
    for model in _WATCHED:
        uid = model._meta.label_lower
        post_save.connect(_on_change, sender=model, dispatch_uid=f"dedup.engine.counts.save.{uid}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"dedup.engine.counts.delete.{uid}")
