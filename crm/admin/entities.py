"""Admin of the CRM's entities: customers, companies, leads, deals and orders."""
from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from dedup.admin.card import DuplicateControlAdminMixin
from dedup.admin.mixins import MergeableAdminMixin

from ..filters import (
    CompanyFilterSet,
    CustomerFilterSet,
    DealFilterSet,
    LeadFilterSet,
    OrderFilterSet,
    admin_list_filters,
)
from ..models import Company, Customer, Deal, Lead, Order, Pipeline
from ..importing.resources import CompanyResource, CustomerResource, LeadResource, OrderResource
from .base import ContactsAdminMixin, EntityAdmin, EntityImportExportMixin
from .inlines import CONTACT_INLINES, TIMELINE_INLINES, OrderItemInline, TitleForm


@admin.display(description=_("title"), ordering="title")
def title_display(record):
    """The title in the reader's language (one the intake wrote) or as typed."""
    return record.display_title

CONTACT_SEARCH_FIELDS = ["phones__number", "phones__e164", "emails__address"]
RECORD_FIELDSET = (
    _("Record"),
    {
        "classes": ["collapse"],
        "fields": ["external_id", "custom_fields", "is_archived", "merged_into", "created_at", "updated_at"],
    },
)


@admin.register(Customer)
class CustomerAdmin(
    MergeableAdminMixin, DuplicateControlAdminMixin, EntityImportExportMixin, ContactsAdminMixin, EntityAdmin
):
    resource_classes = [CustomerResource]
    list_display = ["full_name_display", "company", "primary_phone", "primary_email", "owner", "created_at"]
    list_select_related = ["company", "owner"]
    list_filter = admin_list_filters(CustomerFilterSet)
    search_fields = [
        "last_name",
        "first_name",
        "middle_name",
        "company__name",
        *CONTACT_SEARCH_FIELDS,
        "messengers__username",
        "messengers__chat_id",
        "=external_id",
    ]
    search_help_text = _("Name, company, phone (any format), email, messenger or external ID.")
    autocomplete_fields = ["owner", "tags", "company"]
    inlines = [*CONTACT_INLINES, *TIMELINE_INLINES]
    fieldsets = [
        (None, {"fields": [("last_name", "first_name", "middle_name"), "company", "position", "birthday"]}),
        (_("Sales"), {"fields": ["owner", "source", "tags", "exclude_from_repeat_sales"]}),
        RECORD_FIELDSET,
    ]

    @admin.display(description=pgettext_lazy("person", "name"), ordering="last_name")
    def full_name_display(self, customer):
        return str(customer)


@admin.register(Company)
class CompanyAdmin(
    MergeableAdminMixin, DuplicateControlAdminMixin, EntityImportExportMixin, ContactsAdminMixin, EntityAdmin
):
    resource_classes = [CompanyResource]
    list_display = ["name", "tax_id", "primary_phone", "primary_email", "owner", "created_at"]
    list_select_related = ["owner"]
    list_filter = admin_list_filters(CompanyFilterSet)
    search_fields = ["name", "tax_id", "website", *CONTACT_SEARCH_FIELDS, "=external_id"]
    search_help_text = _("Name, tax ID, website, phone (any format), email or external ID.")
    inlines = [*CONTACT_INLINES, *TIMELINE_INLINES]
    fieldsets = [
        (None, {"fields": ["name", "tax_id", "website"]}),
        (_("Sales"), {"fields": ["owner", "tags"]}),
        RECORD_FIELDSET,
    ]


@admin.register(Lead)
class LeadAdmin(
    MergeableAdminMixin, DuplicateControlAdminMixin, EntityImportExportMixin, ContactsAdminMixin, EntityAdmin
):
    resource_classes = [LeadResource]
    pipeline_kind = Pipeline.Kind.LEAD
    form = TitleForm
    list_display = [title_display, "contact_name", "stage", "channel", "kind", "primary_phone", "owner", "created_at"]
    list_select_related = ["stage__pipeline", "owner"]
    list_filter = admin_list_filters(LeadFilterSet)
    search_fields = [
        "title",
        "last_name",
        "first_name",
        "middle_name",
        "company_name",
        *CONTACT_SEARCH_FIELDS,
        "messengers__username",
        "messengers__chat_id",
        "=external_id",
    ]
    search_help_text = _("Title, name, company, phone (any format), email, messenger or external ID.")
    autocomplete_fields = ["owner", "tags", "customer", "company"]
    inlines = [*CONTACT_INLINES, *TIMELINE_INLINES]
    fieldsets = [
        (None, {"fields": ["title", "channel", ("pipeline", "stage"), "amount", "source"]}),
        (
            _("Contact"),
            {"fields": [("last_name", "first_name", "middle_name"), "company_name", "customer", "company"]},
        ),
        (_("Sales"), {"fields": ["owner", "tags", ("is_repeat", "is_repeat_inquiry")]}),
        RECORD_FIELDSET,
    ]

    @admin.display(description=_("contact"), ordering="last_name")
    def contact_name(self, lead):
        return lead.full_name


@admin.register(Deal)
class DealAdmin(MergeableAdminMixin, DuplicateControlAdminMixin, EntityAdmin):
    pipeline_kind = Pipeline.Kind.DEAL
    form = TitleForm
    list_display = [title_display, "customer", "company", "stage", "amount", "service", "kind", "owner", "created_at"]
    list_select_related = ["customer", "company", "stage__pipeline", "owner"]
    list_filter = admin_list_filters(DealFilterSet)
    search_fields = ["title", "service", "customer__last_name", "customer__first_name", "company__name", "=external_id"]
    search_help_text = _("Title, service, customer, company or external ID.")
    autocomplete_fields = ["owner", "tags", "customer", "company", "source_lead"]
    fieldsets = [
        (None, {"fields": ["title", ("pipeline", "stage"), "amount", "service", "closed_at"]}),
        (_("Customer"), {"fields": ["customer", "company", "source_lead"]}),
        (_("Sales"), {"fields": ["owner", "tags", ("is_repeat", "is_repeat_inquiry")]}),
        RECORD_FIELDSET,
    ]


@admin.register(Order)
class OrderAdmin(MergeableAdminMixin, DuplicateControlAdminMixin, EntityImportExportMixin, EntityAdmin):
    resource_classes = [OrderResource]
    list_display = ["number", "customer", "status", "total", "phone", "email", "owner", "created_at"]
    list_select_related = ["customer", "owner"]
    list_filter = admin_list_filters(OrderFilterSet)
    search_fields = [
        "number",
        "=external_id",
        "email",
        "phone",
        "phone_e164",
        "customer__last_name",
        "customer__first_name",
    ]
    search_help_text = _("Number, external ID, email, phone (any format) or customer.")
    autocomplete_fields = ["owner", "tags", "customer"]
    readonly_fields = [*EntityAdmin.readonly_fields, "phone_e164"]
    inlines = [OrderItemInline, *TIMELINE_INLINES]
    fieldsets = [
        (None, {"fields": ["number", "customer", "status", "total"]}),
        (_("Contact"), {"fields": ["email", ("phone", "phone_e164")]}),
        (_("Sales"), {"fields": ["owner", "tags"]}),
        RECORD_FIELDSET,
    ]

    def search_by_phone(self, queryset, e164):
        return queryset.filter(phone_e164=e164)
