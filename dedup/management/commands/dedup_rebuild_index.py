"""Rebuild the match-key index of one entity, or of all, from the records and the rules."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from dedup import registry
from dedup.engine import counts, index


class Command(BaseCommand):
    help = "Rebuild the duplicate-control index (match keys) of an entity, or of every entity."

    def add_arguments(self, parser):
        parser.add_argument(
            "entity", nargs="?", help="Only this entity: " + ", ".join(s.key for s in registry.all_specs())
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar.")

    def handle(self, *args, entity=None, no_progress=False, **options):
        if entity:
            try:
                specs = [registry.get(entity)]
            except KeyError:
                known = ", ".join(sorted(s.key for s in registry.all_specs()))
                raise CommandError(f"Unknown entity {entity!r}; choose one of: {known}.")
        else:
            specs = registry.all_specs()
        for spec in specs:
            started = time.monotonic()
            total = spec.model._base_manager.count()
            with tqdm(
                total=total, unit="records", unit_scale=True, desc=f"Indexing {spec.key}", file=_Stream(self.stderr),
                disable=no_progress, dynamic_ncols=True,
            ) as bar:
                rows = index.rebuild(spec, progress=bar.update)
            pairs = counts.counts_rebuild(entity=spec)
            self.stdout.write(
                f"{spec.key}: {total} records, {rows} keys, {pairs} duplicate pairs in "
                f"{time.monotonic() - started:.1f} s."
            )


class _Stream:
    """The command's stderr as tqdm wants it: written as is (no line ending added), flushed."""

    def __init__(self, wrapper):
        self.wrapper = wrapper

    def write(self, text):
        self.wrapper.write(text, ending="")

    def flush(self):
        self.wrapper.flush()
