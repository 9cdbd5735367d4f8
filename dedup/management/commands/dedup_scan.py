"""Find every group of duplicates of one entity and print it, or write it as JSON."""
from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from dedup import registry
from dedup.engine import rules
from dedup.engine.scan import ScanStats, find_groups, records_count
from dedup.management.common import entity_spec, progress_bar
from dedup.models import MatchKey

# Records whose external ids are read per query when writing the JSON.
EXTERNAL_ID_BATCH = 2000


class Command(BaseCommand):
    help = "Find all groups of duplicates of an entity (customer, company, lead, deal, order) by the active rules."

    def add_arguments(self, parser):
        parser.add_argument("entity", help="The entity to scan: " + ", ".join(s.key for s in registry.all_specs()))
        parser.add_argument("--json", dest="json_path", help="Write the groups to this file as JSON ('-': stdout).")
        parser.add_argument("--no-progress", action="store_true", help="Do not draw the progress bar.")

    def handle(self, *args, entity, json_path=None, no_progress=False, **options):
        spec = entity_spec(entity)
        compiled = rules.active_rules(spec.key)
        if not compiled:
            self.stderr.write(f"No active duplicate rule for {spec.key}: nothing to find.")
        started = time.monotonic()
        records = records_count(spec)
        expected = self._expected_rows(spec, compiled)
        stats = ScanStats()
        with progress_bar(self, total=expected, unit="keys", desc=f"Scanning {spec.key}", disable=no_progress) as bar:
            groups = list(find_groups(spec.key, rules_to_use=compiled, progress=bar.update, stats=stats))
            # The estimate counts every driving key; rules joined on a second field read fewer.
            bar.update(max(0, (bar.total or 0) - bar.n))
        seconds = round(time.monotonic() - started, 2)
        stats_out = {"records": records, "groups": len(groups), "seconds": seconds}
        if json_path:
            self._write_json(spec, groups, stats_out, json_path)
        self.stderr.write(
            f"{len(groups)} groups of duplicates ({sum(len(g.ids) for g in groups)} records) "
            f"among {records} {spec.key} records in {seconds} s."
        )
        if not json_path:
            for group in groups[:20]:
                self.stdout.write(f"{group.ids}: {'; '.join(group.reasons)}")
            if len(groups) > 20:
                self.stdout.write(f"... and {len(groups) - 20} more (use --json to get them all).")

    def _expected_rows(self, spec, compiled) -> int:
        from dedup.engine.scan import _driver

        kinds = [_driver(rule).lookup_kind for rule in compiled]
        return sum(MatchKey.objects.filter(entity=spec.key, kind=kind).count() for kind in kinds)

    def _write_json(self, spec, groups, stats, path) -> None:
        external = self._external_ids(spec, [pk for group in groups for pk in group.ids])
        payload = {
            "entity": spec.key,
            "groups": [
                {
                    "ids": group.ids,
                    "external_ids": [external.get(pk, "") for pk in group.ids],
                    "reasons": group.reasons,
                }
                for group in groups
            ],
            "stats": stats,
        }
        if path == "-":
            json.dump(payload, self.stdout, ensure_ascii=False)
            self.stdout.write("")
            return
        try:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(payload, handle, ensure_ascii=False)
        except OSError as error:
            raise CommandError(f"Cannot write {path}: {error.strerror or error}.")

    def _external_ids(self, spec, pks) -> dict[int, str]:
        try:
            spec.model._meta.get_field("external_id")
        except Exception:
            return {}
        found = {}
        for start in range(0, len(pks), EXTERNAL_ID_BATCH):
            batch = pks[start : start + EXTERNAL_ID_BATCH]
            found.update(spec.model._base_manager.filter(pk__in=batch).values_list("pk", "external_id"))
        return found
