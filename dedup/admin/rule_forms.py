"""Forms of the rules admin ("Duplicate control"): a rule with its stage scope, and its conditions."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _

from dedup import registry
from dedup.engine import keys, selectors
from dedup.models import Condition, Rule


def entity_group_label(spec) -> str:
    """The label of an entity's group of options (the rule page's script filters the groups by it)."""
    return str(spec.label_plural).capitalize()


def field_groups(extra: tuple[str, ...] = ()) -> list:
    """Return the condition field options of every entity, grouped by entity ("customer:phone", ...); `extra`
    keeps custom fields rules already use even when no recent record has them."""
    groups = [
        (entity_group_label(spec), [(f"{spec.key}:{name}", label) for name, label in selectors.field_choices(spec, extra=extra)])
        for spec in registry.all_specs()
    ]
    return [("", "---------"), *groups]


class RuleForm(forms.ModelForm):
    stage_ids = forms.TypedMultipleChoiceField(
        label=_("Stages in scope"),
        required=False,
        coerce=int,
        widget=forms.SelectMultiple(attrs={"size": 10, "class": "dedup-by-entity"}),
        help_text=_(
            "Leads and deals only. Leave empty to check every open stage: won and lost stages are left out, "
            "because merging a returning customer's new request into a closed one loses the repeat sale."
        ),
    )
    must_equal = forms.ChoiceField(
        label=_("Must be equal"),
        required=False,
        widget=forms.Select(attrs={"class": "dedup-by-entity"}),
        help_text=_("Deals only: records match only when this field is the same, e.g. the service."),
    )

    class Meta:
        model = Rule
        fields = ["entity", "name", "kind", "active", "position", "stage_ids", "must_equal", "time_window_hours", "auto_merge"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entity"].widget.attrs["class"] = "dedup-entity"
        self.fields["kind"].required = False
        stage_groups = []
        equal_groups = [("", "---------")]
        for spec in registry.all_specs():
            if spec.stage_field:
                by_group: dict[str, list] = {}
                for stage in selectors.stages_of(spec):
                    label = str(getattr(stage, "name", stage))
                    if spec.stage_closed and spec.stage_closed(stage):
                        label = _("%(stage)s (won or lost)") % {"stage": label}
                    group = f"{entity_group_label(spec)}: {selectors.stage_group_label(spec, stage)}"
                    by_group.setdefault(group, []).append((stage.pk, label))
                stage_groups.extend(by_group.items())
            equal = selectors.equal_field_choices(spec)
            if equal:
                equal_groups.append((entity_group_label(spec), [(f"{spec.key}:{name}", label) for name, label in equal]))
        self.fields["stage_ids"].choices = stage_groups
        self.fields["must_equal"].choices = equal_groups
        if self.instance.pk and self.instance.must_equal:
            self.initial["must_equal"] = f"{self.instance.entity}:{self.instance.must_equal}"

    def clean_kind(self):
        # A form (or an API client) that does not send the kind keeps the rule a duplicate rule, as before vetoes.
        return self.cleaned_data.get("kind") or Rule.Kind.DUPLICATE

    def clean_must_equal(self):
        value = self.cleaned_data.get("must_equal") or ""
        return value.split(":", 1)[1] if ":" in value else value

    def clean(self):
        cleaned = super().clean()
        entity = cleaned.get("entity")
        try:
            spec = registry.get(entity) if entity else None
        except KeyError:
            spec = None
        if spec is None:
            return cleaned
        stage_ids = cleaned.get("stage_ids") or []
        if stage_ids and not spec.stage_field:
            self.add_error("stage_ids", _("Only leads and deals have stages; leave this empty for %(entity)s.")
                           % {"entity": spec.label_plural})
        elif stage_ids:
            allowed = {stage.pk for stage in selectors.stages_of(spec)}
            foreign = [pk for pk in stage_ids if pk not in allowed]
            if foreign:
                self.add_error("stage_ids", _("Choose stages of the %(entity)s pipelines only.")
                               % {"entity": spec.label})
        if cleaned.get("kind") == Rule.Kind.VETO and cleaned.get("auto_merge"):
            self.add_error("auto_merge", _("A veto only rules pairs out; it cannot merge anything."))
        must_equal = cleaned.get("must_equal")
        if must_equal and must_equal not in spec.equal_fields:
            self.add_error("must_equal", _("%(entity)s cannot be required to have an equal %(field)s.")
                           % {"entity": entity_group_label(spec), "field": must_equal})
        if cleaned.get("time_window_hours") and not spec.time_field:
            self.add_error("time_window_hours", _("%(entity)s are not placed in time; leave the window empty.")
                           % {"entity": entity_group_label(spec)})
        return cleaned

    def clean_stage_ids(self):
        return sorted(set(self.cleaned_data.get("stage_ids") or []))


class ConditionForm(forms.ModelForm):
    # Grouped by entity; the page's script shows only the chosen entity's group.
    field = forms.ChoiceField(label=_("Field"), widget=forms.Select(attrs={"class": "dedup-by-entity"}))

    class Meta:
        model = Condition
        fields = ["field", "method", "threshold", "fold_email", "position"]

    def __init__(self, *args, field_choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        if field_choices is None:
            field_choices = field_groups((self.instance.field,) if self.instance.pk else ())
        self.fields["field"].choices = field_choices
        if self.instance.pk and self.instance.rule_id:
            self.initial["field"] = f"{self.instance.rule.entity}:{self.instance.field}"
        self.fields["threshold"].widget.attrs.update({"min": 0, "max": 100, "style": "width: 5em"})

    def clean_field(self):
        value = self.cleaned_data.get("field") or ""
        entity, _sep, name = value.partition(":")
        # The entity the option belonged to is checked against the rule's in the formset.
        self.field_entity = entity
        return name

    def clean(self):
        cleaned = super().clean()
        method = cleaned.get("method")
        threshold = cleaned.get("threshold")
        if method == Condition.Method.FUZZY:
            if threshold is None:
                self.add_error("threshold", _("A fuzzy condition needs a similarity threshold from 0 to 100."))
        elif threshold is not None:
            self.add_error("threshold", _("A threshold applies only to the fuzzy method; leave it empty."))
        return cleaned


class ConditionFormSet(BaseInlineFormSet):
    """The conditions of one rule: at least one, each a field of the rule's entity used the way it allows."""

    def get_form_kwargs(self, index):
        # The options (custom fields are read from recent records) are worked out once for all the rows.
        kwargs = super().get_form_kwargs(index)
        if not hasattr(self, "_field_choices"):
            existing = tuple(condition.field for condition in self.get_queryset()) if self.instance.pk else ()
            self._field_choices = field_groups(existing)
        kwargs["field_choices"] = self._field_choices
        return kwargs

    def clean(self):
        super().clean()
        entity = self.instance.entity
        try:
            spec = registry.get(entity)
        except KeyError:
            return  # the rule form reports the entity
        kept = 0
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            name = form.cleaned_data.get("field")
            if not name:
                continue
            kept += 1
            field_entity = getattr(form, "field_entity", entity)
            if field_entity != entity or not spec.has_field(name):
                form.add_error(
                    "field",
                    ValidationError(
                        _("This is not a field of %(entity)s; choose one of theirs."),
                        params={"entity": spec.label_plural},
                        code="foreign_field",
                    ),
                )
                continue
            match_field = spec.field(name)
            method = form.cleaned_data.get("method")
            if method == Condition.Method.FUZZY and match_field.kind not in keys.FUZZY_KINDS:
                form.add_error(
                    "method",
                    _("%(field)s cannot be compared by similarity; use exact or normalised.")
                    % {"field": str(match_field.label).capitalize()},
                )
            if form.cleaned_data.get("fold_email") and match_field.kind != "email":
                form.add_error("fold_email", _("Dots and +tags can be ignored in emails only."))
        if not kept:
            raise ValidationError(_("A rule needs at least one condition."), code="no_conditions")
