"""Read-only queries of duplicate control's engine: records with duplicates, rule previews, admin choices."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connection, models
from django.db.models import Max
from django.db.models.expressions import RawSQL
from django.utils.translation import get_language

from dedup import registry
from dedup.engine import keys, rules
from dedup.engine.finder import duplicates_of_values
from dedup.engine.rules import CompiledRule
from dedup.models import Condition, MatchKey, NotDuplicate, Rule
from dedup.records import record_admin_url
from dedup.registry import CUSTOM_PREFIX, EntitySpec

# Records read to discover the keys of custom fields an admin can match on.
CUSTOM_FIELDS_SAMPLE = 500
# Groups shown under a rule in the admin.
PREVIEW_SAMPLE_GROUPS = 5
# How long a rule's preview is reused while neither the rule nor the index changes.
PREVIEW_CACHE_SECONDS = 600


# ---------------------------------------------------------------------------------------------------------------
# Records that have duplicates (the change list filter)


def with_duplicates(queryset: models.QuerySet, has: bool = True) -> models.QuerySet:
    """Return the records of the queryset that have a duplicate by the active rules (or, has=False, that have none).

    One SQL query over the match-key index, lazy like any filter: the same rules, stage scopes, must-be-equal
    fields, shared keys and "not a duplicate" pairs as the finder. A fuzzy condition is approximated by a shared
    blocking key (its similarity threshold is checked only by the finder). Rules only: neither vetoes nor the
    learned model's pairs (dedup.engine.decide); the screens read the stored figures (counts.with_stored_duplicates),
    which follow the finder and so the one decision.
    """
    spec = registry.for_model(queryset.model)
    if spec is None:
        raise ValueError(f"{queryset.model.__name__} is not registered with duplicate control")
    compiled = rules.active_rules(spec.key)
    if not compiled:
        return queryset.none() if has else queryset
    parts, params = [], []
    for rule in compiled:
        sql, rule_params = _rule_pairs_sql(spec, rule)
        parts.append(sql)
        params.extend(rule_params)
    subquery = RawSQL(" UNION ".join(parts), params)
    if has:
        return queryset.filter(pk__in=subquery)
    return queryset.exclude(pk__in=subquery)


def _rule_pairs_sql(spec: EntitySpec, rule: CompiledRule) -> tuple[str, list]:
    """SQL selecting the ids of records that have a partner under one rule (portable: joins and NOT EXISTS)."""
    q = connection.ops.quote_name
    table = q(MatchKey._meta.db_table)
    nd_table = q(NotDuplicate._meta.db_table)
    entity, record_id, kind, key, value = (q(name) for name in ("entity", "record_id", "kind", "key", "value"))
    params: list = []
    first, *others = rule.conditions
    joins = [
        f"JOIN {table} b0 ON b0.{entity} = a0.{entity} AND b0.{kind} = a0.{kind} AND b0.{key} = a0.{key} "
        f"AND b0.{record_id} <> a0.{record_id}"
        + (f" AND b0.{value} = a0.{value}" if first.method == Condition.Method.EXACT else "")
    ]
    where = [f"a0.{entity} = %s", f"a0.{kind} = %s"]
    where_params = [spec.key, first.lookup_kind]
    aliases = [("a0", first)]
    for index, condition in enumerate(others, start=1):
        a, b = f"a{index}", f"b{index}"
        joins.append(
            f"JOIN {table} {a} ON {a}.{entity} = a0.{entity} AND {a}.{record_id} = a0.{record_id} AND {a}.{kind} = %s"
        )
        params.append(condition.lookup_kind)
        joins.append(
            f"JOIN {table} {b} ON {b}.{entity} = a0.{entity} AND {b}.{record_id} = b0.{record_id} "
            f"AND {b}.{kind} = {a}.{kind} AND {b}.{key} = {a}.{key}"
            + (f" AND {b}.{value} = {a}.{value}" if condition.method == Condition.Method.EXACT else "")
        )
        aliases.append((a, condition))
    if rule.staged:
        for alias, owner in (("sa", "a0"), ("sb", "b0")):
            scope = f"{alias}.{value} = %s" if rule.stage_ids is None else None
            joins.append(
                f"JOIN {table} {alias} ON {alias}.{entity} = a0.{entity} AND {alias}.{record_id} = {owner}.{record_id} "
                f"AND {alias}.{kind} = %s"
            )
            params.append(keys.STAGE_KIND)
            if scope:
                where.append(scope)
                where_params.append(keys.STAGE_OPEN)
            elif rule.stage_ids:
                where.append(f"{alias}.{key} IN ({', '.join(['%s'] * len(rule.stage_ids))})")
                where_params.extend(str(pk) for pk in sorted(rule.stage_ids))
            else:
                where.append("1 = 0")
    if rule.equal_field:
        for alias, owner in (("ea", "a0"), ("eb", "b0")):
            joins.append(
                f"LEFT JOIN {table} {alias} ON {alias}.{entity} = a0.{entity} "
                f"AND {alias}.{record_id} = {owner}.{record_id} AND {alias}.{kind} = %s"
            )
            params.append(keys.equal_kind(rule.equal_field))
        where.append(f"COALESCE(ea.{key}, '') = COALESCE(eb.{key}, '')")
    if rule.window is not None:
        for alias, owner in (("ta", "a0"), ("tb", "b0")):
            joins.append(
                f"JOIN {table} {alias} ON {alias}.{entity} = a0.{entity} "
                f"AND {alias}.{record_id} = {owner}.{record_id} AND {alias}.{kind} = %s"
            )
            params.append(keys.TIME_KIND)
        # Time keys are zero-padded epoch seconds (keys.time_key): compared as numbers.
        where.append(f"ABS(CAST(ta.{key} AS BIGINT) - CAST(tb.{key} AS BIGINT)) <= %s")
        where_params.append(rule.window)
    if rule.contact_only:
        identity = rules.identity_kind(spec)
        for alias, condition in aliases:
            shared_sql, shared_params = _shared_keys_sql(spec, condition.kind, identity)
            where.append(f"{alias}.{key} NOT IN ({shared_sql})")
            where_params.extend(shared_params)
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {nd_table} nd WHERE nd.{entity} = %s AND ("
        f"(nd.{q('low_id')} = a0.{record_id} AND nd.{q('high_id')} = b0.{record_id}) OR "
        f"(nd.{q('low_id')} = b0.{record_id} AND nd.{q('high_id')} = a0.{record_id})))"
    )
    where_params.append(spec.key)
    sql = f"SELECT a0.{record_id} FROM {table} a0 {' '.join(joins)} WHERE {' AND '.join(where)}"
    return sql, params + where_params


def _shared_keys_sql(spec: EntitySpec, kind: str, identity: str | None) -> tuple[str, list]:
    """SQL selecting the shared keys of a kind: held by SHARED_KEY_MIN_PEOPLE different names or too many records.

    Only keys held by SHARED_KEY_MIN_PEOPLE records or more can be shared: they are picked first by a grouped
    scan of the index alone, so the names are joined for those few keys, never for the whole kind.
    """
    q = connection.ops.quote_name
    table = q(MatchKey._meta.db_table)
    entity, record_id, kind_column, key = (q(name) for name in ("entity", "record_id", "kind", "key"))
    crowded = (
        f"SELECT c.{key} FROM {table} c WHERE c.{entity} = %s AND c.{kind_column} = %s "
        f"GROUP BY c.{key} HAVING COUNT(*) >= %s"
    )
    crowded_params = [spec.key, kind, rules.SHARED_KEY_MIN_PEOPLE]
    if identity:
        sql = (
            f"SELECT h.{key} FROM {table} h LEFT JOIN {table} i ON i.{entity} = h.{entity} "
            f"AND i.{record_id} = h.{record_id} AND i.{kind_column} = %s "
            f"WHERE h.{entity} = %s AND h.{kind_column} = %s AND h.{key} IN ({crowded}) GROUP BY h.{key} "
            f"HAVING COUNT(DISTINCT i.{key}) >= %s OR COUNT(DISTINCT h.{record_id}) > %s"
        )
        params = [identity, spec.key, kind, *crowded_params, rules.SHARED_KEY_MIN_PEOPLE]
        return sql, params + [rules.SHARED_KEY_MAX_HOLDERS]
    sql = (
        f"SELECT h.{key} FROM {table} h WHERE h.{entity} = %s AND h.{kind_column} = %s GROUP BY h.{key} "
        f"HAVING COUNT(DISTINCT h.{record_id}) > %s"
    )
    return sql, [spec.key, kind, rules.SHARED_KEY_MAX_HOLDERS]


# ---------------------------------------------------------------------------------------------------------------
# What a rule would flag (the admin shows it after a save)


@dataclass
class PreviewRecord:
    pk: int
    label: str
    url: str  # "" when the model has no admin


@dataclass
class PreviewGroup:
    records: list[PreviewRecord]
    reasons: list[str]


@dataclass
class RulePreview:
    records: int = 0
    groups: int = 0
    sample: list[PreviewGroup] = field(default_factory=list)
    seconds: float = 0.0


def rule_preview(rule: Rule, *, sample: int = PREVIEW_SAMPLE_GROUPS) -> RulePreview | None:
    """Return how many records and groups this rule alone flags, with a few groups, by the scan's own code.

    On a large base that is a scan of seconds: the result is cached until the rule or the index changes (the
    newest key row's id is part of the cache key), at most PREVIEW_CACHE_SECONDS.
    """
    spec = rule.spec
    compiled = rules.compile_rules([rule])
    if spec is None or not compiled or compiled[0].veto:
        return None  # a veto finds no groups: it only rules pairs out
    # Kind 4 of the caching rule in docs/ARCHITECTURE.md (the shared Django cache): a result shown to a person,
    # never one a decision depends on, keyed by all that changes it; a deleted record (which writes no new key
    # row) shows at most PREVIEW_CACHE_SECONDS late.
    newest = MatchKey.objects.filter(entity=spec.key).aggregate(newest=Max("id"))["newest"] or 0
    signature = ";".join(
        f"{c.field.name}/{c.method}/{c.threshold}/{c.fold}" for c in compiled[0].conditions
    )
    stamp = rule.updated_at.timestamp() if rule.updated_at else 0
    cache_key = f"dedup:rule-preview:{get_language()}:{rule.pk}:{stamp}:{newest}:{signature}"
    preview = cache.get(cache_key)
    if preview is None:
        preview = _rule_preview(spec, compiled, sample)
        cache.set(cache_key, preview, PREVIEW_CACHE_SECONDS)
    return preview


def _rule_preview(spec: EntitySpec, compiled: list[CompiledRule], sample: int) -> RulePreview:
    from dedup.engine.scan import ScanStats, find_groups

    stats = ScanStats()
    groups = list(find_groups(spec.key, rules_to_use=compiled, stats=stats))
    preview = RulePreview(records=sum(len(group.ids) for group in groups), groups=len(groups), seconds=stats.seconds)
    shown = sorted(groups, key=lambda group: (-len(group.ids), group.ids[0]))[:sample]
    pks = [pk for group in shown for pk in group.ids[:10]]
    records = spec.model._base_manager.in_bulk(pks)
    for group in shown:
        preview.sample.append(
            PreviewGroup(
                records=[
                    PreviewRecord(pk, str(records[pk]) if pk in records else f"#{pk}", record_admin_url(spec.model, pk))
                    for pk in group.ids[:10]
                ],
                reasons=group.reasons,
            )
        )
    return preview


# ---------------------------------------------------------------------------------------------------------------
# Choices for the rule form


def custom_field_keys(spec: EntitySpec, *, sample: int = CUSTOM_FIELDS_SAMPLE) -> list[str]:
    """Return the keys of custom fields seen on the newest records (text and number values only)."""
    if not spec.custom_fields_attr:
        return []
    found: set[str] = set()
    values = spec.model._base_manager.order_by("-pk").values_list(spec.custom_fields_attr, flat=True)[:sample]
    for data in values:
        if isinstance(data, dict):
            found.update(
                str(name) for name, value in data.items() if isinstance(value, (str, int, float)) and value != ""
            )
    return sorted(found)


def custom_field_sample(spec: EntitySpec, key: str, *, sample: int = CUSTOM_FIELDS_SAMPLE) -> list[object]:
    """Return the values of one custom field on the newest records that have it (text and numbers)."""
    if not spec.custom_fields_attr:
        return []
    values = []
    for data in spec.model._base_manager.order_by("-pk").values_list(spec.custom_fields_attr, flat=True)[:sample]:
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
            values.append(value)
    return values


def field_choices(spec: EntitySpec, *, extra: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Return (field name, label) of every field a condition of this entity can use, custom fields included."""
    from django.utils.translation import gettext as _

    choices = [(match_field.name, str(match_field.label)) for match_field in spec.fields]
    known = {name for name, _label in choices}
    for name in custom_field_keys(spec):
        full = f"{CUSTOM_PREFIX}{name}"
        if full not in known:
            choices.append((full, _("custom field “%(name)s”") % {"name": name}))
            known.add(full)
    for name in extra:
        if name not in known and spec.has_field(name):
            choices.append((name, _("custom field “%(name)s”") % {"name": name[len(CUSTOM_PREFIX) :]}))
    return choices


def equal_field_choices(spec: EntitySpec) -> list[tuple[str, str]]:
    choices = []
    for name in spec.equal_fields:
        if spec.has_field(name):
            label = spec.field(name).label
        else:
            label = spec.model._meta.get_field(name).verbose_name
        choices.append((name, str(label)))
    return choices


def stages_of(spec: EntitySpec) -> list[models.Model]:
    """Return the stages of the entity's pipelines, in pipeline order."""
    stage_model = spec.stage_model
    if stage_model is None:
        return []
    return list(stage_model._default_manager.filter(**spec.stage_choices).select_related(*_stage_parents(spec)))


def closed_stages(spec: EntitySpec, stage_ids) -> list[models.Model]:
    """Return which of these stages are won or lost (rules leave them out unless chosen)."""
    wanted = {int(pk) for pk in stage_ids or ()}
    if not wanted or not spec.stage_closed:
        return []
    return [stage for stage in stages_of(spec) if stage.pk in wanted and spec.stage_closed(stage)]


def _stage_parents(spec: EntitySpec) -> list[str]:
    return [
        field.name
        for field in spec.stage_model._meta.get_fields()
        if field.many_to_one and field.concrete and field.related_model is not None
    ]


def stage_group_label(spec: EntitySpec, stage: models.Model) -> str:
    """Return the label of the group a stage is listed under: its pipeline (its first foreign key)."""
    parents = _stage_parents(spec)
    parent = getattr(stage, parents[0], None) if parents else None
    if parent is None:
        return str(spec.label_plural)
    return str(getattr(parent, "name", parent))


# ---------------------------------------------------------------------------------------------------------------
# Duplicates of a form being typed (the warning under the add and change forms' fields)

# The kinds of match fields a form asks about while the manager types: phones, emails, names and companies.
TYPING_KINDS = ("phone", "email", "person_name", "company_name")
# Matches a warning lists: a manager reads two or three; more only hide the form.
TYPING_LIMIT = 5


@dataclass(frozen=True)
class TypingField:
    """A match field a form asks about, and the form inputs (model paths, as in MatchField.columns) it reads."""

    name: str
    kind: str
    columns: tuple[str, ...]


@dataclass
class TypedDuplicate:
    """A saved record that the data being typed would duplicate, and why."""

    record: models.Model
    reasons: list[str]
    fields: list[str]

    @property
    def pk(self):
        return self.record.pk


def typing_fields(spec: EntitySpec) -> list[TypingField]:
    """Return the entity's match fields a form can check while typing (those whose inputs the form has)."""
    found = []
    for match_field in spec.fields:
        if match_field.kind in TYPING_KINDS and match_field.columns:
            found.append(TypingField(match_field.name, match_field.kind, tuple(match_field.columns)))
    return found


def typed_values(spec: EntitySpec, inputs: dict[str, list[str]]) -> dict[str, list[str]]:
    """Turn form inputs {model path: [typed values]} into the finder's {match field: [values]}.

    A field read from the record's own columns (a full name from its three parts) is read from an unsaved record
    holding what was typed, so the form is matched exactly as the saved record will be; a field read through a
    relation ("phones__number", "company__name") takes the typed values as they are (the related record's text).
    """
    values: dict[str, list[str]] = {}
    for typing_field in typing_fields(spec):
        columns = typing_field.columns
        typed = {column: [v.strip() for v in inputs.get(column, []) if v and v.strip()] for column in columns}
        if not any(typed.values()):
            continue
        if any("__" in column for column in columns):
            values[typing_field.name] = [value for column in columns for value in typed[column]]
            continue
        record = spec.model()
        for column in columns:
            if typed[column]:
                setattr(record, column, typed[column][0])
        read = [str(value) for value in spec.field(typing_field.name).read(record) if value]
        if read:
            values[typing_field.name] = read
    return values


def typed_duplicates(
    spec: EntitySpec,
    *,
    inputs: dict[str, list[str]],
    stage: models.Model | None = None,
    exclude_pk=None,
    limit: int = TYPING_LIMIT,
) -> list[TypedDuplicate]:
    """Return the saved records the data of a form being typed would duplicate, best first.

    The engine's own finder for unsaved data (the intake's): the active rules, the match-key index, "not a
    duplicate" pairs left aside only for saved records. A fixed number of queries whatever the base's size: the
    finder's (rules, key counts, candidates, records) and one for the conditions of the rules that matched.
    """
    values = typed_values(spec, inputs)
    if not values:
        return []
    matches = duplicates_of_values(spec.key, values=values, stage=stage, limit=limit + 1)
    matches = [match for match in matches if match.pk != exclude_pk][:limit]
    if not matches:
        return []
    rule_ids = {rule.pk for match in matches for rule in match.rules}
    fields_of: dict[int, list[str]] = {}
    for rule_id, field_name in Condition.objects.filter(rule_id__in=rule_ids).values_list("rule_id", "field"):
        fields_of.setdefault(rule_id, []).append(field_name)
    return [
        TypedDuplicate(
            record=match.record,
            reasons=[str(reason) for reason in match.reasons],
            fields=list(dict.fromkeys(name for rule in match.rules for name in fields_of.get(rule.pk, []))),
        )
        for match in matches
    ]

