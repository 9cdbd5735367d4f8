"""Repeat sales (Bitrix24's rules): mark a returning customer's new leads and deals as repeat or repeat inquiry."""
from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass

from django.db import connections, router, transaction
from django.db.models import Q
from django.db.models.signals import post_save, pre_save
from django.utils.translation import gettext_lazy as _

from crm.models import Company, Customer, Deal, Lead, RepeatSalesSettings, Stage
from dedup.db import column, fetch, quote
from dedup.messages import Message

WON = Stage.Semantic.WON
LOST = Stage.Semantic.LOST
CLOSED = (WON, LOST)


@dataclass(frozen=True)
class RepeatFlags:
    """What a new lead or deal is: new, repeat, or repeat inquiry, and why."""

    is_repeat: bool = False
    is_repeat_inquiry: bool = False
    reason: str = ""


def _owner_q(*, customer: Customer | None, company: Company | None) -> Q | None:
    parts = Q()
    if customer is not None and customer.pk:
        parts |= Q(customer_id=customer.pk)
    if company is not None and company.pk:
        parts |= Q(company_id=company.pk)
    return parts or None


def _repeat_deals_all_lost(
    *, customer: Customer | None, company: Company | None, known: set[str] | None = None
) -> bool:
    """True when the owner's deals converted from repeat leads exist and none of them is open or won.

    ``known``: the stage meanings of those deals, already read by the caller. Else plain SQL: every incoming
    lead of a known customer asks (see dedup.db).
    """
    if known is not None:
        return bool(known) and known == {LOST}
    connection = connections[router.db_for_read(Deal)]
    sql = repeat_deal_semantics_sql(connection, customer="%s", company="%s")
    params = [customer.pk if customer else None, company.pk if company else None]
    semantics = {semantic for (semantic,) in fetch(Deal, sql, params + params[1:])}
    return bool(semantics) and semantics == {LOST}


def repeat_deal_semantics_sql(connection, *, customer: str, company: str) -> str:
    """Return a SELECT of the distinct stage meanings of the deals converted from repeat leads of a customer
    or its company (not archived); `customer` and `company` are SQL for their ids (a column or a placeholder;
    the company's is used twice, and may be NULL)."""
    deal, lead, stage = (quote(connection, model._meta.db_table) for model in (Deal, Lead, Stage))

    def deal_column(name: str) -> str:
        return column(connection, Deal, name, "d")

    return (
        f"SELECT DISTINCT {column(connection, Stage, 'semantic', 's')} FROM {deal} d "
        f"JOIN {lead} l ON {column(connection, Lead, 'id', 'l')} = {deal_column('source_lead')} "
        f"JOIN {stage} s ON {column(connection, Stage, 'id', 's')} = {deal_column('stage')} "
        f"WHERE ({deal_column('customer')} = {customer} OR ({company} IS NOT NULL AND {deal_column('company')} = {company})) "
        f"AND {column(connection, Lead, 'is_repeat', 'l')} AND NOT {deal_column('is_archived')}"
    )


def _excluded(customer: Customer | None) -> bool:
    return customer is not None and customer.exclude_from_repeat_sales


def lead_repeat_flags(
    *,
    customer: Customer | None,
    company: Company | None = None,
    completed_leads: Iterable[Lead] = (),
    settings: RepeatSalesSettings | None = None,
    repeat_deal_semantics: set[str] | None = None,
) -> RepeatFlags:
    """Return the flags of a new lead of this customer or company.

    ``repeat_deal_semantics``: the stage meanings of the owner's deals converted from repeat leads, when the
    caller read them already (crm.intake.selectors.known_customers).

    A lead linked to an existing customer or company is always a repeat, as is a lead from someone with
    completed (won or lost) leads; customers on the exceptions list never get repeat leads; when the
    customer's repeat leads became deals that were all lost, the new lead is a repeat inquiry.
    """
    settings = settings or RepeatSalesSettings.load()
    completed_leads = [lead for lead in completed_leads if lead.pk]
    if not settings.enabled:
        return RepeatFlags(reason=Message.of(_("Repeat sales mode is off.")))
    if _excluded(customer):
        return RepeatFlags(reason=Message.of(_("The customer is on the repeat sales exceptions list.")))
    owner = _owner_q(customer=customer, company=company)
    if owner is None and not completed_leads:
        return RepeatFlags(reason=Message.of(_("A new customer.")))
    if owner is not None and _repeat_deals_all_lost(customer=customer, company=company, known=repeat_deal_semantics):
        return RepeatFlags(
            is_repeat=True,
            is_repeat_inquiry=True,
            reason=Message.of(
                _("Repeat inquiry: the customer's earlier repeat leads became deals that were all lost.")
            ),
        )
    if completed_leads:
        reason = Message.of(
            _("Repeat lead: the customer has completed leads (%(leads)s)."),
            leads=", ".join(f"#{lead.pk}" for lead in completed_leads[:5]),
        )
    elif customer is not None and customer.pk:
        reason = Message.of(_("Repeat lead: linked to the existing customer %(customer)s."), customer=str(customer))
    else:
        reason = Message.of(_("Repeat lead: linked to the existing company %(company)s."), company=str(company))
    return RepeatFlags(is_repeat=True, reason=reason)


def deal_repeat_flags(
    *,
    customer: Customer | None,
    company: Company | None = None,
    source_lead: Lead | None = None,
    settings: RepeatSalesSettings | None = None,
    returning: bool = False,
) -> RepeatFlags:
    """Return the flags of a new deal of this customer or company.

    After a won deal every new deal of the customer is a repeat deal; a deal converted from a repeat lead
    is a repeat deal; in Simple CRM mode (no leads) deals play the part of leads: a deal of a customer with
    completed deals, won or lost, or of a customer the intake recognised (``returning``) is a repeat deal.
    """
    settings = settings or RepeatSalesSettings.load()
    if not settings.enabled:
        return RepeatFlags(reason=Message.of(_("Repeat sales mode is off.")))
    if _excluded(customer):
        return RepeatFlags(reason=Message.of(_("The customer is on the repeat sales exceptions list.")))
    if source_lead is not None and source_lead.is_repeat:
        return RepeatFlags(
            is_repeat=True,
            is_repeat_inquiry=source_lead.is_repeat_inquiry,
            reason=Message.of(_("Repeat deal: converted from a repeat lead.")),
        )
    owner = _owner_q(customer=customer, company=company)
    if owner is None:
        return RepeatFlags(reason=Message.of(_("A new customer.")))
    closed = set(
        Deal.objects.filter(owner, is_archived=False, stage__semantic__in=CLOSED).values_list(
            "stage__semantic", flat=True
        )
    )
    if WON in closed:
        return RepeatFlags(is_repeat=True, reason=Message.of(_("Repeat deal: the customer has a won deal.")))
    if settings.simple_crm_mode:
        if owner is not None and _simple_mode_repeat_deals_all_lost(owner):
            return RepeatFlags(
                is_repeat=True,
                is_repeat_inquiry=True,
                reason=Message.of(_("Repeat inquiry: the customer's earlier repeat deals were all lost.")),
            )
        if closed:
            return RepeatFlags(is_repeat=True, reason=Message.of(_("Repeat deal: the customer has completed deals.")))
        if returning:
            return RepeatFlags(
                is_repeat=True,
                reason=Message.of(
                    _("Repeat deal: linked to the existing customer %(customer)s."), customer=str(customer)
                ),
            )
    return RepeatFlags(reason=Message.of(_("The customer has no won deal yet.")))


def _simple_mode_repeat_deals_all_lost(owner: Q) -> bool:
    semantics = set(
        Deal.objects.filter(owner, is_repeat=True, is_archived=False).values_list("stage__semantic", flat=True)
    )
    return bool(semantics) and semantics == {LOST}


@transaction.atomic
def repeat_inquiries_refresh(*, customer_ids: Iterable[int]) -> int:
    """Mark as repeat inquiries the repeat leads (and their deals) of customers whose repeat deals were all lost.

    Run when a deal is saved: a repeat lead's deals all lost make it, and its deals, repeat inquiries; a deal
    reopened or won makes them plain repeats again. Return how many leads and deals changed.
    """
    settings = RepeatSalesSettings.load()
    customer_ids = sorted({pk for pk in customer_ids if pk})
    if not customer_ids or not settings.enabled:
        return 0
    rows = Deal.objects.filter(
        customer_id__in=customer_ids, source_lead__is_repeat=True, is_archived=False
    ).values_list("customer_id", "stage__semantic")
    semantics: dict[int, set[str]] = {pk: set() for pk in customer_ids}
    for customer_id, semantic in rows:
        semantics[customer_id].add(semantic)
    inquiry = [pk for pk, found in semantics.items() if found and found == {LOST}]
    not_inquiry = [pk for pk in customer_ids if pk not in inquiry]
    changed = 0
    excluded = set(Customer.objects.filter(pk__in=customer_ids, exclude_from_repeat_sales=True).values_list("pk", flat=True))
    inquiry = [pk for pk in inquiry if pk not in excluded]
    if inquiry:
        changed += Lead.objects.filter(customer_id__in=inquiry, is_repeat=True, is_repeat_inquiry=False).update(
            is_repeat_inquiry=True
        )
        changed += Deal.objects.filter(
            customer_id__in=inquiry, source_lead__is_repeat=True, is_repeat_inquiry=False
        ).update(is_repeat_inquiry=True)
    if not_inquiry:
        changed += Lead.objects.filter(
            customer_id__in=not_inquiry, is_repeat=True, is_repeat_inquiry=True, deals__isnull=False
        ).update(is_repeat_inquiry=False)
        changed += Deal.objects.filter(
            customer_id__in=not_inquiry, source_lead__is_repeat=True, is_repeat_inquiry=True
        ).update(is_repeat_inquiry=False)
    return changed


# --- Receivers: leads and deals made anywhere (admin, import, intake) get their flags -----------------

# The new lead or deal record_save_with_flags is saving: its caller decided its flags, and the pre_save
# receivers leave them. A context variable owned by this module, not state planted on the instance.
_flags_decided: ContextVar[Lead | Deal | None] = ContextVar("repeat_flags_decided", default=None)


def record_save_with_flags(record: Lead | Deal, *, flags: RepeatFlags) -> None:
    """Save a new lead or deal with the repeat flags its caller decided (the intake knows more than the
    receivers below: the repeat sales settings, and a customer it recognised by contacts), so the receivers,
    which decide the flags of leads and deals made anywhere else, leave them as given."""
    record.is_repeat = flags.is_repeat
    record.is_repeat_inquiry = flags.is_repeat_inquiry
    token = _flags_decided.set(record)
    try:
        record.save()
    finally:
        _flags_decided.reset(token)


def _lead_pre_save(sender, instance: Lead, raw=False, **kwargs):
    if raw or not instance._state.adding or instance.is_repeat or _flags_decided.get() is instance:
        return
    if not (instance.customer_id or instance.company_id):
        return
    flags = lead_repeat_flags(customer=instance.customer, company=instance.company)
    instance.is_repeat = flags.is_repeat
    instance.is_repeat_inquiry = instance.is_repeat_inquiry or flags.is_repeat_inquiry


def _deal_pre_save(sender, instance: Deal, raw=False, **kwargs):
    if raw or not instance._state.adding or instance.is_repeat or _flags_decided.get() is instance:
        return
    if not (instance.customer_id or instance.company_id or instance.source_lead_id):
        return
    flags = deal_repeat_flags(customer=instance.customer, company=instance.company, source_lead=instance.source_lead)
    instance.is_repeat = flags.is_repeat
    instance.is_repeat_inquiry = instance.is_repeat_inquiry or flags.is_repeat_inquiry


def _deal_post_save(sender, instance: Deal, raw=False, **kwargs):
    if raw or not instance.customer_id:
        return
    customer_id = instance.customer_id
    transaction.on_commit(lambda: repeat_inquiries_refresh(customer_ids=[customer_id]))


def connect_signals() -> None:
    """Connect the receivers (called once from CrmConfig.ready)."""
    pre_save.connect(_lead_pre_save, sender=Lead, dispatch_uid="crm.repeat_sales.lead_pre_save")
    pre_save.connect(_deal_pre_save, sender=Deal, dispatch_uid="crm.repeat_sales.deal_pre_save")
    post_save.connect(_deal_post_save, sender=Deal, dispatch_uid="crm.repeat_sales.deal_post_save")
