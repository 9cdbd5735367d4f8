"""Register the CRM's entities with duplicate control: the fields that can be matched and how to read them."""
import hashlib
from datetime import timedelta

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from dedup.records import word_forms_register
from dedup.registry import EntitySpec, MatchField, register, related

from .models import Company, Customer, Deal, Lead, Order, Pipeline, Stage


def _phones(record):
    return [phone.e164 or phone.number for phone in related(record, "phones")]


def _phone_keys(record):
    # Phone.save stores the E.164 form (dedup.engine.normalize.phone_e164): the index reuses it instead of parsing again.
    return [(phone.e164, phone.number) for phone in related(record, "phones") if phone.e164]


def _emails(record):
    return [email.address for email in related(record, "emails")]


def _messengers(record):
    handles = []
    for handle in related(record, "messengers"):
        if handle.username:
            handles.append(f"{handle.channel}:@{handle.username}")
        if handle.chat_id:
            handles.append(f"{handle.channel}:#{handle.chat_id}")
    return handles


def _stage_closed(stage):
    # Won and lost stages are left out of duplicate control by default: a returning customer's new lead must
    # not be merged into a closed one (that would kill repeat sales).
    return stage.semantic != Stage.Semantic.OPEN


def _single(attr):
    def read(record):
        value = getattr(record, attr, "")
        return [value] if value else []

    return read


# What the merge screens count per record (and say will move): the whole timeline of any entity.
TIMELINE = ("notes", "tasks", "calls", "email_messages", "sms_messages", "chat_messages", "attachments")

PHONE = MatchField(
    "phone", _("phone"), "phone", _phones, prefetch=("phones",), read_keys=_phone_keys,
    columns=("phones__e164", "phones__number"), plain_column="phones__e164",
)
EMAIL = MatchField("email", _("email"), "email", _emails, prefetch=("emails",), columns=("emails__address",),
                   plain_column="emails__address")
MESSENGER = MatchField(
    "messenger", _("messenger"), "handle", _messengers, prefetch=("messengers",),
    columns=("messengers__channel", "messengers__username", "messengers__chat_id"),
)
FULL_NAME = MatchField(
    "full_name", _("full name"), "person_name", _single("full_name"),
    columns=("last_name", "first_name", "middle_name"),
)
FIRST_NAME = MatchField("first_name", _("first name"), "person_name", _single("first_name"), columns=("first_name",))
LAST_NAME = MatchField("last_name", _("last name"), "person_name", _single("last_name"), columns=("last_name",))

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
                columns=("company__name",),
            ),
        ),
        summary_fields=("full_name", "company", "owner"),
        related_counts=("orders", "deals", "leads", *TIMELINE),
        identity_field="full_name",
        custom_fields_attr="custom_fields",
    )
)
register(
    EntitySpec(
        key="company",
        model=Company,
        fields=(
            PHONE,
            EMAIL,
            MatchField("company_name", _("company name"), "company_name", _single("name"), columns=("name",)),
            MatchField("tax_id", _("tax ID"), "text", _single("tax_id"), columns=("tax_id",)),
            MatchField("website", _("website"), "website", _single("website"), columns=("website",)),
        ),
        summary_fields=("name", "tax_id", "owner"),
        related_counts=("customers", "deals", "leads", *TIMELINE),
        identity_field="company_name",
        custom_fields_attr="custom_fields",
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
            MatchField(
                "company_name", _("company name"), "company_name", _single("company_name"), columns=("company_name",)
            ),
            # The site snippet's cookie (static/crm/snippet.js): one browser, so one visitor.
            MatchField("visitor_id", _("visitor ID"), "identifier", _single("visitor_id"), columns=("visitor_id",)),
        ),
        stage_field="stage",
        stage_closed=_stage_closed,
        stage_choices={"pipeline__kind": Pipeline.Kind.LEAD},
        summary_fields=("title", "full_name", "stage", "owner"),
        related_counts=("deals", *TIMELINE),
        identity_field="full_name",
        custom_fields_attr="custom_fields",
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
                columns=("customer",),
            ),
            MatchField("title", _("title"), "text", _single("title"), columns=("title",)),
            MatchField("service", _("service"), "text", _single("service"), columns=("service",)),
        ),
        stage_field="stage",
        stage_closed=_stage_closed,
        stage_choices={"pipeline__kind": Pipeline.Kind.DEAL},
        equal_fields=("service",),
        summary_fields=("title", "customer", "stage", "amount", "owner"),
        related_counts=TIMELINE,
        custom_fields_attr="custom_fields",
    )
)
# Keys of the index are at most this long (dedup.engine.keys.KEY_MAX_LENGTH); a longer items key is hashed.
_ITEMS_KEY_MAX = 255


def _items_keys(order):
    """Return the order's items as one key: each product (SKU, else name, case-folded) with its quantity, sorted,
    so the same basket typed in another order of lines is the same key; shown as typed ("Hat ×1, Shoes ×2")."""
    lines = sorted(
        ((item.sku or item.name or "").casefold().strip(), item.quantity or 0, item.name or item.sku or "")
        for item in related(order, "items")
    )
    lines = [line for line in lines if line[0]]
    if not lines:
        return []
    key = "; ".join(f"{product} \u00d7{quantity}" for product, quantity, _name in lines)
    if len(key) > _ITEMS_KEY_MAX:
        key = "sha1:" + hashlib.sha1(key.encode()).hexdigest()
    shown = ", ".join(f"{name} \u00d7{quantity}" for _product, quantity, name in lines)
    return [(key, shown[:_ITEMS_KEY_MAX])]


def _total_keys(order):
    # A zero total is no evidence (an order not priced yet): it is not a key.
    total = order.total
    if total is None or total <= 0:
        return []
    return [(f"{total:.2f}", f"{total:.2f}")]


register(
    EntitySpec(
        key="order",
        model=Order,
        fields=(
            MatchField(
                "customer",
                _("customer"),
                "identifier",
                lambda o: [str(o.customer_id)] if o.customer_id else [],
                read_keys=lambda o: [(str(o.customer_id), f"#{o.customer_id}")] if o.customer_id else [],
                columns=("customer",),
            ),
            # An order's duplicate is the same basket (or the same total) of the same customer or contact placed
            # within the window (time_field below), as RetailCRM counts it; items and total are compared whole.
            MatchField(
                "items",
                _("items"),
                "identifier",
                lambda o: [key for key, _shown in _items_keys(o)],
                prefetch=("items",),
                read_keys=_items_keys,
                columns=("items__name", "items__sku", "items__quantity"),
            ),
            MatchField(
                "total",
                _("total"),
                "number",
                lambda o: [key for key, _shown in _total_keys(o)],
                read_keys=_total_keys,
                columns=("total",),
            ),
            MatchField(
                "phone",
                _("phone"),
                "phone",
                lambda o: [o.phone_e164 or o.phone] if o.phone else [],
                read_keys=lambda o: [(o.phone_e164, o.phone)] if o.phone_e164 else [],
                columns=("phone", "phone_e164"),
            ),
            MatchField("email", _("email"), "email", _single("email"), columns=("email",)),
        ),
        summary_fields=("number", "created_at", "customer", "status", "total", "items"),
        related_counts=("items", *TIMELINE),
        custom_fields_attr="custom_fields",
        time_field="created_at",
        default_window=timedelta(hours=24),
    )
)

# How each entity's name reads inside a sentence, per grammatical case (dedup.records): Russian needs them
# ("объединена с клиентом №12"); in English every form is the plain name.
word_forms_register(
    Customer,
    gen=pgettext_lazy("genitive case", "customer"),
    dat=pgettext_lazy("dative case", "customer"),
    acc=pgettext_lazy("accusative case", "customer"),
    ins=pgettext_lazy("instrumental case", "customer"),
    pre=pgettext_lazy("prepositional case", "customer"),
)
word_forms_register(
    Company,
    gen=pgettext_lazy("genitive case", "company"),
    dat=pgettext_lazy("dative case", "company"),
    acc=pgettext_lazy("accusative case", "company"),
    ins=pgettext_lazy("instrumental case", "company"),
    pre=pgettext_lazy("prepositional case", "company"),
)
word_forms_register(
    Lead,
    gen=pgettext_lazy("genitive case", "lead"),
    dat=pgettext_lazy("dative case", "lead"),
    acc=pgettext_lazy("accusative case", "lead"),
    ins=pgettext_lazy("instrumental case", "lead"),
    pre=pgettext_lazy("prepositional case", "lead"),
)
word_forms_register(
    Deal,
    gen=pgettext_lazy("genitive case", "deal"),
    dat=pgettext_lazy("dative case", "deal"),
    acc=pgettext_lazy("accusative case", "deal"),
    ins=pgettext_lazy("instrumental case", "deal"),
    pre=pgettext_lazy("prepositional case", "deal"),
)
word_forms_register(
    Order,
    gen=pgettext_lazy("genitive case", "order"),
    dat=pgettext_lazy("dative case", "order"),
    acc=pgettext_lazy("accusative case", "order"),
    ins=pgettext_lazy("instrumental case", "order"),
    pre=pgettext_lazy("prepositional case", "order"),
)
