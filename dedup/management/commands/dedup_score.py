"""Learn an entity's scoring weights from its own records and print its groups with probabilities and reasons."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from dedup import registry
from dedup.engine.scoring import matcher
from dedup.engine.scoring.entity import scoring_learn
from dedup.engine.scoring.explain import summary_text


class Command(BaseCommand):
    help = "Scored matching: learn the weights of an entity without labels, store them, print the groups."

    def add_arguments(self, parser):
        parser.add_argument("entity", help="The entity: " + ", ".join(s.key for s in registry.all_specs()))
        parser.add_argument("--threshold", type=float, help="Match probability of a duplicate pair (default: stored).")
        parser.add_argument("--show", type=int, default=20, help="Print this many groups with their reasons.")

    def handle(self, *args, entity, threshold=None, show=20, **options):
        try:
            registry.get(entity)
        except KeyError:
            raise CommandError(f"Unknown entity {entity!r}.")
        if threshold is not None and not 0.5 <= threshold < 1:
            raise CommandError("The threshold is a probability from 0.5 to below 1.")
        started = time.monotonic()
        found = scoring_learn(entity=entity, threshold=threshold)
        row_of = {pk: row for row, pk in enumerate(found.pks)}
        model = found.result.model
        for group in found.groups[:show]:
            self.stdout.write("group " + ", ".join(f"#{pk}" for pk in group))
            first = row_of[group[0]]
            for pk in group[1:]:
                probability, reasons = matcher.explain(model, found.records, first, row_of[pk])
                self.stdout.write(f"  #{group[0]} ~ #{pk}: {summary_text(probability)}")
                for reason in reasons:
                    self.stdout.write(f"    {reason.text()}")
        self.stdout.write(
            f"{len(found.pks)} records, {len(found.result.pairs)} candidate pairs, {len(found.groups)} groups, "
            f"prior {model.prior:.3g}, {time.monotonic() - started:.1f} s; weights stored for {entity}."
        )
