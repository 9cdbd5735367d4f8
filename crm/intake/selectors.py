"""Select the leads, deals and customers an incoming request matches (read-only; the decisions are in services)."""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, router
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.utils.translation import gettext_lazy as _

from crm.models import Company, Customer, Deal, Email, IntakeSettings, Lead, MessengerHandle, Phone, Pipeline, Stage
from crm.models.intake import MATCHABLE_LEAD_FIELDS
from crm.services.repeat_sales import repeat_deal_semantics_sql  # the repeat sales rule's own SQL
from dedup import db, registry
from dedup.engine.normalize import email_key, handle_key, phone_e164, text_key
from dedup.messages import Message
from dedup.registry import CUSTOM_PREFIX

# Deals have none of a lead's contact fields; these of them can be matched when chosen.
MATCHABLE_DEAL_FIELDS = ("title", "amount", "external_id", "service")
# More candidates than this are not loaded: past MAX_MERGED_MATCHES the answer is "flag for review" anyway.
CANDIDATE_LIMIT = 20
OPEN = Stage.Semantic.OPEN


def matchable_field_choices() -> list[tuple[str, str]]:
    """Return the lead fields the admin can add to the incoming check, as (name, label)."""
    return [(name, str(Lead._meta.get_field(name).verbose_name)) for name in MATCHABLE_LEAD_FIELDS]


# A visitor id (the site snippet's cookie, static/crm/snippet.js): 16 to 64 letters, digits, "-" or "_". Anything
# else is ignored, never refused: a page's script is not an integration that could fix its request.
VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
VISITOR_COOKIE = "mw_vid"
VISITOR_HEADER = "X-Visitor-Id"


def visitor_id_clean(value: object) -> str:
    """Return a visitor id as stored and matched, or "" when the value is none (wrong type, length, characters)."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if VISITOR_ID.fullmatch(value) else ""


@dataclass(frozen=True)
class ContactKeys:
    """The normalised contact data of an incoming request: what it is matched and locked by."""

    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    # (channel, username as dedup.engine.normalize.handle_key keys it, chat id)
    handles: tuple[tuple[str, str, str], ...] = ()
    # (chosen field, its incoming value) for the admin-chosen fields that have a value
    fields: tuple[tuple[str, object], ...] = ()
    service: str = ""
    # The browser's visitor id (the site snippet's cookie): requests from one browser meet without a phone.
    visitor: str = ""

    @classmethod
    def build(
        cls,
        *,
        phones: Iterable[str] = (),
        emails: Iterable[str] = (),
        handles: Iterable[dict] = (),
        fields: Iterable[tuple[str, object]] = (),
        service: str = "",
        visitor: str = "",
    ) -> ContactKeys:
        phone_keys = tuple(dict.fromkeys(filter(None, (phone_e164(phone) for phone in phones))))
        email_keys = tuple(dict.fromkeys(filter(None, (email_key(email) for email in emails))))
        handle_keys = tuple(
            dict.fromkeys(
                (channel, username, chat_id)
                for channel, username, chat_id in (
                    (
                        handle["channel"],
                        _username_key(handle["channel"], handle.get("username")),
                        handle.get("chat_id") or "",
                    )
                    for handle in handles
                    if handle
                )
                if username or chat_id  # a username that is no handle at all ("Ivan Petrov") is not matched
            )
        )
        field_keys = tuple((name, value) for name, value in fields if value not in (None, ""))
        return cls(phone_keys, email_keys, handle_keys, field_keys, service or "", visitor_id_clean(visitor))

    @classmethod
    def of_lead(cls, incoming, *, settings: IntakeSettings) -> ContactKeys:
        chosen = [(name, incoming.value_of(name)) for name in settings.match_fields or ()]
        return cls.build(
            phones=incoming.phones,
            emails=incoming.emails,
            handles=[incoming.messenger] if incoming.messenger else [],
            fields=chosen,
            service=incoming.service,
            visitor=getattr(incoming, "visitor_id", ""),
        )

    def lock_keys(self) -> list[str]:
        """Return one string per key: requests sharing any of them are decided one after another."""
        keys = [f"phone:{phone}" for phone in self.phones] + [f"email:{email}" for email in self.emails]
        for channel, username, chat_id in self.handles:
            if username:
                keys.append(f"handle:{channel}:@{username}")
            if chat_id:
                keys.append(f"handle:{channel}:#{chat_id}")
        keys += [f"field:{name}={text_key(value)}" for name, value in self.fields]
        if self.visitor:
            keys.append(f"visitor:{self.visitor}")
        return keys

    @property
    def has_contacts(self) -> bool:
        return bool(self.phones or self.emails or self.handles)


def _username_key(channel: str, username: str | None) -> str:
    """Return a messenger username as the chat lookup compares it with LOWER(username): read by duplicate
    control's handle_key (``@Ivan_P`` -> ``ivan_p``), or "" when it is no handle at all.

    A number used as a username (WhatsApp) stays as written, lower-cased: handle_key would give its E.164
    form, but the column holds the username as it came.
    """
    key = handle_key(f"{channel}:@{username}") if username else None
    if not key:
        return ""
    body = key.partition(":")[2]  # handle_key keeps the channel it was given ("telegram:ivan_p")
    return username.strip().lstrip("@").lower() if body.startswith("+") else body


@dataclass
class Match:
    """A lead or deal an incoming request matches, and why."""

    record: Lead | Deal
    reasons: list[str] = field(default_factory=list)


def describe(matches: Iterable[Match]) -> str:
    """Return "Lead #5: same phone +7…; Deal #9: same email …" for the decision log."""
    parts = [
        Message.of(_("%(record)s (%(why)s)"), record=match.record, why=Message.join(match.reasons, "; "))
        for match in matches
    ]
    return Message.join(parts, "; ")


PHONE, EMAIL, HANDLE, VISITOR = "phone", "email", "handle", "visitor"


@dataclass
class ContactHits:
    """Who holds the incoming contacts: {(model, record id): [(kind, reason), ...]} for leads and customers."""

    found: dict[tuple[type, int], list[tuple[str, str]]] = field(default_factory=dict)
    # The customers holding the contacts, once loaded (known_customers): matching and repeat sales share them.
    customers: list[Customer] | None = None
    # {(model, record id): {(kind, key held)}}: the phones (E.164) and emails (lower-cased) each record holds.
    held: dict[tuple[type, int], set[tuple[str, str]]] = field(default_factory=dict)

    def holds_all(self, record, *, phones: Iterable[str], emails: Iterable[str]) -> bool:
        """Return True when the record is known to hold every one of these phone and email keys already."""
        held = self.held.get((type(record), record.pk), set())
        return all((PHONE, phone) in held for phone in phones) and all((EMAIL, email) in held for email in emails)

    def reasons(self, model, *, kinds: Iterable[str] = (PHONE, EMAIL, HANDLE)) -> dict[int, list[str]]:
        """Return {record id: reasons} of one model, counting only the given contact kinds."""
        kinds = set(kinds)
        result: dict[int, list[str]] = {}
        for (found_model, record_id), hits in self.found.items():
            if found_model is not model:
                continue
            reasons = list(dict.fromkeys(reason for kind, reason in hits if kind in kinds))
            if reasons:
                result[record_id] = reasons
        return result


def contact_hits(keys: ContactKeys, *, models: Iterable[type] = (Lead, Customer)) -> ContactHits:
    """Find the leads and customers holding any of the incoming phones, emails or chats, in one query.

    Phones are compared in E.164 (an indexed column), emails and usernames case-folded (the functional indexes
    on LOWER(...)), chat ids exactly. Plain SQL built from the models' _meta: every incoming request asks, and
    compiling the ORM's union took three times as long as running it.
    """
    models = list(models)
    by_type = {ContentType.objects.get_for_model(model).pk: model for model in models}
    hits = ContactHits()
    sql, params = _contact_hits_sql(keys, list(by_type))
    if not sql:
        return hits
    wanted_users = {username for _channel, username, _chat in keys.handles if username}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for content_type_id, object_id, kind, matched in rows:
        if kind == PHONE:
            reason = Message.of(_("same phone %(phone)s"), phone=matched)
        elif kind == EMAIL:
            reason = Message.of(_("same email %(email)s"), email=matched)
        elif kind == VISITOR:
            reason = Message.of(_("same browser (visitor ID %(visitor)s)"), visitor=matched[:8] + "…")
        else:
            channel, username, chat_id = (matched.split(" ") + ["", ""])[:3]
            shown = f"@{username}" if username and username in wanted_users else f"#{chat_id}"
            reason = Message.of(_("same %(channel)s chat %(handle)s"), channel=channel, handle=shown)
        hits.found.setdefault((by_type[content_type_id], object_id), []).append((kind, reason))
        if kind in (PHONE, EMAIL):
            hits.held.setdefault((by_type[content_type_id], object_id), set()).add((kind, matched))
    return hits


def _contact_hits_sql(keys: ContactKeys, content_type_ids: list[int]) -> tuple[str, list]:
    """Return the UNION ALL of one SELECT per kind of contact the request has: (content type, object id, kind,
    the matched key)."""
    quote = connection.ops.quote_name

    def column(model, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    parts: list[str] = []
    params: list = []
    owner_test, owner_params = db.among(connection, content_type_ids)

    def select(model, kind: str, matched: str, condition: str, condition_params: list) -> None:
        parts.append(
            f"SELECT {column(model, 'content_type')}, {column(model, 'object_id')}, %s, {matched} "
            f"FROM {quote(model._meta.db_table)} WHERE {column(model, 'content_type')} {owner_test} AND ({condition})"
        )
        params.extend([kind, *owner_params, *condition_params])

    if keys.phones:
        test, values = db.among(connection, keys.phones)
        select(Phone, PHONE, column(Phone, "e164"), f"{column(Phone, 'e164')} {test}", values)
    if keys.emails:
        folded = f"LOWER({column(Email, 'address')})"
        test, values = db.among(connection, keys.emails)
        select(Email, EMAIL, folded, f"{folded} {test}", values)
    if keys.handles:
        channel, chat_id = column(MessengerHandle, "channel"), column(MessengerHandle, "chat_id")
        username = f"LOWER({column(MessengerHandle, 'username')})"
        tests, values = [], []
        for handle_channel, handle_user, handle_chat in keys.handles:
            if handle_user:
                tests.append(f"({channel} = %s AND {username} = %s)")
                values += [handle_channel, handle_user]
            if handle_chat:
                tests.append(f"({channel} = %s AND {chat_id} = %s)")
                values += [handle_channel, handle_chat]
        matched = f"{channel} || ' ' || {username} || ' ' || {chat_id}"
        select(MessengerHandle, HANDLE, matched, " OR ".join(tests), values)
    lead_type = ContentType.objects.get_for_model(Lead).pk
    if keys.visitor and lead_type in content_type_ids:
        # Leads hold the visitor id themselves (a column with an index), not in a contact table.
        parts.append(
            f"SELECT %s, {column(Lead, 'id')}, %s, {column(Lead, 'visitor_id')} FROM {quote(Lead._meta.db_table)} "
            f"WHERE {column(Lead, 'visitor_id')} = %s AND {column(Lead, 'is_archived')} = %s"
        )
        params.extend([lead_type, VISITOR, keys.visitor, False])
    if not parts:
        return "", []
    return " UNION ALL ".join(parts) + f" LIMIT {CANDIDATE_LIMIT * 10}", params


def _field_q(model, name: str, value) -> tuple[Q, dict]:
    """Return a filter comparing a (chosen) field with the incoming value, and the annotations it needs."""
    if name.startswith(CUSTOM_PREFIX):
        key = name[len(CUSTOM_PREFIX) :]
        alias = "intake_custom_value"
        return Q(**{f"{alias}__iexact": str(value)}), {alias: KeyTextTransform(key, "custom_fields")}
    model_field = model._meta.get_field(name)
    if model_field.get_internal_type() in ("DecimalField", "IntegerField", "FloatField", "PositiveIntegerField"):
        return Q(**{name: value}), {}
    return Q(**{f"{name}__iexact": str(value).strip()}), {}


def _deals_the_rules_allow(deals: list[Deal], *, incoming) -> set[int]:
    """Return the ids of the deals the duplicate rules for deals allow the request to be merged into.

    The deal rules decide (seed 003): a customer's deals are the same deal only when the rule's "must be
    equal" field (the service) is equal and the stage is one the rule merges in, where won and lost stages
    take part only when an admin added them. The request is checked as if it were a deal in the candidate's
    stage (in Simple CRM mode: in its own stage).
    """
    from dedup.engine.finder import duplicates_of_values  # the duplicate engine; an import error here fails loudly

    spec = registry.for_model(Deal)
    equal_names = set(spec.equal_fields if spec is not None else ()) | {"service"}
    equal = {name: incoming.value_of(name) for name in sorted(equal_names)}
    own_stage = incoming.stage if incoming.stage.pipeline.kind == Pipeline.Kind.DEAL else None
    by_stage: dict[int, list[Deal]] = defaultdict(list)
    for deal in deals:
        if deal.customer_id:
            by_stage[own_stage.pk if own_stage else deal.stage_id].append(deal)
    allowed: set[int] = set()
    for stage_id, group in by_stage.items():
        stage = own_stage or group[0].stage
        found = duplicates_of_values(
            "deal",
            values={"customer": sorted({str(deal.customer_id) for deal in group})},
            stage=stage,
            equal=equal,
            limit=CANDIDATE_LIMIT,
        )
        allowed |= {match.record.pk for match in found}
    return allowed


def _scored_values(incoming, settings: IntakeSettings | None = None) -> dict[str, list]:
    """The incoming lead's values as the lead's registered fields read a saved lead (crm/dedup_registration.py).

    With the pipeline's settings, a contact it does not match by is left out: an administrator who switched off
    "match phone numbers" gets no decision that a shared phone carried, in the score as in the exact match.
    """
    use_phone = settings is None or settings.match_phone
    use_email = settings is None or settings.match_email
    return {
        "full_name": [incoming.full_name] if incoming.full_name else [],
        "first_name": [incoming.first_name] if incoming.first_name else [],
        "last_name": [incoming.last_name] if incoming.last_name else [],
        "company_name": [incoming.company_name] if incoming.company_name else [],
        "phone": list(incoming.phones or ()) if use_phone else [],
        "email": list(incoming.emails or ()) if use_email else [],
    }


def lead_scorer():
    """Return the scorer of the leads' learned model, or None when none was learned (one query to know)."""
    from dedup.engine import decide  # the duplicate engine; an import error here fails loudly

    spec = registry.for_model(Lead)
    return decide.scorer_for(spec) if spec is not None else None


def scored_lock_keys(incoming) -> list[str]:
    """Lock keys of the scored matcher's name blocks (the name's sounds; a word of it at the company): requests
    about one person with no contact in common are decided one after another too, like those sharing a phone.
    Only where a learned model decides by them (lead_scorer): without one they would make every request for an
    "Ivan Petrov" wait for every other, for nothing."""
    from dedup.engine import score_keys  # the duplicate engine's keys; an import error here fails loudly

    spec = registry.for_model(Lead)
    if spec is None:
        return []
    rows = score_keys.rows(spec, _scored_values(incoming))
    return [f"score:{key}" for _kind, key, _value in rows if key.startswith(("n:", "nc:"))]


def scored_lead_matches(
    incoming, *, stage_ids: Iterable[int], scorer, settings: IntakeSettings | None = None
) -> dict[int, list]:
    """Return {lead id: reasons} of the leads in these stages that the learned model alone makes duplicates of
    the incoming lead (the hard rules' contact matches are the intake's own, by its settings).

    Nothing when no model was learned for leads (``scorer`` None: lead_scorer, read by the caller). Otherwise the
    finder for data not saved yet, in the incoming lead's stage (its rules' stage scope, as a saved lead there
    would have).
    """
    from dedup.engine.finder import duplicates_of_values  # the duplicate engine; an import error fails loudly

    spec = registry.for_model(Lead)
    if spec is None or scorer is None:
        return {}
    stage = incoming.stage if incoming.stage.pipeline.kind == Pipeline.Kind.LEAD else None
    if stage is None:
        return {}
    stage_ids = set(stage_ids)
    found = duplicates_of_values(
        spec.key, values=_scored_values(incoming, settings), stage=stage, limit=CANDIDATE_LIMIT
    )
    return {
        match.pk: list(match.reasons)
        for match in found
        if match.rule is None and match.record.stage_id in stage_ids and not match.record.is_archived
    }


def find_matches(
    *, incoming, keys: ContactKeys, settings: IntakeSettings, hits: ContactHits, stage_ids: list[int], scorer
) -> list[Match]:
    """Return the leads and deals in the searched stages that the incoming request matches, newest first.

    Leads match on their own phones, emails and messenger handles, deals on their customer's; both also on
    the admin-chosen fields. Deals only match when their "must be equal" fields (e.g. service) are equal.
    ``stage_ids`` are the searched stages, from the configuration snapshot (IntakeConfig.scope_stage_ids);
    ``scorer`` the leads' learned model (lead_scorer), None when none was learned.
    """
    if not stage_ids:
        return []
    reasons: dict[tuple[type, int], list[str]] = defaultdict(list)
    kinds = [
        kind
        for kind, switched_on in ((PHONE, settings.match_phone), (EMAIL, settings.match_email),
                                  (HANDLE, settings.match_messenger), (VISITOR, True))
        if switched_on
    ]
    for lead_id, found in hits.reasons(Lead, kinds=kinds).items():
        reasons[(Lead, lead_id)] += found
    # The duplicate engine's own decision for what exact contacts miss (a name variant at the same company, no
    # shared phone): leads its learned model alone finds (dedup.engine.decide), in the searched stages.
    for lead_id, found in scored_lead_matches(
        incoming, stage_ids=stage_ids, scorer=scorer, settings=settings
    ).items():
        if (Lead, lead_id) not in reasons:
            reasons[(Lead, lead_id)] += found
    customer_reasons = hits.reasons(Customer, kinds=kinds)
    chosen = [(name, value) for name, value in keys.fields if value not in (None, "")]
    for name, value in chosen:
        if name.startswith(CUSTOM_PREFIX) or name in MATCHABLE_LEAD_FIELDS:
            condition, annotations = _field_q(Lead, name, value)
            ids = (
                Lead.objects.annotate(**annotations)
                .filter(condition, stage_id__in=stage_ids, is_archived=False)
                .values_list("pk", flat=True)[:CANDIDATE_LIMIT]
            )
            for lead_id in ids:
                reasons[(Lead, lead_id)].append(
                    Message.of(_("same %(field)s “%(value)s”"), field=_field_label(name), value=value)
                )
    deal_filter = Q(stage_id__in=stage_ids, is_archived=False)
    deal_ids_by_field: dict[int, list[str]] = defaultdict(list)
    for name, value in chosen:
        if name.startswith(CUSTOM_PREFIX) or name in MATCHABLE_DEAL_FIELDS:
            condition, annotations = _field_q(Deal, name, value)
            for deal_id in Deal.objects.annotate(**annotations).filter(condition, deal_filter).values_list("pk", flat=True)[
                :CANDIDATE_LIMIT
            ]:
                deal_ids_by_field[deal_id].append(
                    Message.of(_("same %(field)s “%(value)s”"), field=_field_label(name), value=value)
                )
    if customer_reasons:
        for deal_id, customer_id in _deals_of_known_customers(hits, customer_reasons, stage_ids):
            deal_ids_by_field[deal_id] += [
                Message.of(_("customer %(reason)s"), reason=reason) for reason in customer_reasons[customer_id]
            ]
    for deal_id, found in deal_ids_by_field.items():
        reasons[(Deal, deal_id)] += found

    lead_ids = [pk for model, pk in reasons if model is Lead]
    deal_ids = [pk for model, pk in reasons if model is Deal]
    records: list = []
    if lead_ids:
        records += _leads_in_stages(lead_ids, stage_ids)
    if deal_ids:
        deals = list(
            Deal.objects.select_related("stage__pipeline", "customer")
            .filter(pk__in=deal_ids, stage_id__in=stage_ids, is_archived=False)
            .order_by("-created_at", "-pk")[:CANDIDATE_LIMIT]
        )
        allowed = _deals_the_rules_allow(deals, incoming=incoming)
        records += [deal for deal in deals if deal.pk in allowed]
    records.sort(key=lambda record: (record.created_at, record.pk), reverse=True)
    return [Match(record=record, reasons=list(dict.fromkeys(reasons[(type(record), record.pk)]))) for record in records]


def contacts_of(
    record, *, phones: bool, emails: bool, handles: bool
) -> tuple[set[str], list[str], set[tuple[str, str, str]]]:
    """Return the record's phones (E.164), email addresses and messenger handles (channel, username, chat id),
    each only when asked for, in one plain SQL query."""
    connection = connections[router.db_for_read(Phone)]
    content_type = ContentType.objects.get_for_model(type(record)).pk
    parts, params = [], []
    for wanted, model, kind, columns in (
        (phones, Phone, PHONE, ("e164",)),
        (emails, Email, EMAIL, ("address",)),
        (handles, MessengerHandle, HANDLE, ("channel", "username", "chat_id")),
    ):
        if not wanted:
            continue
        selected = [db.column(connection, model, name) for name in columns] + ["''"] * (3 - len(columns))
        parts.append(
            f"SELECT %s, {', '.join(selected)} FROM {db.quote(connection, model._meta.db_table)} "
            f"WHERE {db.column(connection, model, 'content_type')} = %s "
            f"AND {db.column(connection, model, 'object_id')} = %s"
        )
        params += [kind, content_type, record.pk]
    found_phones, found_emails, found_handles = set(), [], set()
    if not parts:
        return found_phones, found_emails, found_handles
    for kind, first, second, third in db.fetch(Phone, " UNION ALL ".join(parts), params):
        if kind == PHONE:
            found_phones.add(first)
        elif kind == EMAIL:
            found_emails.append(first)
        else:
            found_handles.add((first, second, third))
    return found_phones, found_emails, found_handles


def _newest_in_stages(model, *, select: str, by: str, ids: list[int], stage_ids: list[int]) -> list[tuple]:
    """Return `select` of the model's rows whose `by` field is one of `ids`, in these stages and not archived,
    newest first (plain SQL, the model's table as "t": every request matching a record asks)."""
    connection = connections[router.db_for_read(model)]
    by_key, key_params = db.among(connection, ids)
    in_stage, stage_params = db.among(connection, stage_ids)

    def col(name: str) -> str:
        return db.column(connection, model, name, "t")

    sql = (
        f"SELECT {select} FROM {db.quote(connection, model._meta.db_table)} t "
        f"WHERE {col(by)} {by_key} AND {col('stage')} {in_stage} AND NOT {col('is_archived')} "
        f"ORDER BY {col('created_at')} DESC, {col('id')} DESC LIMIT {CANDIDATE_LIMIT}"
    )
    return db.fetch(model, sql, key_params + stage_params)


def _leads_in_stages(lead_ids: list[int], stage_ids: list[int]) -> list[Lead]:
    """Return these leads where they are in these stages and not archived, newest first."""
    rows = _newest_in_stages(Lead, select=db.select_list(Lead, "t"), by="id", ids=lead_ids, stage_ids=stage_ids)
    return [db.instance(Lead, row, "t") for row in rows]


def _deals_of_customers(customer_ids: list[int], stage_ids: list[int]) -> list[tuple[int, int]]:
    """Return (deal id, customer id) of the customers' newest deals in these stages, not archived."""
    connection = connections[router.db_for_read(Deal)]
    select = ", ".join(db.column(connection, Deal, name, "t") for name in ("id", "customer"))
    rows = _newest_in_stages(Deal, select=select, by="customer", ids=customer_ids, stage_ids=stage_ids)
    return [tuple(row) for row in rows]


def _deals_of_known_customers(hits: ContactHits, customer_reasons: dict, stage_ids: list[int]) -> list[tuple[int, int]]:
    """Return (deal id, customer id) of the matched customers' newest deals in these stages.

    On PostgreSQL the customers are loaded here, with these deals and their repeat deals' stage meanings, in
    one query (known_customers); elsewhere the deals are read on their own.
    """
    if not db.arrays(connections[router.db_for_read(Customer)]):
        return _deals_of_customers(list(customer_reasons), stage_ids)
    if hits.customers is None:
        hits.customers = known_customers(list(hits.reasons(Customer)), stage_ids=stage_ids)
    by_id = {customer.pk: customer for customer in hits.customers}
    return [
        (deal_id, customer_id)
        for customer_id in customer_reasons
        if customer_id in by_id
        for deal_id in by_id[customer_id].deals_in_stages
    ][:CANDIDATE_LIMIT]


def _customers_sql(connection, customer_ids: list[int], *, extra_columns: str = "") -> tuple[str, list]:
    by_id, params = db.among(connection, customer_ids)
    quote = db.quote
    sql = (
        f"SELECT {db.select_list(Customer, 'c')}, {db.select_list(Company, 'co')}{extra_columns} "
        f"FROM {quote(connection, Customer._meta.db_table)} c LEFT JOIN {quote(connection, Company._meta.db_table)} co "
        f"ON co.{quote(connection, Company._meta.pk.column)} = {db.column(connection, Customer, 'company', 'c')} "
        f"WHERE {db.column(connection, Customer, 'id', 'c')} {by_id} "
        f"AND NOT {db.column(connection, Customer, 'is_archived', 'c')}"
    )
    return sql, params


def _customer_of_row(row, width: int) -> Customer:
    customer = db.instance(Customer, row[:width], "c")
    customer.company = db.instance(Company, row[width:], "co") if customer.company_id else None
    return customer


def _customers_with_companies(customer_ids: list[int]) -> list[Customer]:
    """Return the customers with these ids that are not archived, each with its company loaded (plain SQL:
    every request from a known customer asks, and the ORM took 2 ms to compile this lookup)."""
    sql, params = _customers_sql(connections[router.db_for_read(Customer)], customer_ids)
    width = db.width(Customer)
    return [_customer_of_row(row, width) for row in db.fetch(Customer, sql, params)]


def known_customers(customer_ids: list[int], *, stage_ids: list[int]) -> list[Customer]:
    """PostgreSQL: return the customers (not archived) with their company, each also carrying
    ``deals_in_stages`` (its newest deals in these stages, not archived) and ``repeat_deal_semantics`` (the
    stage meanings of its and its company's deals converted from repeat leads, for repeat sales): one query
    where a returning customer's request took three."""
    connection = connections[router.db_for_read(Customer)]
    quote = db.quote

    def deal(name: str) -> str:
        return db.column(connection, Deal, name, "d")

    customer_id = db.column(connection, Customer, "id", "c")
    company_id = db.column(connection, Customer, "company", "c")
    deals = quote(connection, Deal._meta.db_table)
    in_scope = (
        f"ARRAY(SELECT {deal('id')} FROM {deals} d WHERE {deal('customer')} = {customer_id} "
        f"AND {deal('stage')} = ANY(%s) AND NOT {deal('is_archived')} "
        f"ORDER BY {deal('created_at')} DESC, {deal('id')} DESC LIMIT {CANDIDATE_LIMIT})"
    )
    repeat = f"ARRAY({repeat_deal_semantics_sql(connection, customer=customer_id, company=company_id)})"
    sql, params = _customers_sql(connection, customer_ids, extra_columns=f", {in_scope}, {repeat}")
    width = db.width(Customer) + db.width(Company)
    customers = []
    for row in db.fetch(Customer, sql, [list(stage_ids), *params]):
        customer = _customer_of_row(row[:width], db.width(Customer))
        customer.deals_in_stages = list(row[width])
        customer.repeat_deal_semantics = set(row[width + 1])
        customers.append(customer)
    return customers


def _field_label(name: str) -> str:
    if name.startswith(CUSTOM_PREFIX):
        return name[len(CUSTOM_PREFIX) :]
    try:
        return str(Lead._meta.get_field(name).verbose_name)
    except Exception:
        return str(Deal._meta.get_field(name).verbose_name)


def returning_customer(
    *, hits: ContactHits, company_name: str = ""
) -> tuple[Customer | None, Company | None, list[Lead]]:
    """Return the existing customer and company an incoming request comes from, and their completed leads.

    The customer is the one sharing the most contacts (the most recently created on a tie); the company is
    the customer's, or one whose name matches without legal form. Completed leads are won or lost leads
    sharing a contact with the request.
    """
    customer = company = None
    found = hits.reasons(Customer)
    if found:
        candidates = hits.customers if hits.customers is not None else _customers_with_companies(list(found))
        customer = max(candidates, key=lambda item: (len(found[item.pk]), item.pk), default=None)
    if customer is not None and customer.company_id:
        company = customer.company
    elif company_name.strip():
        # The duplicate rules for companies decide (legal forms and punctuation ignored), through their index.
        from dedup.engine.finder import duplicates_of_values

        matches = duplicates_of_values("company", values={"company_name": [company_name]}, limit=5)
        company = next((match.record for match in matches if not match.record.is_archived), None)
    completed: list[Lead] = []
    lead_ids = list(hits.reasons(Lead))
    if lead_ids:
        completed = list(
            Lead.objects.filter(pk__in=lead_ids, is_archived=False)
            .exclude(stage__semantic=OPEN)
            .order_by("-created_at")[:CANDIDATE_LIMIT]
        )
    if customer is None and company is None:
        linked = next((lead for lead in completed if lead.customer_id), None)
        if linked is not None:
            customer = Customer.objects.filter(pk=linked.customer_id, is_archived=False).select_related("company").first()
            company = customer.company if customer is not None else None
    return customer, company, completed


def chat_leads(*, channel: str, username: str, chat_id: str) -> list[Lead]:
    """Return the (not archived) leads holding this messenger chat, newest first."""
    keys = ContactKeys.build(handles=[{"channel": channel, "username": username, "chat_id": chat_id}])
    ids = list(contact_hits(keys, models=[Lead]).reasons(Lead))
    if not ids:
        return []
    return list(
        Lead.objects.filter(pk__in=ids, is_archived=False).select_related("stage", "customer").order_by("-created_at", "-pk")
    )
