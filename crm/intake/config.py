"""The intake's configuration (tokens, pipelines, stages, incoming lead and repeat sales settings), kept in memory.

Every intake request needs it, and reading it through the ORM cost more than the request's own decision
(five queries, most of their time spent compiling SQL). Each process keeps one snapshot per database and
reads only the token and the configuration stamp, in one plain SQL query, on each request. Any change to
the configuration writes a new stamp in the same transaction (``stamp_changed``, connected to the models'
signals in ``CrmConfig.ready``), so every process sees a change as soon as it is committed: a stale snapshot
is never used. (Kind 3 of the caching rule in docs/ARCHITECTURE.md: rows kept per process, checked against a
database stamp on every use.)
"""
from __future__ import annotations

import copy
import secrets
import threading
from dataclasses import dataclass, field

from django.conf import settings as django_settings
from django.db import connections, router
from django.db.models.signals import m2m_changed, post_delete, post_save

from crm.models import (
    IntakeConfigStamp,
    IntakeSettings,
    IntegrationToken,
    Pipeline,
    RepeatSalesSettings,
    Stage,
)
from crm.models.intake import token_hash
from dedup.db import column, converted, quote

OPEN = Stage.Semantic.OPEN


@dataclass
class IntakeConfig:
    """One snapshot of the configuration, shared by the requests of a process.

    Its settings, pipelines and stages are only read. The one thing that grows is ``tokens``: each token is
    loaded the first time it is used under this snapshot, and every request gets its own copy of it.
    """

    stamp: int | None
    repeat_settings: RepeatSalesSettings
    pipelines: dict[int, Pipeline]
    stages: dict[int, list[Stage]]  # pipeline id -> its stages in their order
    saved_settings: dict[int, IntakeSettings]  # pipeline id -> its saved incoming lead settings
    chosen_stage_ids: dict[int, tuple[int, ...]]  # pipeline id -> the stages its settings search in
    tokens: dict[int, IntegrationToken] = field(default_factory=dict)

    def token(self, token_id: int) -> IntegrationToken | None:
        """Return a copy of the token (the request may change its copy), loaded once per snapshot."""
        token = self.tokens.get(token_id)
        if token is None:
            token = IntegrationToken.objects.select_related("owner").filter(pk=token_id).first()
            if token is None:
                return None
            token.pipeline = self.pipelines.get(token.pipeline_id)
            self.tokens[token_id] = token
        return copy.copy(token)

    def default_pipeline(self, kind: str) -> Pipeline | None:
        """Return the first pipeline of this kind in the admin's order."""
        candidates = [pipeline for pipeline in self.pipelines.values() if pipeline.kind == kind]
        return min(candidates, key=lambda pipeline: (pipeline.sort_order, pipeline.pk), default=None)

    def pipeline_by_ref(self, value: str, *, kind: str) -> Pipeline | None:
        """Return the pipeline of this kind with this exact name or id (the lowest id when several)."""
        found = [
            pipeline
            for pipeline in self.pipelines.values()
            if pipeline.kind == kind and (pipeline.name == value or pipeline.pk == _as_id(value))
        ]
        return min(found, key=lambda pipeline: pipeline.pk, default=None)

    def first_open_stage(self, pipeline: Pipeline) -> Stage | None:
        return next((stage for stage in self.stages.get(pipeline.pk, []) if stage.semantic == OPEN), None)

    def stage_by_ref(self, pipeline: Pipeline, value: str) -> Stage | None:
        """Return the pipeline's stage with this exact name or id (the lowest id when several)."""
        found = [
            stage
            for stage in self.stages.get(pipeline.pk, [])
            if stage.name == value or stage.pk == _as_id(value)
        ]
        return min(found, key=lambda stage: stage.pk, default=None)

    def intake_settings(self, pipeline: Pipeline) -> IntakeSettings:
        """Return the pipeline's incoming lead settings, or the defaults (unsaved) when none were saved."""
        saved = self.saved_settings.get(pipeline.pk)
        return saved if saved is not None else IntakeSettings(pipeline=pipeline)

    def scope_stage_ids(self, settings: IntakeSettings) -> list[int]:
        """Return the stages whose leads and deals take part: the chosen ones, or the pipeline's open stages."""
        chosen = self.chosen_stage_ids.get(settings.pipeline_id) if settings.pk else None
        if chosen:
            return list(chosen)
        return [stage.pk for stage in self.stages.get(settings.pipeline_id, []) if stage.semantic == OPEN]


def _as_id(value: str) -> int | None:
    """Return the id a reference names ("12"), or None for a name."""
    return int(value) if value.isascii() and value.isdigit() else None


_snapshots: dict[str, IntakeConfig] = {}
_loading = threading.Lock()


def _alias() -> str:
    return router.db_for_read(IntegrationToken)


def current(stamp: int | None | type = ..., *, using: str | None = None) -> IntakeConfig:
    """Return the configuration as of this stamp (read from the database when not given)."""
    using = using or _alias()
    if stamp is ...:
        stamp = _read_stamp(using)
    snapshot = _snapshots.get(using)
    if snapshot is not None and snapshot.stamp == stamp:
        return snapshot
    with _loading:
        snapshot = _snapshots.get(using)
        if snapshot is None or snapshot.stamp != stamp:
            snapshot = _load(stamp, using)
            _snapshots[using] = snapshot
    return snapshot


def _load(stamp: int | None, using: str) -> IntakeConfig:
    pipelines = {pipeline.pk: pipeline for pipeline in Pipeline.objects.using(using).order_by("sort_order", "id")}
    stages: dict[int, list[Stage]] = {pk: [] for pk in pipelines}
    for stage in Stage.objects.using(using).order_by("sort_order", "id"):
        stage.pipeline = pipelines[stage.pipeline_id]  # set here: a shared instance never loads it lazily
        stages[stage.pipeline_id].append(stage)
    saved_settings = {}
    for item in IntakeSettings.objects.using(using).all():
        item.pipeline = pipelines[item.pipeline_id]
        saved_settings[item.pipeline_id] = item
    chosen: dict[int, list[int]] = {}
    through = IntakeSettings.search_stages.through
    by_settings_id = {item.pk: item.pipeline_id for item in saved_settings.values()}
    for settings_id, stage_id in through.objects.using(using).values_list("intakesettings_id", "stage_id"):
        chosen.setdefault(by_settings_id[settings_id], []).append(stage_id)
    repeat_settings = RepeatSalesSettings.objects.using(using).filter(id=RepeatSalesSettings.SINGLETON_ID).first()
    repeat_settings = repeat_settings or RepeatSalesSettings()
    repeat_settings.default_deal_pipeline = pipelines.get(repeat_settings.default_deal_pipeline_id)
    return IntakeConfig(
        stamp=stamp,
        repeat_settings=repeat_settings,
        pipelines=pipelines,
        stages=stages,
        saved_settings=saved_settings,
        chosen_stage_ids={pk: tuple(sorted(ids)) for pk, ids in chosen.items()},
    )


# --- The per-request query ----------------------------------------------------------------------------

# SQL text per database vendor, built from the models' _meta (kind 2 of the caching rule: derived from code only).
_stamp_sql: dict[str, str] = {}
_token_sql: dict[str, str] = {}


def _read_stamp(using: str) -> int | None:
    connection = connections[using]
    sql = _stamp_sql.get(using)
    if sql is None:
        sql = _stamp_sql[using] = (
            f"SELECT {column(connection, IntakeConfigStamp, 'stamp')} "
            f"FROM {quote(connection, IntakeConfigStamp._meta.db_table)} "
            f"WHERE {column(connection, IntakeConfigStamp, 'id')} = {IntakeConfigStamp.SINGLETON_ID}"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    return row[0] if row else None


def authenticate(raw: str) -> tuple[IntegrationToken, IntakeConfig] | None:
    """Return the active token with this secret and the configuration, from one query; None when unknown."""
    if not raw or len(raw) > 200:
        return None
    using = _alias()
    connection = connections[using]
    sql = _token_sql.get(using)
    if sql is None:
        sql = _token_sql[using] = _build_token_sql(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [token_hash(raw)])
        row = cursor.fetchone()
    if row is None:
        return None
    token_id, last_used_at, stamp = row
    config = current(stamp, using=using)
    token = config.token(token_id)
    if token is None:  # pragma: no cover - deleted between the two reads
        return None
    token.last_used_at = converted(IntegrationToken, "last_used_at", last_used_at, using=using)
    return token, config


def _build_token_sql(connection) -> str:
    token, stamp = IntegrationToken, IntakeConfigStamp
    return (
        f"SELECT {column(connection, token, 'id', 't')}, {column(connection, token, 'last_used_at', 't')}, "
        f"{column(connection, stamp, 'stamp', 's')} "
        f"FROM {quote(connection, token._meta.db_table)} t LEFT JOIN {quote(connection, stamp._meta.db_table)} s "
        f"ON {column(connection, stamp, 'id', 's')} = {IntakeConfigStamp.SINGLETON_ID} "
        f"WHERE {column(connection, token, 'key_hash', 't')} = %s AND {column(connection, token, 'is_active', 't')}"
    )


# --- Keeping the stamp current ------------------------------------------------------------------------


def stamp_changed(*, using: str | None = None) -> None:
    """Write a new stamp: every process reloads the configuration on its next request.

    A random value rather than a counter, so that a rolled-back change can never leave a stamp that a later
    change writes again (a snapshot cached under it would then be taken for current).
    """
    using = using or router.db_for_write(IntakeConfigStamp)
    connection = connections[using]
    table = quote(connection, IntakeConfigStamp._meta.db_table)
    pk, stamp = column(connection, IntakeConfigStamp, "id"), column(connection, IntakeConfigStamp, "stamp")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({pk}, {stamp}) VALUES (%s, %s) "
            f"ON CONFLICT ({pk}) DO UPDATE SET {stamp} = EXCLUDED.{stamp}",
            [IntakeConfigStamp.SINGLETON_ID, secrets.randbits(62)],
        )


def _on_change(sender, using=None, **kwargs):
    stamp_changed(using=using)


def connect_signals() -> None:
    """Renew the stamp whenever what the snapshot holds changes (called once from CrmConfig.ready)."""
    for model in (Pipeline, Stage, IntakeSettings, RepeatSalesSettings, IntegrationToken):
        uid = f"crm.intake.config.{model.__name__}"
        post_save.connect(_on_change, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"{uid}.delete")
    m2m_changed.connect(
        _on_change, sender=IntakeSettings.search_stages.through, dispatch_uid="crm.intake.config.search_stages"
    )
    # A token's responsible manager is part of the snapshot: deleting the user clears it on the token.
    post_delete.connect(_on_change, sender=django_settings.AUTH_USER_MODEL, dispatch_uid="crm.intake.config.user")
