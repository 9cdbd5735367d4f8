"""Admin mixins the CRM's admin classes use: an archived (merged) record's page leads to its survivor."""
from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _

from dedup.merge.selectors import merged_survivor
from dedup.records import record_label


class MergeableAdminMixin:
    """Redirect the change page of a record absorbed by a merge to the record it was merged into."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        try:
            record = self.model._base_manager.filter(pk=unquote(object_id)).first()
        except (ValidationError, ValueError, TypeError):
            record = None
        survivor = merged_survivor(record) if record is not None else None
        if survivor is not None:
            opts = self.model._meta
            self.message_user(
                request,
                _("%(record)s was merged into %(survivor)s; this is the record it became.")
                % {"record": record_label(record), "survivor": record_label(survivor)},
                messages.INFO,
            )
            url = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[quote(survivor.pk)],
                current_app=self.admin_site.name,
            )
            return HttpResponseRedirect(url)
        return super().change_view(request, object_id, form_url, extra_context)
