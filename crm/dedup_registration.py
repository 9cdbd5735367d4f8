"""Register the CRM's entities with duplicate control: the fields that can be matched and how to read them."""
from django.utils.translation import gettext_lazy as _

from dedup.registry import EntitySpec, MatchField, register

from .models import Company, Customer, Deal, Lead, Order


def _phones(record):
    return [phone.e164 or phone.number for phone in record.phones.all()]


def _emails(record):
    return [email.address for email in record.emails.all()]


def _messengers(record):
    handles = []
    for handle in record.messengers.all():
        if handle.username:
            handles.append(f"{handle.channel}:@{handle.username}")
        if handle.chat_id:
            handles.append(f"{handle.channel}:#{handle.chat_id}")
    return handles


def _single(attr):
    def read(record):
        value = getattr(record, attr, "")
        return [value] if value else []

    return read


PHONE = MatchField("phone", _("phone"), "phone", _phones, prefetch=("phones",))
EMAIL = MatchField("email", _("email"), "email", _emails, prefetch=("emails",))
MESSENGER = MatchField("messenger", _("messenger"), "handle", _messengers, prefetch=("messengers",))
FULL_NAME = MatchField("full_name", _("full name"), "person_name", _single("full_name"))
FIRST_NAME = MatchField("first_name", _("first name"), "person_name", _single("first_name"))
LAST_NAME = MatchField("last_name", _("last name"), "person_name", _single("last_name"))

register(
    EntitySpec(
        key="customer",
        model=Customer,
        fields=(
            PHONE,
            EMAIL,
            MESSENGER,
            FULL_NAME,
            FIRST_NAME,
            LAST_NAME,
            MatchField(
                "company_name",
                _("company name"),
                "company_name",
                lambda c: [c.company.name] if c.company_id and c.company else [],
                prefetch=("company",),
            ),
        ),
        summary_fields=("full_name", "company", "owner"),
        related_counts=("orders", "deals", "leads", "notes", "tasks", "calls"),
    )
)
register(
    EntitySpec(
        key="company",
        model=Company,
        fields=(
            PHONE,
            EMAIL,
            MatchField("company_name", _("company name"), "company_name", _single("name")),
            MatchField("tax_id", _("tax ID"), "text", _single("tax_id")),
            MatchField("website", _("website"), "text", _single("website")),
        ),
        summary_fields=("name", "tax_id", "owner"),
        related_counts=("customers", "deals", "leads", "notes", "tasks"),
    )
)
register(
    EntitySpec(
        key="lead",
        model=Lead,
        fields=(
            PHONE,
            EMAIL,
            MESSENGER,
            FULL_NAME,
            FIRST_NAME,
            LAST_NAME,
            MatchField("company_name", _("company name"), "company_name", _single("company_name")),
        ),
        stage_field="stage",
        summary_fields=("title", "full_name", "stage", "owner"),
        related_counts=("deals", "notes", "tasks", "calls"),
    )
)
register(
    EntitySpec(
        key="deal",
        model=Deal,
        fields=(
            MatchField(
                "customer",
                _("customer"),
                "text",
                lambda d: [str(d.customer_id)] if d.customer_id else [],
            ),
            MatchField("title", _("title"), "text", _single("title")),
            MatchField("service", _("service"), "text", _single("service")),
        ),
        stage_field="stage",
        equal_fields=("service",),
        summary_fields=("title", "customer", "stage", "amount", "owner"),
        related_counts=("notes", "tasks", "calls"),
    )
)
register(
    EntitySpec(
        key="order",
        model=Order,
        fields=(
            MatchField("phone", _("phone"), "phone", lambda o: [o.phone_e164 or o.phone] if o.phone else []),
            MatchField("email", _("email"), "email", _single("email")),
        ),
        summary_fields=("number", "customer", "status", "total"),
        related_counts=("items", "notes", "tasks"),
    )
)
