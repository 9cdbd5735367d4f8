#!/usr/bin/env python
"""Benchmark the merge engine: merge 10 customers carrying 10,000 timeline rows, then undo; seconds and queries.

Runs standalone: `.venv/bin/python bench/bench_merge.py [--records 10] [--rows 10000]`. It uses a throwaway SQLite
database in a temporary folder, migrated first, unless DATABASE_URL names another (empty) database, e.g.
DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_merge. The rows it makes are deleted at the end.
It also runs the same merge with a tenth of the rows, to show the number of queries does not depend on them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The target for 10 records and 10,000 timeline rows.
TARGET_SECONDS = 5.0


def build(*, records: int, rows: int, tag: str):
    """Create `records` customers with `rows` timeline rows spread over them and every timeline kind."""
    from django.contrib.contenttypes.models import ContentType

    from crm import models

    customers = models.Customer.objects.bulk_create(
        [models.Customer(first_name="Ivan", last_name=f"Petrov {tag}", external_id="") for _ in range(records)]
    )
    content_type = ContentType.objects.get_for_model(models.Customer)
    kinds = [
        (models.Note, {"text": "Called, no answer"}),
        (models.Task, {"title": "Call back"}),
        (models.Call, {"phone": "+79123456789", "duration_seconds": 60}),
        (models.EmailMessage, {"subject": "Your order", "body": "Hello"}),
        (models.SmsMessage, {"phone": "+79123456789", "text": "Your order is ready"}),
        (models.ChatMessage, {"text": "Hi!", "username": "ivan"}),
        (models.Attachment, {"file": "attachments/bench/contract.pdf", "name": "contract.pdf"}),
    ]
    per_kind: dict = {model: [] for model, _ in kinds}
    for index in range(rows):
        model, values = kinds[index % len(kinds)]
        owner = customers[index % records]
        per_kind[model].append(model(content_type=content_type, object_id=owner.pk, **values))
    # Each customer has a pinned note: the survivor's must stay pinned, the others' unpinned.
    per_kind[models.Note].extend(
        models.Note(content_type=content_type, object_id=c.pk, text="Pinned", pinned=True) for c in customers
    )
    for model, objects in per_kind.items():
        model.objects.bulk_create(objects, batch_size=2000)
    # Three distinct phones over the customers: the merge keeps one row per number.
    phones = [f"+7912{index % 3:07d}" for index in range(records)]
    models.Phone.objects.bulk_create(
        [
            models.Phone(content_type=content_type, object_id=c.pk, number=phone, e164=phone)
            for c, phone in zip(customers, phones)
        ]
    )
    models.Order.objects.bulk_create(
        [models.Order(customer=c, number=f"BENCH-{tag}-{i}") for i, c in enumerate(customers)]
    )
    return customers


class QueryCounter:
    """Count the queries run through a connection, with marks in between."""

    def __init__(self, connection):
        self.connection = connection
        self.queries = 0

    def __call__(self, execute, sql, params, many, context):
        self.queries += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        self._wrapper = self.connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        return self._wrapper.__exit__(*exc)


def timed(connection, action) -> dict:
    """Run action in a transaction; return its seconds and queries, and those of what runs after the commit (the
    match-key index re-keying the records, which is the index's work, not the merge's)."""
    from django.db import transaction

    with QueryCounter(connection) as counter:
        started = time.monotonic()
        with transaction.atomic():
            result = action()
            in_transaction = counter.queries
        committed = time.monotonic()
    return {
        "result": result,
        "seconds": committed - started,
        "queries": in_transaction,
        "after_commit_queries": counter.queries - in_transaction,
    }


def run(*, records: int, rows: int, tag: str, user, connection) -> dict:
    from django.contrib.contenttypes.models import ContentType

    from crm import models
    from dedup.merge import merge_undo, records_merge
    from dedup.models import MergeJob

    customers = build(records=records, rows=rows, tag=tag)
    survivor, absorbed = customers[0], customers[1:]
    merge = timed(connection, lambda: records_merge(survivor=survivor, absorbed=absorbed, user=user))
    result = merge["result"]
    timeline_on_survivor = sum(
        model.objects.filter(content_type=ContentType.objects.get_for_model(models.Customer), object_id=survivor.pk)
        .count()
        for model in (models.Note, models.Task, models.Call, models.EmailMessage, models.SmsMessage,
                      models.ChatMessage, models.Attachment)
    )  # fmt: skip
    job = MergeJob.objects.create(
        entity_key="customer",
        content_type=ContentType.objects.get_for_model(models.Customer),
        survivor_id=survivor.pk,
        absorbed_ids=[c.pk for c in absorbed],
        created_by=user,
        status=MergeJob.Status.DONE,
        snapshot=result.snapshot,
    )
    undo = timed(connection, lambda: merge_undo(job=job, user=user))
    live_again = models.Customer.objects.filter(pk__in=[c.pk for c in absorbed], is_archived=False).count()
    return {
        "records": records,
        "rows": rows,
        "moved": sum(result.moved.values()),
        "timeline_on_survivor": timeline_on_survivor,
        "merge": merge,
        "undo": undo,
        "live_again": live_again,
    }


def clean(tag_prefix: str) -> None:
    from django.contrib.contenttypes.models import ContentType

    from crm import models
    from dedup.models import MergeJob

    content_type = ContentType.objects.get_for_model(models.Customer)
    pks = list(models.Customer.objects.filter(last_name__startswith=tag_prefix).values_list("pk", flat=True))
    for model in (models.Note, models.Task, models.Call, models.EmailMessage, models.SmsMessage, models.ChatMessage,
                  models.Attachment, models.Phone):  # fmt: skip
        model.objects.filter(content_type=content_type, object_id__in=pks)._raw_delete(model.objects.db)
    models.Order.objects.filter(customer_id__in=pks).delete()
    MergeJob.objects.filter(content_type=content_type, survivor_id__in=pks).delete()
    models.Customer.objects.filter(pk__in=pks).update(merged_into=None)
    models.Customer.objects.filter(pk__in=pks).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()

    workdir = None
    if not os.environ.get("DATABASE_URL"):
        workdir = Path(tempfile.mkdtemp(prefix="mergewise-bench-merge-"))
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from crm.models import Customer

    try:
        call_command("migrate", verbosity=0)
        if Customer.objects.exists():
            sys.exit(
                f"The database {connection.settings_dict['NAME']} has customers; point DATABASE_URL at an empty one."
            )
        user, _created = get_user_model().objects.get_or_create(username="bench-merge", defaults={"is_staff": True})
        user.is_superuser = True
        user.save()
        # A first small merge warms the caches (content types, the index's settings) so the two measured runs
        # compare like with like.
        run(records=2, rows=10, tag="Bench warm-up", user=user, connection=connection)
        results = [
            run(records=args.records, rows=max(args.rows // 10, args.records), tag="Bench small", user=user,
                connection=connection),
            run(records=args.records, rows=args.rows, tag="Bench large", user=user, connection=connection),
        ]  # fmt: skip
    finally:
        if workdir is None:
            clean("Petrov Bench")  # the rows this run made; the database stays as it was
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"database: {connection.vendor}")
    for result in results:
        merge, undo = result["merge"], result["undo"]
        print(
            f"{result['records']} customers, {result['rows']:,} timeline rows: "
            f"merge {merge['seconds']:.2f} s, {merge['queries']} queries "
            f"(+{merge['after_commit_queries']} by the match-key index after commit); "
            f"{result['moved']:,} rows moved, {result['timeline_on_survivor']:,} timeline rows on the survivor. "
            f"Undo {undo['seconds']:.2f} s, {undo['queries']} queries "
            f"(+{undo['after_commit_queries']} by the index); {result['live_again']} records live again"
        )
    small, large = (result["merge"]["queries"] for result in results)
    print(f"merge queries constant: {'yes' if small == large else 'NO'} ({small} for a tenth of the rows, {large})")
    seconds = results[1]["merge"]["seconds"]
    verdict = "within" if seconds < TARGET_SECONDS else "OVER"
    print(f"target: {verdict} {TARGET_SECONDS:.0f} s ({seconds:.2f} s for {results[1]['rows']:,} rows)")


if __name__ == "__main__":
    main()
