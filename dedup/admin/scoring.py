"""Admin of the learned scoring models: weights per field and level shown read-only, the threshold editable."""
import math

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from dedup.models import ScoringModel, ScoringWeight


def _bits(m: float, u: float) -> str:
    return "%+.1f" % math.log2(m / u) if m > 0 and u > 0 else "—"


class ScoringWeightInline(admin.TabularInline):
    model = ScoringWeight
    fields = ["field", "field_type", "level", "m", "u", "evidence", "evidence_contact", "evidence_no_contact"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["field", "position"]

    @admin.display(description=_("evidence, bits"))
    def evidence(self, weight):
        if weight.m <= 0 or weight.u <= 0:
            return "—"
        return "%+.1f" % math.log2(weight.m / weight.u)

    # A person name is weighed with whether both records hold a contact (ScoringWeight.m_contact): what the level
    # gives on each side, that part included.
    @admin.display(description=_("evidence, bits, both records giving a phone or an email"))
    def evidence_contact(self, weight):
        if weight.m_contact is None or weight.u_contact is None:
            return "—"
        return _bits(weight.m_contact, weight.u_contact)

    @admin.display(description=_("evidence, bits, otherwise"))
    def evidence_no_contact(self, weight):
        if weight.m_contact is None or weight.u_contact is None:
            return "—"
        return _bits(weight.m - weight.m_contact, weight.u - weight.u_contact)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # learned from the base and managers' decisions, never typed in


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
    list_display = ["entity", "threshold", "prior", "records", "candidate_pairs", "merges_folded",
                    "not_duplicates_folded", "learned_at"]
    fields = ["entity", "threshold", "prior", "records", "candidate_pairs", "merges_folded", "not_duplicates_folded",
              "learned_at"]
    readonly_fields = ["entity", "prior", "records", "candidate_pairs", "merges_folded", "not_duplicates_folded",
                       "learned_at"]
    inlines = [ScoringWeightInline]

    def has_add_permission(self, request):
        return False  # a model is learned (manage.py dedup_score), not created by hand

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "threshold" in form.changed_data:
            # The threshold decides which pairs are duplicates (dedup.engine.decide): the stored figures behind
            # the change-list counts and the filter are rebuilt in the background, as after a rule change.
            from dedup.engine.counts import counts_rebuild_send

            counts_rebuild_send(entity=obj.entity)
