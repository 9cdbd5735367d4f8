"""Learned scoring weights per entity: the match prior and threshold, and m and u per field and level."""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class ScoringModel(models.Model):
    """An entity's Fellegi–Sunter model: learned without labels, refined by managers' decisions."""

    entity = models.CharField(_("records"), max_length=32, unique=True)
    prior = models.FloatField(_("probability that two random records match"))
    threshold = models.FloatField(
        _("review threshold"),
        default=0.5,
        validators=[MinValueValidator(0.5), MaxValueValidator(0.9999)],
        help_text=_("Pairs with at least this match probability are duplicates."),
    )
    records = models.PositiveIntegerField(_("records learned from"), default=0)
    candidate_pairs = models.PositiveBigIntegerField(_("candidate pairs"), default=0)
    merges_folded = models.PositiveIntegerField(_("merges learned from"), default=0)
    not_duplicates_folded = models.PositiveIntegerField(_("'not a duplicate' decisions learned from"), default=0)
    learned_at = models.DateTimeField(_("learned"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Per field, what the term-frequency adjustment needs so the screens weigh a pair as the scan does:
    # {field: {"floor": share of a rare value, "values": {frequent value: share}, "shared": {value: people}}}
    # (dedup.engine.scoring.store.FREQUENT_VALUES per field at most; a value not listed is rare).
    frequencies = models.JSONField(_("value frequencies"), default=dict, blank=True, editable=False)

    class Meta:
        verbose_name = _("scoring model")
        verbose_name_plural = _("scoring models")

    def __str__(self):
        return str(self.entity)


class ScoringWeight(models.Model):
    """m and u of one comparison level of one field: log2(m / u) is the evidence that level gives."""

    model = models.ForeignKey(ScoringModel, related_name="weights", on_delete=models.CASCADE)
    field = models.CharField(_("field"), max_length=100)
    field_type = models.CharField(_("field type"), max_length=32)
    level = models.CharField(_("level"), max_length=32)
    position = models.PositiveSmallIntegerField(_("level order"))
    m = models.FloatField(_("m: share among matches"))
    u = models.FloatField(_("u: share among non-matches"))
    # A person name's level counted with whether both records hold a phone or an email (model.FieldWeights.
    # m_contact): the shares of matches and of non-matches that reach the level AND both hold one; empty when
    # the field weighs alone.
    m_contact = models.FloatField(_("m, both records giving a contact"), null=True, blank=True)
    u_contact = models.FloatField(_("u, both records giving a contact"), null=True, blank=True)

    class Meta:
        verbose_name = _("scoring weight")
        verbose_name_plural = _("scoring weights")
        ordering = ["model", "field", "position"]
        constraints = [
            models.UniqueConstraint(fields=["model", "field", "position"], name="dedup_scoringweight_level_unique"),
        ]

    def __str__(self):
        return f"{self.field}: {self.level}"
