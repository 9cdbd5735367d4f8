"""Rebuild the match-key index of one entity, or of all, from the records and the rules."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from dedup import registry
from dedup.engine import counts, index
from dedup.management.common import entity_spec, progress_bar


class Command(BaseCommand):
    help = "Rebuild the duplicate-control index (match keys) of an entity, or of every entity."

    def add_arguments(self, parser):
        parser.add_argument(
            "entity", nargs="?", help="Only this entity: " + ", ".join(s.key for s in registry.all_specs())
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar.")

    def handle(self, *args, entity=None, no_progress=False, **options):
        if entity:
            specs = [entity_spec(entity)]
        else:
            specs = registry.all_specs()
        for spec in specs:
            started = time.monotonic()
            total = spec.model._base_manager.count()
            desc = f"Indexing {spec.key}"
            with progress_bar(self, total=total, unit="records", desc=desc, disable=no_progress) as bar:
                rows = index.rebuild(spec, progress=bar.update)
            pairs = counts.counts_rebuild(entity=spec)
            self.stdout.write(
                f"{spec.key}: {total} records, {rows} keys, {pairs} duplicate pairs in "
                f"{time.monotonic() - started:.1f} s."
            )
