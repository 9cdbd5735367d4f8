"""Decide what an incoming lead or messenger message becomes: a new record, an update, a merge or a review flag."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import ngettext_lazy
from django.utils.translation import gettext_lazy as _

from crm.intake import config as intake_config
from crm.intake import selectors
from crm.intake.config import IntakeConfig
from crm.models import (
    ChatMessage,
    Company,
    Customer,
    Deal,
    Email,
    IncomingRequest,
    IntakeSettings,
    IntegrationToken,
    Lead,
    MessengerHandle,
    Note,
    Phone,
    Pipeline,
    Stage,
    Tag,
    Task,
)
from crm.models.intake import MAX_MERGED_MATCHES
from crm.services import repeat_sales
from dedup.db import bulk_insert_instances, insert_together, lock_until_commit
from dedup.engine.counts import counts_mark_now
from dedup.engine.normalize import email_key, phone_e164, phones_in_text
from dedup.merge.fields import dump_value, is_shorter_form
from dedup.messages import Message, message_data
from dedup.registry import CUSTOM_PREFIX
from dedup.signals import records_bulk_saved

# The tag a lead gets when it matched too many records to be merged automatically.
REVIEW_TAG = "duplicate review"
# A task created after a merge is due this long after the request came in.
TASK_DUE = timedelta(days=1)
Decision = IncomingRequest.Decision


class IdempotencyConflict(Exception):
    """The idempotency key was already used with a different request body."""


@dataclass
class IncomingLead:
    """A validated incoming lead (the API serializer builds it)."""

    pipeline: Pipeline
    stage: Stage
    title: str = ""
    channel: str = Lead.Channel.WEB_FORM
    first_name: str = ""
    last_name: str = ""
    middle_name: str = ""
    company_name: str = ""
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    messenger: dict | None = None
    source: str = ""
    amount: Decimal | None = None
    service: str = ""
    external_id: str = ""
    custom_fields: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    comment: str = ""
    # The browser's visitor id (crm.intake.selectors.visitor_id_clean), "" when none came.
    visitor_id: str = ""

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.last_name, self.first_name, self.middle_name) if part)

    def value_of(self, name: str):
        """Return the incoming value of a lead field or of a custom field ("custom:<name>")."""
        if name.startswith(CUSTOM_PREFIX):
            return self.custom_fields.get(name[len(CUSTOM_PREFIX) :])
        if name == "service":
            return self.service
        return getattr(self, name, None)

    def display_title(self) -> str:
        """The title sent, or "Request from …" as a message (stored as such, shown in the reader's language)."""
        who = self.full_name or self.company_name or (self.phones[0] if self.phones else "")
        who = who or (self.emails[0] if self.emails else "")
        if not who and self.messenger:
            who = "@" + self.messenger["username"] if self.messenger.get("username") else self.messenger["chat_id"]
        return self.title or Message.of(_("Request from %(who)s"), who=who or Message.of(_("a new customer")))


@dataclass
class IncomingMessage:
    """A validated incoming messenger message."""

    pipeline: Pipeline
    stage: Stage
    channel: str
    text: str
    chat_id: str = ""
    username: str = ""
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    sent_at: datetime | None = None


@dataclass
class IntakeResult:
    status_code: int
    body: dict
    replayed: bool = False


def body_fingerprint(payload: object) -> str:
    """Return a hash of the request body that ignores key order and whitespace."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def stored_response(*, token: IntegrationToken, idempotency_key: str, body_hash: str) -> IntakeResult | None:
    """Return the response given earlier to this idempotency key, or None when the key is new."""
    if not idempotency_key:
        return None
    earlier = (
        IncomingRequest.objects.filter(token=token, idempotency_key=idempotency_key)
        .only("body_hash", "status_code", "response")
        .first()
    )
    if earlier is None:
        return None
    if earlier.body_hash != body_hash:
        raise IdempotencyConflict(idempotency_key)
    # The stored response leaves out the request's own id (a row written last cannot hold it).
    body = {"request_id": earlier.pk, **(earlier.response or {})}
    return IntakeResult(status_code=earlier.status_code or 200, body=body, replayed=True)


# --- Shared steps ------------------------------------------------------------------------------------


def _open_request(
    *, token: IntegrationToken, kind: str, idempotency_key: str, body_hash: str, payload: dict
) -> IncomingRequest | IntakeResult:
    """Write the request row first when it claims an idempotency key: a concurrent request with the same key
    waits on the unique index and then gets the stored response. A request without a key claims nothing (on
    PostgreSQL the advisory locks on its contacts serialise requests about one person; SQLite transactions
    take the write lock when they begin), so its row is written once, by _finish, with the outcome.
    """
    row = IncomingRequest(token=token, kind=kind, idempotency_key=idempotency_key, body_hash=body_hash, payload=payload)
    if not idempotency_key:
        return row
    try:
        with transaction.atomic():
            row.save(force_insert=True)
            return row
    except IntegrityError:
        replay = stored_response(token=token, idempotency_key=idempotency_key, body_hash=body_hash)
        if replay is None:  # pragma: no cover - the row that made the insert fail must be there
            raise
        return replay


def contact_lock_ids(keys: Iterable[str]) -> list[int]:
    """Return the advisory lock ids of these lock keys (selectors.ContactKeys.lock_keys, scored_lock_keys), sorted."""
    return sorted(
        {int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big", signed=True) for key in keys}
    )


def _lock_contact_keys(keys: Iterable[str]) -> None:
    """Serialise requests about the same person until this transaction ends.

    PostgreSQL: one transaction-scoped advisory lock per normalised contact key, taken in a fixed order
    so two requests sharing several keys cannot deadlock. SQLite has a single writer, and the request row
    written first already holds it.
    """
    lock_until_commit(connection, contact_lock_ids(keys))


def _mark_token_used(token: IntegrationToken) -> None:
    """Record when the integration was last used, after the commit and at most once a minute.

    After the commit, so that concurrent requests of one integration never queue on the token's row lock.
    """
    now = timezone.now()
    if token.last_used_at is not None and (now - token.last_used_at).total_seconds() <= 60:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(seconds=60))
    transaction.on_commit(
        lambda: IntegrationToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
    )


def _finish(
    request: IncomingRequest,
    *,
    status_code: int,
    decision: str,
    reason: str,
    lead: Lead | None = None,
    leads: Iterable[Lead] = (),
    deal: Deal | None = None,
    customer: Customer | None = None,
    flagged: bool = False,
    phones_found: Iterable[str] = (),
    pending: Pending | None = None,
    changes: list[dict] | None = None,
) -> IntakeResult:
    """Write the request's row with its outcome (and the rows left pending, in the same round trip)."""
    leads = [item for item in leads if item is not None]
    primary = lead or (leads[0] if leads else None)
    repeat_of = primary or deal
    body = {
        "decision": decision,
        "reason": reason,
        "lead": primary.pk if primary else None,
        "leads": [item.pk for item in leads] or ([primary.pk] if primary else []),
        "deal": deal.pk if deal else None,
        "customer": (customer.pk if customer else None)
        or (getattr(repeat_of, "customer_id", None) if repeat_of else None),
        "is_repeat": bool(repeat_of and repeat_of.is_repeat),
        "is_repeat_inquiry": bool(repeat_of and repeat_of.is_repeat_inquiry),
        "flagged_for_review": flagged,
        "phones_found": list(phones_found),
    }
    outcome = {
        "decision": decision, "reason": str(reason), "reason_data": message_data(reason), "status_code": status_code,
        "response": body, "lead": primary, "deal": deal, "changes": changes or [],
    }
    groups = list(pending.groups) if pending is not None else []
    if request.pk is None:
        for name, value in outcome.items():
            setattr(request, name, value)
        insert_together([*groups, (IncomingRequest, [request])])
    else:
        insert_together(groups)
        IncomingRequest.objects.filter(pk=request.pk).update(**outcome)
    # The request's last write: its records wait for their figures from the same commit (one WAL flush, not two).
    counts_mark_now()
    return IntakeResult(status_code=status_code, body={"request_id": request.pk, **body})


def _title(text) -> dict:
    """Return a title the intake writes as the fields that store it: the text (cut to fit) and its message."""
    return {"title": str(text)[:255], "title_data": message_data(text)}


def _note(record, text: str) -> Note:
    """A note the system writes: its text as written, and its message (rendered in the reader's language)."""
    return Note(
        content_type=ContentType.objects.get_for_model(type(record)),
        object_id=record.pk,
        text=str(text),
        message=message_data(text),
    )


class Pending:
    """Rows of a new record that nothing reads again during the request (its contacts, its note): written by
    _finish together with the request's own row, in one round trip on PostgreSQL."""

    def __init__(self):
        self.groups: list[tuple[type, list]] = []

    def add(self, model, instances: list) -> None:
        if instances:
            self.groups.append((model, list(instances)))


def _add_note(record, text: str, *, pending: Pending | None = None) -> Note:
    """Write a note on the record's timeline (a plain insert: notes have no save() logic or receivers)."""
    note = _note(record, text)
    if pending is not None:
        pending.add(Note, [note])
    else:
        bulk_insert_instances(Note, [note])
    return note


def _add_contacts(
    record,
    *,
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    handles: Iterable[dict] = (),
    fresh=False,
    pending: Pending | None = None,
):
    """Add phones, emails and messenger handles the record does not have yet; return what was added.

    ``fresh``: the record was just created and has none, so they are not read. ``pending``: the rows are
    written with the request's own row at the end (only for a fresh record whose contacts nothing reads back
    during the request; duplicate control takes its keys from the instances).
    """
    content_type = ContentType.objects.get_for_model(type(record))
    owned = {"content_type": content_type, "object_id": record.pk}
    phones, emails, handles = list(phones), list(emails), [handle for handle in handles if handle]
    have_phones, have_email_addresses, have_handles = (
        selectors.contacts_of(record, phones=bool(phones), emails=bool(emails), handles=bool(handles))
        if not fresh
        else (set(), [], set())
    )
    have_emails = {email_key(address) or address.lower() for address in have_email_addresses}
    has_primary_phone = bool(have_phones)
    new_phones = []
    for number in phones:
        e164 = phone_e164(number) or ""
        if e164 and e164 in have_phones:
            continue
        have_phones.add(e164)
        # Phone.save() normally fills e164; bulk_create skips save(), so it is set here.
        new_phones.append(Phone(number=number, e164=e164, is_primary=not has_primary_phone and not new_phones, **owned))
    new_emails = []
    for address in emails:
        key = email_key(address) or address.lower()
        if key in have_emails:
            continue
        have_emails.add(key)
        new_emails.append(Email(address=address, is_primary=not have_emails - {key} and not new_emails, **owned))
    new_handles = []
    for handle in handles:
        username, chat_id = handle.get("username", ""), handle.get("chat_id", "")
        known = [
            (channel, known_user, known_chat)
            for channel, known_user, known_chat in have_handles
            if channel == handle["channel"]
            and ((username and known_user.lower() == username.lower()) or (chat_id and known_chat == chat_id))
        ]
        if known:
            _complete_handle(record, handle, known[0], owned)
            continue
        have_handles.add((handle["channel"], username, chat_id))
        new_handles.append(MessengerHandle(channel=handle["channel"], username=username, chat_id=chat_id, **owned))
    if pending is not None and fresh:
        for model, rows in ((Phone, new_phones), (Email, new_emails), (MessengerHandle, new_handles)):
            pending.add(model, rows)
    else:
        insert_together([(Phone, new_phones), (Email, new_emails), (MessengerHandle, new_handles)])
    if fresh:
        # A new record: duplicate control takes its keys from the instance and the rows just made, instead of
        # reading them back (the relation names are the ones the CRM registered its fields with).
        records_bulk_saved.send(
            sender=type(record), model=type(record), pks=[record.pk], created=True, records=[record],
            related={record.pk: {"phones": new_phones, "emails": new_emails, "messengers": new_handles}},
        )
    elif new_phones or new_emails or new_handles:
        # Bulk inserts send no post_save: tell duplicate control now, inside this transaction, so the match
        # keys are current for the next request the moment this one commits; only the keys read from the
        # relations that grew are rewritten.
        grown = [name for name, rows in (("phones", new_phones), ("emails", new_emails), ("messengers", new_handles)) if rows]
        records_bulk_saved.send(sender=type(record), model=type(record), pks=[record.pk], fields=grown)
    return new_phones, new_emails, new_handles


def _complete_handle(record, handle: dict, known: tuple, owned: dict) -> None:
    """A chat known by its id now shows a username (or the other way round): remember both."""
    channel, known_user, known_chat = known
    updates = {}
    if handle.get("username") and not known_user:
        updates["username"] = handle["username"]
    if handle.get("chat_id") and not known_chat:
        updates["chat_id"] = handle["chat_id"]
    if updates:
        MessengerHandle.objects.filter(
            channel=channel, username=known_user, chat_id=known_chat, **owned
        ).update(**updates)
        records_bulk_saved.send(sender=type(record), model=type(record), pks=[record.pk], fields=["messengers"])


def _lead_create(
    lead: Lead,
    *,
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    handles: Iterable[dict] = (),
    pending: Pending | None = None,
) -> None:
    """Create a new lead with its contacts, and tell duplicate control once, with both.

    The lead is inserted without save(): Lead has no save() logic, and its repeat flags were decided by the
    caller (repeat_sales.lead_repeat_flags, with what the request knows), so the pre_save receiver has nothing
    to add. Without post_save too: duplicate control hears of the lead through records_bulk_saved, sent by
    _add_contacts once the contacts are made, with the instances (dedup/signals.py), so the lead's keys are
    written once, from them, instead of for a lead without contacts and again with them.
    """
    bulk_insert_instances(Lead, [lead])
    _add_contacts(lead, phones=phones, emails=emails, handles=handles, fresh=True, pending=pending)


def _tags(names: Iterable[str]) -> list[Tag]:
    names = list(dict.fromkeys(names))
    if not names:
        return []
    existing = {tag.name: tag for tag in Tag.objects.filter(name__in=names)}
    missing = [Tag(name=name) for name in names if name not in existing]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)
        existing = {tag.name: tag for tag in Tag.objects.filter(name__in=names)}
    return [existing[name] for name in names if name in existing]


def _incoming_summary(incoming: IncomingLead, token: IntegrationToken) -> str:
    lines = [
        Message.of(
            _("Incoming request via %(integration)s (%(channel)s)."),
            integration=token.name,
            channel=Lead.Channel(incoming.channel).label,
        )
    ]
    parts = [
        (_("Name"), incoming.full_name),
        (_("Company"), incoming.company_name),
        (_("Phones"), ", ".join(incoming.phones)),
        (_("Emails"), ", ".join(incoming.emails)),
        (
            _("Messenger"),
            " ".join(
                filter(
                    None,
                    [
                        incoming.messenger and incoming.messenger["channel"],
                        incoming.messenger and incoming.messenger.get("username") and "@" + incoming.messenger["username"],
                        incoming.messenger and incoming.messenger.get("chat_id") and "#" + incoming.messenger["chat_id"],
                    ],
                )
            ),
        ),
        (_("Source"), incoming.source),
        (_("Service"), incoming.service),
        (_("Amount"), "" if incoming.amount is None else str(incoming.amount)),
        (_("Comment"), incoming.comment),
    ]
    parts += [(name, "" if value is None else str(value)) for name, value in incoming.custom_fields.items()]
    lines += [Message.of(_("%(label)s: %(value)s"), label=label, value=value) for label, value in parts if value]
    return Message.join(lines, "\n")


# --- Incoming leads ----------------------------------------------------------------------------------


@transaction.atomic
def lead_intake(
    *,
    token: IntegrationToken,
    incoming: IncomingLead,
    payload: dict,
    idempotency_key: str = "",
    config: IntakeConfig | None = None,
) -> IntakeResult:
    """Check an incoming lead against the base and create, update or flag records as the settings say."""
    body_hash = body_fingerprint(payload)
    opened = _open_request(
        token=token, kind=IncomingRequest.Kind.LEAD, idempotency_key=idempotency_key, body_hash=body_hash, payload=payload
    )
    if isinstance(opened, IntakeResult):
        return opened
    request = opened
    config = config or intake_config.current()
    repeat_settings = config.repeat_settings
    settings = config.intake_settings(incoming.pipeline)
    keys = selectors.ContactKeys.of_lead(incoming, settings=settings)
    # Read before the lock: its name blocks are locked only where a learned model decides by them (a model learned
    # in between is used from the next request on).
    scorer = selectors.lead_scorer() if settings.is_enabled else None
    _lock_contact_keys(keys.lock_keys() + (selectors.scored_lock_keys(incoming) if scorer is not None else []))
    _mark_token_used(token)

    # Who holds these contacts, read once (after the lock) and used for matching and for repeat sales.
    hits = selectors.contact_hits(keys)
    found = (
        selectors.find_matches(
            incoming=incoming, keys=keys, settings=settings, hits=hits, stage_ids=config.scope_stage_ids(settings),
            scorer=scorer,
        )
        if settings.is_enabled
        else []
    )
    if repeat_settings.simple_crm_mode:
        found = [match for match in found if isinstance(match.record, Deal)]
    summary = _incoming_summary(incoming, token)

    if len(found) > MAX_MERGED_MATCHES:
        reason = Message.of(
            ngettext_lazy(
                "%(count)d record matches (more than %(max)d): nothing merged, the new record is flagged for review. "
                "%(why)s",
                "%(count)d records match (more than %(max)d): nothing merged, the new record is flagged for review. "
                "%(why)s",
                "count",
            ),
            count=len(found), max=MAX_MERGED_MATCHES, why=selectors.describe(found),
        )
        return _create_record(
            request, token=token, incoming=incoming, summary=summary, reason=reason,
            decision=Decision.FLAGGED, flag=True, repeat_settings=repeat_settings, matches=found, hits=hits,
        )
    if found and len(found) > 1 and settings.multi_match_policy == IntakeSettings.MultiMatchPolicy.CREATE_NEW:
        reason = Message.of(
            _("%(count)d records match and the settings say to create a new lead. %(why)s"),
            count=len(found),
            why=selectors.describe(found),
        )
        return _create_record(
            request, token=token, incoming=incoming, summary=summary, reason=reason,
            decision=Decision.CREATED_DESPITE_MATCHES, flag=False, repeat_settings=repeat_settings, matches=found,
            hits=hits,
        )
    if found:
        if len(found) > 1 and settings.multi_match_policy == IntakeSettings.MultiMatchPolicy.UPDATE_NEWEST:
            targets = [max(found, key=lambda match: (match.record.created_at, match.record.pk))]
        else:
            targets = found
        return _update_records(
            request, incoming=incoming, summary=summary, targets=targets, all_matches=found,
            settings=settings, hits=hits,
        )
    return _create_record(
        request, token=token, incoming=incoming, summary=summary,
        reason=Message.of(_("No lead or deal in the searched stages matches.")), decision=Decision.CREATED, flag=False,
        repeat_settings=repeat_settings, matches=[], hits=hits,
    )


def _update_records(request, *, incoming, summary, targets, all_matches, settings, hits) -> IntakeResult:
    update = settings.conflict_policy == IntakeSettings.ConflictPolicy.UPDATE
    notes, tasks, touched_leads, touched_deal, changes = [], [], [], None, []
    for match in targets:
        record = match.record
        if update:
            changed, change = _apply_incoming(record, incoming, hits=hits)
            if change:
                changes.append(change)
            outcome = (
                Message.of(_("Updated with the new data: %(fields)s."), fields=", ".join(changed))
                if changed
                else Message.of(_("Nothing new to add."))
            )
        else:
            outcome = Message.of(_("The settings say not to change the existing data; it was kept as it was."))
        if len(all_matches) > 1 and len(targets) == 1:
            outcome = Message.join(
                [outcome, Message.of(_("Chosen as the newest of %(count)d matches."), count=len(all_matches))], " "
            )
        notes.append(
            _note(
                record,
                Message.join(
                    [summary, Message.of(_("Matched: %(why)s."), why=Message.join(match.reasons, "; ")), outcome],
                    "\n",
                ),
            )
        )
        if settings.create_task_after_merge:
            tasks.append(
                Task(
                    content_type=ContentType.objects.get_for_model(type(record)),
                    object_id=record.pk,
                    **_title(Message.of(_("New request from %(who)s: contact them"), who=incoming.display_title())),
                    assignee_id=record.owner_id,
                    due_at=timezone.now() + TASK_DUE,
                )
            )
        if isinstance(record, Lead):
            touched_leads.append(record)
        elif touched_deal is None:
            touched_deal = record
    pending = Pending()
    pending.add(Note, notes)
    pending.add(Task, tasks)
    decision = Decision.UPDATED if update else Decision.KEPT
    reason = selectors.describe(targets)
    if len(all_matches) > 1:
        reason = Message.join(
            [
                Message.of(
                    _("%(count)d records match; policy: %(policy)s."),
                    count=len(all_matches),
                    policy=IntakeSettings.MultiMatchPolicy(settings.multi_match_policy).label,
                ),
                reason,
            ],
            " ",
        )
    return _finish(
        request, status_code=200, decision=decision, reason=reason, leads=touched_leads, deal=touched_deal,
        pending=pending, changes=changes,
    )


# Lead fields an incoming request may update, with their labels.
UPDATABLE_LEAD_FIELDS = ("first_name", "last_name", "middle_name", "company_name", "source", "amount")


def _apply_incoming(record, incoming: IncomingLead, *, hits: selectors.ContactHits) -> tuple[list[str], dict]:
    """Update a matched lead or deal with the incoming data (new values win).

    Return the labels changed and what changed as the decision log keeps it (old and new values, the contact
    rows and tags added), which is what `incoming_request_revert` puts back.
    """
    changed: list[str] = []
    fields: list[str] = []
    model = type(record)
    before: dict[str, object] = {}
    candidates = UPDATABLE_LEAD_FIELDS if isinstance(record, Lead) else ("amount", "service")
    for name in candidates:
        value = incoming.value_of(name)
        if value in (None, ""):
            continue
        current = getattr(record, name)
        # An initial never replaces the full value ("P" for "Petrov"), as in a merge.
        if current != value and not is_shorter_form(value, current):
            before[name] = current
            setattr(record, name, value)
            fields.append(name)
            changed.append(str(model._meta.get_field(name).verbose_name))
    custom = {key: value for key, value in incoming.custom_fields.items() if record.custom_fields.get(key) != value}
    if custom:
        before["custom_fields"] = dict(record.custom_fields)
        record.custom_fields = {**record.custom_fields, **custom}
        fields.append("custom_fields")
        changed.append(", ".join(custom))
    if fields:
        record.save(update_fields=[*fields, "updated_at"])
    added: dict[str, list[int]] = {}
    contact_holder = record if isinstance(record, Lead) else record.customer
    if contact_holder is not None and not _holds_incoming_contacts(contact_holder, incoming, hits):
        handles = [incoming.messenger] if incoming.messenger else []
        phones, emails, new_handles = _add_contacts(
            contact_holder, phones=incoming.phones, emails=incoming.emails, handles=handles
        )
        changed += [phone.number for phone in phones] + [email.address for email in emails]
        changed += [str(handle) for handle in new_handles]
        for rows in (phones, emails, new_handles):
            if rows:
                added[rows[0]._meta.label_lower] = [row.pk for row in rows]
    new_tags = []
    if incoming.tags:
        tags = _tags(incoming.tags)
        had = set(record.tags.filter(pk__in=[tag.pk for tag in tags]).values_list("pk", flat=True))
        new_tags = [tag.pk for tag in tags if tag.pk not in had]
        record.tags.add(*tags)
    if not (before or added or new_tags):
        return changed, {}
    field_map = {name: model._meta.get_field(name) for name in before}
    change = {
        "model": model._meta.label_lower,
        "pk": record.pk,
        "fields": {
            name: {
                "before": dump_value(field_map[name], value),
                "after": dump_value(field_map[name], getattr(record, name)),
            }
            for name, value in before.items()
        },
        "added": added,
        "contact_holder": (
            {"model": contact_holder._meta.label_lower, "pk": contact_holder.pk} if added else None
        ),
        "tags": new_tags,
    }
    return changed, change


def _holds_incoming_contacts(record, incoming: IncomingLead, hits: selectors.ContactHits) -> bool:
    """True when the contact lookup showed the record holding every incoming phone and email already (and no
    messenger came): there is nothing to add, so its contacts need not be read."""
    if incoming.messenger:
        return False
    phones = [phone_e164(phone) for phone in incoming.phones]
    emails = [email_key(email) for email in incoming.emails]
    return None not in phones and None not in emails and hits.holds_all(record, phones=phones, emails=emails)


def _create_record(
    request, *, token, incoming, summary, reason, decision, flag, repeat_settings, matches, hits
) -> IntakeResult:
    customer, company, completed = selectors.returning_customer(hits=hits, company_name=incoming.company_name)
    # Ids, not users: the customer's manager is not loaded, and the token's may be a cached copy.
    owner = (customer.owner_id if customer is not None else None) or token.owner_id
    if customer is not None and not repeat_settings.enabled and not matches:
        # Bitrix24 with repeat sales off: the customer's history keeps the request, no new lead is made.
        _add_note(
            customer,
            Message.join([summary, Message.of(_("Repeat sales mode is off: added to the customer's history."))], "\n"),
        )
        return _finish(
            request,
            status_code=200,
            decision=Decision.ADDED_TO_CUSTOMER,
            reason=Message.of(
                _("An existing customer (%(why)s); repeat sales mode is off, so no new lead was created."),
                why=Message.join(hits.reasons(Customer).get(customer.pk, []), "; "),
            ),
            customer=customer,
        )
    if repeat_settings.simple_crm_mode:
        return _create_deal(
            request, incoming=incoming, summary=summary, reason=reason, decision=decision, flag=flag,
            repeat_settings=repeat_settings, customer=customer, company=company, owner=owner,
        )
    # Read with the customer (PostgreSQL), for the customer and their own company only.
    known_semantics = getattr(customer, "repeat_deal_semantics", None)
    if company is not None and (customer is None or company.pk != customer.company_id):
        known_semantics = None
    flags = repeat_sales.lead_repeat_flags(
        customer=customer, company=company, completed_leads=completed, settings=repeat_settings,
        repeat_deal_semantics=known_semantics,
    )
    lead = Lead(
        **_title(incoming.display_title()),
        channel=incoming.channel,
        pipeline=incoming.pipeline,
        stage=incoming.stage,
        first_name=incoming.first_name,
        last_name=incoming.last_name,
        middle_name=incoming.middle_name,
        company_name=incoming.company_name,
        source=incoming.source,
        amount=incoming.amount,
        external_id=incoming.external_id,
        visitor_id=incoming.visitor_id,
        custom_fields=(
            {**incoming.custom_fields, "service": incoming.service} if incoming.service else incoming.custom_fields
        ),
        customer=customer,
        company=company,
        owner_id=owner,
        is_repeat=flags.is_repeat,
        is_repeat_inquiry=flags.is_repeat_inquiry,
    )
    pending = Pending()
    _lead_create(
        lead,
        phones=incoming.phones,
        emails=incoming.emails,
        handles=[incoming.messenger] if incoming.messenger else [],
        pending=pending,
    )
    tags = list(incoming.tags) + ([REVIEW_TAG] if flag else [])
    if tags:
        lead.tags.add(*_tags(tags))
    text = [summary, Message.of(_("Decision: %(decision)s."), decision=Decision(decision).label), reason]
    if flags.reason and (flags.is_repeat or customer is not None):
        text.append(flags.reason)
    _add_note(lead, Message.join(text, "\n"), pending=pending)
    return _finish(
        request, status_code=201, decision=decision, reason=Message.join([reason, flags.reason], " "),
        lead=lead, customer=customer, flagged=flag, pending=pending,
    )


def _create_deal(
    request, *, incoming, summary, reason, decision, flag, repeat_settings, customer, company, owner
) -> IntakeResult:
    """Simple CRM mode: the request becomes a deal of a (new or returning) customer."""
    returning = customer is not None
    if company is None and incoming.company_name:
        company = Company.objects.create(name=incoming.company_name[:255], owner_id=owner)
    if customer is None:
        customer = Customer.objects.create(
            first_name=incoming.first_name,
            last_name=incoming.last_name,
            middle_name=incoming.middle_name,
            company=company,
            source=incoming.source,
            owner_id=owner,
        )
    _add_contacts(
        customer, phones=incoming.phones, emails=incoming.emails,
        handles=[incoming.messenger] if incoming.messenger else [],
    )
    flags = repeat_sales.deal_repeat_flags(
        customer=customer, company=company, settings=repeat_settings, returning=returning
    )
    deal = Deal(
        **_title(incoming.display_title()),
        pipeline=incoming.pipeline,
        stage=incoming.stage,
        amount=incoming.amount or Decimal("0"),
        customer=customer,
        company=company,
        service=incoming.service,
        external_id=incoming.external_id,
        custom_fields=incoming.custom_fields,
        owner_id=owner,
    )
    repeat_sales.record_save_with_flags(deal, flags=flags)
    tags = list(incoming.tags) + ([REVIEW_TAG] if flag else [])
    if tags:
        deal.tags.add(*_tags(tags))
    _add_note(
        deal,
        Message.join(
            [
                summary,
                Message.of(_("Decision: %(decision)s."), decision=Decision(decision).label),
                reason,
                flags.reason,
            ],
            "\n",
        ),
    )
    return _finish(
        request, status_code=201, decision=decision, reason=Message.join([reason, flags.reason], " "),
        deal=deal, customer=customer, flagged=flag,
    )


# --- Messenger messages ------------------------------------------------------------------------------

_LEAD_CHANNELS = {
    MessengerHandle.Channel.TELEGRAM: Lead.Channel.TELEGRAM,
    MessengerHandle.Channel.WHATSAPP: Lead.Channel.WHATSAPP,
}


@transaction.atomic
def message_intake(
    *,
    token: IntegrationToken,
    incoming: IncomingMessage,
    payload: dict,
    idempotency_key: str = "",
    config: IntakeConfig | None = None,
) -> IntakeResult:
    """Add a messenger message to its chat's lead (a new chat makes a new lead), and act on phones in its text.

    A chat is recognised by its chat id or username, so the same chat never makes a second lead. A phone
    number written in the text is added to the lead (and its customer); leads that then share the phone are
    merged through the merge service, or flagged, as the pipeline's incoming lead settings say.
    """
    body_hash = body_fingerprint(payload)
    opened = _open_request(
        token=token, kind=IncomingRequest.Kind.MESSAGE, idempotency_key=idempotency_key, body_hash=body_hash,
        payload=payload,
    )
    if isinstance(opened, IntakeResult):
        return opened
    request = opened
    handle = {"channel": incoming.channel, "username": incoming.username, "chat_id": incoming.chat_id}
    phones_found = phones_in_text(incoming.text)
    if incoming.phone:
        phones_found = list(dict.fromkeys([phone_e164(incoming.phone) or incoming.phone, *phones_found]))
    keys = selectors.ContactKeys.build(phones=phones_found, handles=[handle])
    _lock_contact_keys(keys.lock_keys())
    _mark_token_used(token)
    config = config or intake_config.current()
    repeat_settings = config.repeat_settings
    settings = config.intake_settings(incoming.pipeline)
    if repeat_settings.simple_crm_mode:
        return _message_to_deal(request, token=token, incoming=incoming, handle=handle, phones_found=phones_found,
                                keys=keys, repeat_settings=repeat_settings)

    leads = selectors.chat_leads(channel=incoming.channel, username=incoming.username, chat_id=incoming.chat_id)
    open_leads = [lead for lead in leads if lead.stage.semantic == Stage.Semantic.OPEN]
    if open_leads:
        lead = open_leads[0]
        decision = Decision.APPENDED
        reason = Message.of(_("The chat belongs to lead #%(id)s."), id=lead.pk)
        status_code = 200
        _add_contacts(lead, handles=[handle])
    else:
        chat_keys = selectors.ContactKeys.build(handles=[handle])
        customer, company, completed = selectors.returning_customer(hits=selectors.contact_hits(chat_keys))
        completed = list(dict.fromkeys([*leads, *completed]))
        if customer is not None and not repeat_settings.enabled:
            _save_chat_message(customer, incoming)
            _add_note(
                customer, Message.of(_("Repeat sales mode is off: the message was added to the customer's history."))
            )
            return _finish(
                request, status_code=200, decision=Decision.ADDED_TO_CUSTOMER,
                reason=Message.of(
                    _("An existing customer's chat; repeat sales mode is off, so no new lead was created.")
                ),
                customer=customer,
            )
        flags = repeat_sales.lead_repeat_flags(
            customer=customer, company=company, completed_leads=completed, settings=repeat_settings
        )
        who = f"@{incoming.username}" if incoming.username else f"#{incoming.chat_id}"
        lead = Lead(
            **_title(
                Message.of(_("%(channel)s chat %(who)s"), channel=MessengerHandle.Channel(incoming.channel).label, who=who)
            ),
            channel=_LEAD_CHANNELS.get(incoming.channel, Lead.Channel.CHAT),
            pipeline=incoming.pipeline,
            stage=incoming.stage,
            first_name=incoming.first_name,
            last_name=incoming.last_name,
            customer=customer,
            company=company,
            owner_id=(customer.owner_id if customer is not None else None) or token.owner_id,
            is_repeat=flags.is_repeat,
            is_repeat_inquiry=flags.is_repeat_inquiry,
        )
        _lead_create(lead, handles=[handle])
        decision = Decision.CREATED
        reason = Message.join(
            [Message.of(_("A new chat.")), flags.reason if (flags.is_repeat or customer) else ""], " "
        )
        status_code = 201
        _add_note(lead, reason)
    _save_chat_message(lead, incoming)
    if not phones_found:
        return _finish(request, status_code=status_code, decision=decision, reason=reason, lead=lead)

    added, _emails, _handles = _add_contacts(lead, phones=phones_found)
    if lead.customer_id:
        _add_contacts(lead.customer, phones=phones_found)
    if added:
        _add_note(
            lead,
            Message.of(
                _("Phone number recognised in a %(channel)s message and added: %(phones)s."),
                channel=incoming.channel,
                phones=", ".join(phone.e164 or phone.number for phone in added),
            ),
        )
    survivor, merge_decision, merge_reason, flagged = _merge_leads_sharing_phones(
        lead=lead, phones=phones_found, settings=settings, stage_ids=config.scope_stage_ids(settings)
    )
    if merge_decision:
        decision, reason = merge_decision, Message.join([reason, merge_reason], " ")
    return _finish(
        request, status_code=status_code, decision=decision, reason=reason, lead=survivor, flagged=flagged,
        phones_found=phones_found,
    )


def _save_chat_message(record, incoming: IncomingMessage) -> ChatMessage:
    return ChatMessage.objects.create(
        content_type=ContentType.objects.get_for_model(type(record)),
        object_id=record.pk,
        channel=incoming.channel,
        chat_id=incoming.chat_id,
        username=incoming.username,
        text=incoming.text,
        created_at=incoming.sent_at or timezone.now(),
    )


def _merge_leads_sharing_phones(*, lead: Lead, phones: list[str], settings: IntakeSettings, stage_ids: list[int]):
    """Merge the chat's lead with the leads that now share one of its phones, as the settings say.

    Candidates come from the duplicate finder, so the admin's rules and the pairs a manager marked "not a
    duplicate" are respected; only leads in the searched stages that really share a phone are kept.
    Return (surviving lead, decision or "", reason, flagged).
    """
    if not settings.is_enabled or not settings.match_phone:
        return lead, "", "", False
    stage_ids = set(stage_ids)
    content_type = ContentType.objects.get_for_model(Lead)
    sharing = set(
        Phone.objects.filter(content_type=content_type, e164__in=set(phones))
        .exclude(object_id=lead.pk)
        .values_list("object_id", flat=True)
    )
    if not sharing:
        return lead, "", "", False
    # The duplicate engine; an import error here means it is missing, and the request fails loudly.
    from dedup.engine.finder import duplicates_of
    from dedup.merge.system import system_merge_run

    matches = [
        match
        for match in duplicates_of(lead, limit=selectors.CANDIDATE_LIMIT)
        if isinstance(match.record, Lead)
        and match.record.pk in sharing
        and match.record.stage_id in stage_ids
        and not match.record.is_archived
    ]
    if not matches:
        return lead, "", "", False
    described = Message.join(
        [
            Message.of(_("#%(id)s (%(why)s)"), id=match.record.pk, why=Message.join(match.reasons, "; "))
            for match in matches
        ],
        "; ",
    )
    if len(matches) > MAX_MERGED_MATCHES:
        lead.tags.add(*_tags([REVIEW_TAG]))
        reason = Message.of(
            _("%(count)d leads share the phone (more than %(max)d): not merged, flagged for review: %(leads)s."),
            count=len(matches), max=MAX_MERGED_MATCHES, leads=described,
        )
        _add_note(lead, reason)
        return lead, Decision.FLAGGED, reason, True
    policy = settings.multi_match_policy
    if len(matches) > 1 and policy == IntakeSettings.MultiMatchPolicy.CREATE_NEW:
        reason = Message.of(
            _("%(count)d leads share the phone and the settings say to keep a separate lead: %(leads)s."),
            count=len(matches), leads=described,
        )
        _add_note(lead, reason)
        return lead, "", reason, False
    if len(matches) > 1 and policy == IntakeSettings.MultiMatchPolicy.UPDATE_NEWEST:
        matches = [max(matches, key=lambda match: (match.record.created_at, match.record.pk))]
    # The lead with the longest history survives; the chat's data wins conflicts when the policy says update.
    group = sorted([lead, *(match.record for match in matches)], key=lambda record: (record.created_at, record.pk))
    survivor, absorbed = group[0], group[1:]
    choices = {}
    if settings.conflict_policy == IntakeSettings.ConflictPolicy.UPDATE and survivor.pk != lead.pk:
        choices = {
            name: lead.pk
            for name in UPDATABLE_LEAD_FIELDS
            if getattr(lead, name) not in (None, "") and getattr(lead, name) != getattr(survivor, name)
        }
    # A merge job run here and now: in the survivor's merge history, undoable like any other merge.
    job = system_merge_run(survivor=survivor, absorbed=absorbed, choices=choices)
    if job.status != job.Status.DONE:
        reason = Message.of(_("The leads sharing the phone could not be merged: %(error)s"), error=job.error)
        _add_note(lead, reason)
        return lead, "", reason, False
    survivor.refresh_from_db()
    reason = Message.of(_("Merged into lead #%(survivor)s: %(leads)s."), survivor=survivor.pk, leads=described)
    _add_note(survivor, reason)
    if settings.create_task_after_merge:
        Task.objects.create(
            content_type=content_type,
            object_id=survivor.pk,
            **_title(Message.of(_("Leads merged after a phone number came in a chat: check the lead"))),
            assignee=survivor.owner,
            due_at=timezone.now() + TASK_DUE,
        )
    return survivor, Decision.MERGED, reason, False


def _message_to_deal(request, *, token, incoming, handle, phones_found, keys, repeat_settings) -> IntakeResult:
    """Simple CRM mode: the chat's customer gets the message on their open deal, or a new (repeat) deal."""
    customer, company, _completed = selectors.returning_customer(hits=selectors.contact_hits(keys, models=[Customer]))
    returning = customer is not None
    if customer is None:
        customer = Customer.objects.create(
            first_name=incoming.first_name, last_name=incoming.last_name, owner=token.owner
        )
    _add_contacts(customer, phones=phones_found, handles=[handle])
    deal = (
        Deal.objects.filter(
            customer=customer, pipeline=incoming.pipeline, stage__semantic=Stage.Semantic.OPEN, is_archived=False
        )
        .order_by("-created_at", "-pk")
        .first()
    )
    if deal is not None:
        _save_chat_message(deal, incoming)
        return _finish(
            request, status_code=200, decision=Decision.APPENDED,
            reason=Message.of(_("The customer's open deal #%(id)s got the message."), id=deal.pk),
            deal=deal, customer=customer, phones_found=phones_found,
        )
    if returning and not repeat_settings.enabled:
        _save_chat_message(customer, incoming)
        return _finish(
            request, status_code=200, decision=Decision.ADDED_TO_CUSTOMER,
            reason=Message.of(_("An existing customer's chat; repeat sales mode is off, so no new deal was created.")),
            customer=customer, phones_found=phones_found,
        )
    flags = repeat_sales.deal_repeat_flags(
        customer=customer, company=company, settings=repeat_settings, returning=returning
    )
    who = f"@{incoming.username}" if incoming.username else f"#{incoming.chat_id}"
    deal = Deal(
        **_title(
            Message.of(_("%(channel)s chat %(who)s"), channel=MessengerHandle.Channel(incoming.channel).label, who=who)
        ),
        pipeline=incoming.pipeline,
        stage=incoming.stage,
        customer=customer,
        company=company,
        owner=customer.owner or token.owner,
    )
    repeat_sales.record_save_with_flags(deal, flags=flags)
    _save_chat_message(deal, incoming)
    reason = Message.join([Message.of(_("A new chat.")), flags.reason], " ")
    _add_note(deal, reason)
    return _finish(
        request, status_code=201, decision=Decision.CREATED, reason=reason, deal=deal, customer=customer,
        phones_found=phones_found,
    )
