"""Duplicate rules and their conditions, the match-key index, and the pairs managers marked "not a duplicate"."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dedup import registry


# A window longer than a year would make every repeat purchase of a regular customer a duplicate.
TIME_WINDOW_MAX_HOURS = 24 * 366


def entity_choices():
    """The registered entities, as model choices (read when the form is built, after the registry is filled)."""
    return [(spec.key, spec.label_plural) for spec in registry.all_specs()]


class Rule(models.Model):
    """A rule of one entity: two records are duplicates when all its conditions hold; an entity's rules are OR-ed.

    A veto (kind "veto") says the opposite: two records are never duplicates when one of its conditions' fields
    is filled in on both and differs (a different date of birth, a different tax ID), whatever the other rules
    or the match probability say (dedup.engine.decide)."""

    class Kind(models.TextChoices):
        DUPLICATE = "duplicate", _("always a duplicate when all conditions hold")
        VETO = "veto", _("never a duplicate when a field differs (veto)")

    entity = models.CharField(_("records"), max_length=32, choices=entity_choices, db_index=True)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(
        _("kind"),
        max_length=16,
        choices=Kind.choices,
        default=Kind.DUPLICATE,
        help_text=_(
            "A veto's conditions are the fields that must not differ: records whose values of one of them are both "
            "filled in and different are never duplicates."
        ),
    )
    active = models.BooleanField(_("active"), default=True)
    position = models.PositiveIntegerField(_("order"), default=0)
    # Leads and deals: the ids of the stages whose records take part. Empty means every open stage (won and lost
    # stages are left out). Ids rather than a many-to-many: dedup does not name the CRM's stage model.
    stage_ids = models.JSONField(_("stages"), default=list, blank=True)
    must_equal = models.CharField(
        _("must be equal"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("Records match only when this field is the same, e.g. the service of a deal."),
    )
    # Entities placed in time (orders): records further apart than this are never duplicates (a repeat purchase).
    # Empty: the entity's default (24 hours for orders, RetailCRM's rule).
    time_window_hours = models.PositiveIntegerField(
        _("within (hours)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(TIME_WINDOW_MAX_HOURS)],
        help_text=_(
            "Orders only: records placed further apart than this are never duplicates (a repeat purchase). "
            "Leave empty for the default, 24 hours."
        ),
    )
    auto_merge = models.BooleanField(
        _("merge automatically"),
        default=False,
        help_text=_("The daily scan merges the groups this rule finds without asking."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("duplicate rule")
        verbose_name_plural = _("duplicate rules")
        ordering = ["entity", "position", "id"]

    def __str__(self):
        return self.display_name

    @property
    def is_veto(self) -> bool:
        return self.kind == self.Kind.VETO

    @property
    def display_name(self) -> str:
        """The name in the reader's language when it is a default rule's (untouched) name."""
        from dedup.messages import rule_name

        return rule_name(self.name)

    @property
    def spec(self) -> registry.EntitySpec | None:
        try:
            return registry.get(self.entity)
        except KeyError:
            return None


class Condition(models.Model):
    """One field compared by one method; all the conditions of a rule must hold."""

    class Method(models.TextChoices):
        EXACT = "exact", _("exact (as typed)")
        NORMALIZED = "normalized", _("normalised")
        FUZZY = "fuzzy", _("similar (fuzzy)")

    rule = models.ForeignKey(Rule, verbose_name=_("rule"), on_delete=models.CASCADE, related_name="conditions")
    field = models.CharField(_("field"), max_length=100)
    method = models.CharField(_("method"), max_length=16, choices=Method.choices, default=Method.NORMALIZED)
    threshold = models.PositiveSmallIntegerField(
        _("similarity threshold"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text=_("0–100, for the fuzzy method only."),
    )
    fold_email = models.BooleanField(
        _("ignore dots and +tags"),
        default=False,
        help_text=_("Emails only: i.van+shop@gmail.com and ivan@gmail.com are one address."),
    )
    position = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("condition")
        verbose_name_plural = _("conditions")
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(method="fuzzy", threshold__isnull=False, threshold__lte=100))
                | (~Q(method="fuzzy") & Q(threshold__isnull=True)),
                name="dedup_condition_threshold_for_fuzzy_only",
            ),
        ]

    def __str__(self):
        spec = self.rule.spec if self.rule_id else None
        label = self.field
        if spec is not None and spec.has_field(self.field):
            label = spec.field(self.field).label
        if self.method == self.Method.FUZZY:
            return _("%(field)s similar by %(threshold)s%%") % {"field": label, "threshold": self.threshold}
        return f"{label}: {self.get_method_display()}"


class MatchKey(models.Model):
    """One normalised key of one record: the index every duplicate lookup and scan reads."""

    entity = models.CharField(_("entity"), max_length=32)
    record_id = models.BigIntegerField(_("record ID"))
    # The field and how the key was made: "phone", "email:fold" (provider-folded), "full_name:block" (fuzzy
    # blocking key), "_stage" and "_eq:service" (scope of leads and deals).
    kind = models.CharField(_("kind"), max_length=110)
    key = models.CharField(_("key"), max_length=255)
    # The value as read from the record (exact comparison, reasons in words); for a blocking key, the
    # normalised value that fuzzy comparison scores.
    value = models.CharField(_("value"), max_length=255, blank=True, default="")

    class Meta:
        verbose_name = _("match key")
        verbose_name_plural = _("match keys")
        indexes = [
            # Who else has this key (record_id included: the candidate lookup reads the index alone).
            models.Index(fields=["entity", "kind", "key", "record_id"], name="dedup_matchkey_lookup_idx"),
            # All the keys of a record (its card, its reindex).
            models.Index(fields=["entity", "record_id"], name="dedup_matchkey_record_idx"),
        ]

    def __str__(self):
        return f"{self.entity}#{self.record_id} {self.kind}={self.key}"


class IndexedKind(models.Model):
    """A kind of key the index holds for every record of an entity (what the entity's rules need)."""

    entity = models.CharField(_("entity"), max_length=32)
    kind = models.CharField(_("kind"), max_length=110)

    class Meta:
        verbose_name = _("indexed key kind")
        verbose_name_plural = _("indexed key kinds")
        constraints = [models.UniqueConstraint(fields=["entity", "kind"], name="dedup_indexedkind_unique")]

    def __str__(self):
        return f"{self.entity}: {self.kind}"


class NotDuplicate(models.Model):
    """Two records a manager said are not the same; stored low id first, so either order finds it."""

    entity = models.CharField(_("records"), max_length=32)
    low_id = models.BigIntegerField(_("record"))
    high_id = models.BigIntegerField(_("other record"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("marked by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("marked"), default=timezone.now)

    class Meta:
        verbose_name = _("not a duplicate")
        verbose_name_plural = _("not duplicates")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["entity", "low_id", "high_id"], name="dedup_notduplicate_pair_unique"),
            models.CheckConstraint(condition=Q(low_id__lt=F("high_id")), name="dedup_notduplicate_low_first"),
        ]
        indexes = [models.Index(fields=["entity", "high_id"], name="dedup_notduplicate_high_idx")]

    def __str__(self):
        return _("#%(low)s and #%(high)s are not duplicates") % {"low": self.low_id, "high": self.high_id}


class DuplicatePair(models.Model):
    """One record's duplicate by the active rules, kept current by the engine (dedup.engine.counts): a record's
    duplicate count and the "Has duplicates" filter are one indexed lookup here, never a self-join of the
    match keys. Stored both ways (A→B and B→A)."""

    entity = models.CharField(_("records"), max_length=32)
    record_id = models.BigIntegerField(_("record"))
    other_id = models.BigIntegerField(_("duplicate"))

    class Meta:
        verbose_name = _("duplicate pair")
        verbose_name_plural = _("duplicate pairs")
        constraints = [
            models.UniqueConstraint(fields=["entity", "record_id", "other_id"], name="dedup_duplicatepair_unique"),
        ]


class FiguresPending(models.Model):
    """A record whose stored duplicates (DuplicatePair) are to be found again, written when a change to it commits
    and taken by the refresh task (dedup.engine.counts), which refreshes the records waiting together: many
    changes in a row cost one refresh, however many requests made them."""

    entity = models.CharField(_("records"), max_length=32)
    record_id = models.BigIntegerField(_("record"))
    changed_at = models.DateTimeField(_("when"))

    class Meta:
        verbose_name = _("record waiting for its figures")
        verbose_name_plural = _("records waiting for their figures")
        constraints = [
            models.UniqueConstraint(fields=["entity", "record_id"], name="dedup_figurespending_unique"),
        ]
        indexes = [models.Index(fields=["entity", "changed_at"], name="dedup_figurespending_order")]


class FiguresRefreshQueued(models.Model):
    """A refresh task for an entity's waiting records (FiguresPending) sent to a queue and not yet taken by a worker.

    While it waits, further changes only add their records to FiguresPending: the one message takes them all when
    it runs (dedup.engine.counts). Deleted by the task as it starts, so a change committed after that sends again.
    """

    entity = models.CharField(_("records"), max_length=32)
    queue = models.CharField(_("queue"), max_length=32)
    sent_at = models.DateTimeField(_("sent"))

    class Meta:
        verbose_name = _("queued refresh of figures")
        verbose_name_plural = _("queued refreshes of figures")
        constraints = [
            models.UniqueConstraint(fields=["entity", "queue"], name="dedup_figuresrefreshqueued_unique"),
        ]
