"""Validate incoming leads and messages; every error names the field it is about."""
from __future__ import annotations

import copy
from decimal import Decimal

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from crm.intake import config as intake_config
from crm.intake import selectors
from crm.intake.services import IncomingLead, IncomingMessage
from crm.models import Lead, MessengerHandle, Pipeline, Stage
from dedup.engine.normalize import phone_e164

MAX_PHONES = 10
MAX_EMAILS = 10
MAX_CUSTOM_FIELDS = 50
MAX_TAGS = 20
MAX_TEXT = 4000


class StrictSerializer(serializers.Serializer):
    """A serializer that answers unknown keys with an error instead of dropping them silently."""

    def get_fields(self):
        # DRF deep-copies every declared field for every serializer instance, which re-runs each field's
        # __init__: half of the validation time of an intake request. The declared fields are never bound or
        # changed (only copies are), so a shallow copy per instance, which bind() then makes this instance's,
        # is enough.
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}

    def to_internal_value(self, data):
        unknown = {}
        if isinstance(data, dict):
            unknown = {
                str(key): [_("Unknown field. Put extra data into custom_fields.")]
                for key in data
                if key not in self.fields
            }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            # Report the unknown keys together with the other errors, so one round trip shows them all.
            if unknown and isinstance(error.detail, dict):
                raise serializers.ValidationError({**unknown, **error.detail}) from error
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class PhoneField(serializers.CharField):
    """A phone number in any common format; one that cannot be read as a valid number is refused."""

    default_error_messages = {
        "invalid_phone": _("“{value}” is not a valid phone number. Give it with the country code, e.g. +7 912 345-67-89.")
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not phone_e164(value):
            self.fail("invalid_phone", value=value[:64])
        return value


class PipelineRefField(serializers.CharField):
    """A pipeline or stage given by its id or its exact name."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 100)
        super().__init__(**kwargs)


class MessengerSerializer(StrictSerializer):
    channel = serializers.ChoiceField(choices=MessengerHandle.Channel.choices, default=MessengerHandle.Channel.TELEGRAM)
    username = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    chat_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    def validate_username(self, value):
        return value.strip().lstrip("@")

    def validate_chat_id(self, value):
        return value.strip()

    def validate(self, attrs):
        if not attrs.get("username") and not attrs.get("chat_id"):
            raise serializers.ValidationError({"username": [_("Give a username or a chat_id.")]})
        return attrs


def _pipeline_kind_and_default(token, config) -> tuple[str, Pipeline | None]:
    """Leads go to lead pipelines; in Simple CRM mode requests become deals in a deal pipeline."""
    repeat_settings = config.repeat_settings
    if repeat_settings.simple_crm_mode:
        kind = Pipeline.Kind.DEAL
        candidates = (token.pipeline, repeat_settings.default_deal_pipeline)
    else:
        kind = Pipeline.Kind.LEAD
        candidates = (token.pipeline,)
    return kind, next((item for item in candidates if item is not None and item.kind == kind), None)


def _resolve_pipeline(value: str | None, *, kind: str, default: Pipeline | None, config) -> Pipeline:
    if value in (None, ""):
        pipeline = default or config.default_pipeline(kind)
        if pipeline is None:
            raise serializers.ValidationError({"pipeline": [_("No pipeline is set up for incoming requests.")]})
        return pipeline
    pipeline = config.pipeline_by_ref(value, kind=kind)
    if pipeline is None:
        if kind == Pipeline.Kind.DEAL:
            message = _("Unknown deal pipeline “%(value)s” (Simple CRM mode takes deals, not leads).")
        else:
            message = _("Unknown lead pipeline “%(value)s”.")
        raise serializers.ValidationError({"pipeline": [message % {"value": value}]})
    return pipeline


def _resolve_stage(value: str | None, *, pipeline: Pipeline, config) -> Stage:
    if value in (None, ""):
        stage = config.first_open_stage(pipeline)
        if stage is None:
            raise serializers.ValidationError({"pipeline": [_("This pipeline has no open stage to put the lead in.")]})
        return stage
    stage = config.stage_by_ref(pipeline, value)
    if stage is None:
        raise serializers.ValidationError(
            {"stage": [_("Unknown stage “%(value)s” in pipeline %(pipeline)s.") % {"value": value, "pipeline": pipeline.name}]}
        )
    return stage


def _validate_custom_fields(value):
    if len(value) > MAX_CUSTOM_FIELDS:
        raise serializers.ValidationError(_("At most %(count)d custom fields.") % {"count": MAX_CUSTOM_FIELDS})
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 100:
            raise serializers.ValidationError(_("Custom field names must be non-empty texts of up to 100 characters."))
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise serializers.ValidationError(
                _("Custom field “%(name)s” must be a text, a number, true/false or null.") % {"name": key}
            )
        if isinstance(item, str) and len(item) > 1000:
            raise serializers.ValidationError(
                _("Custom field “%(name)s” is longer than 1000 characters.") % {"name": key}
            )
    return value


class VisitorIdField(serializers.CharField):
    """The site snippet's visitor id; anything that is none (a number, 500 characters, "<script>") is ignored.

    A CharField for the schema (a string); it never refuses a value, it reads it as "" instead.
    """

    def to_internal_value(self, data):
        return selectors.visitor_id_clean(data)


def _visitor_id(given: str, request) -> str:
    """Return the visitor id of the body, else of the X-Visitor-Id header, else of the snippet's cookie when the
    request comes from the same site (a cookie sent by a third-party page is no one's own browser id)."""
    if given or request is None:
        return given
    header = selectors.visitor_id_clean(request.headers.get(selectors.VISITOR_HEADER, ""))
    if header:
        return header
    if request.headers.get("Sec-Fetch-Site", "") in ("same-origin", "same-site"):
        return selectors.visitor_id_clean(request.COOKIES.get(selectors.VISITOR_COOKIE, ""))
    return ""


class LeadInSerializer(StrictSerializer):
    """An incoming lead from a web form, a call tracker or any integration."""

    pipeline = PipelineRefField(
        required=False, allow_blank=True, help_text=_("Id or name; the integration's default pipeline when left out.")
    )
    stage = PipelineRefField(required=False, allow_blank=True, help_text=_("Id or name; the first open stage by default."))
    title = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    channel = serializers.ChoiceField(choices=Lead.Channel.choices, default=Lead.Channel.WEB_FORM)
    name = serializers.CharField(
        max_length=300, required=False, allow_blank=True, default="", help_text=_("Full name, when not given in parts.")
    )
    first_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    last_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    middle_name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    company = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    phones = serializers.ListField(child=PhoneField(), required=False, default=list, max_length=MAX_PHONES)
    emails = serializers.ListField(
        child=serializers.EmailField(max_length=254), required=False, default=list, max_length=MAX_EMAILS
    )
    messenger = MessengerSerializer(required=False, allow_null=True, default=None)
    source = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal("0"), required=False, allow_null=True, default=None
    )
    service = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", help_text=_("What the customer asks about.")
    )
    external_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    custom_fields = serializers.DictField(required=False, default=dict, validators=[_validate_custom_fields])
    tags = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=MAX_TAGS
    )
    comment = serializers.CharField(
        max_length=MAX_TEXT, required=False, allow_blank=True, default="", help_text=_("What the customer wrote.")
    )
    visitor_id = VisitorIdField(
        required=False, default="", allow_null=True, allow_blank=True, help_text=_("The site snippet's visitor ID (cookie mw_vid); ignored when malformed.")
    )

    def validate(self, attrs):
        token = self.context["token"]
        config = self.context.get("config") or intake_config.current()
        kind, default = _pipeline_kind_and_default(token, config)
        pipeline = _resolve_pipeline(attrs.get("pipeline"), kind=kind, default=default, config=config)
        stage = _resolve_stage(attrs.get("stage"), pipeline=pipeline, config=config)
        first_name, last_name = attrs["first_name"].strip(), attrs["last_name"].strip()
        if attrs["name"].strip() and not (first_name or last_name):
            words = attrs["name"].split()
            first_name, last_name = words[0], " ".join(words[1:])
            first_name, last_name = first_name[:100], last_name[:100]
        messenger = attrs.get("messenger")
        visitor_id = _visitor_id(attrs.get("visitor_id") or "", self.context.get("request"))
        has_something = (
            attrs["phones"] or attrs["emails"] or messenger or first_name or last_name or attrs["company"].strip()
            or attrs["title"].strip()
        )
        if not has_something:
            raise serializers.ValidationError(
                {"non_field_errors": [_("Give at least a name, a company, a phone, an email or a messenger.")]}
            )
        if attrs["external_id"] and Lead.objects.filter(external_id=attrs["external_id"]).exists():
            raise serializers.ValidationError({"external_id": [_("A lead with this external ID already exists.")]})
        return IncomingLead(
            pipeline=pipeline,
            stage=stage,
            title=attrs["title"].strip(),
            channel=attrs["channel"],
            first_name=first_name,
            last_name=last_name,
            middle_name=attrs["middle_name"].strip(),
            company_name=attrs["company"].strip(),
            phones=list(dict.fromkeys(phone.strip() for phone in attrs["phones"])),
            emails=list(dict.fromkeys(email.strip() for email in attrs["emails"])),
            messenger=dict(messenger) if messenger else None,
            source=attrs["source"].strip(),
            amount=attrs["amount"],
            service=attrs["service"].strip(),
            external_id=attrs["external_id"].strip(),
            custom_fields=dict(attrs["custom_fields"]),
            tags=list(dict.fromkeys(tag.strip() for tag in attrs["tags"] if tag.strip())),
            comment=attrs["comment"].strip(),
            visitor_id=visitor_id,
        )


class MessageInSerializer(StrictSerializer):
    """An incoming messenger message: the chat it came from and its text."""

    channel = serializers.ChoiceField(choices=MessengerHandle.Channel.choices)
    chat_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    username = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    text = serializers.CharField(max_length=MAX_TEXT, trim_whitespace=False)
    name = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    phone = PhoneField(required=False, allow_blank=True, default="", help_text=_("When the messenger shows it."))
    pipeline = PipelineRefField(required=False, allow_blank=True)
    sent_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        token = self.context["token"]
        config = self.context.get("config") or intake_config.current()
        username = attrs["username"].strip().lstrip("@")
        chat_id = attrs["chat_id"].strip()
        if not username and not chat_id:
            raise serializers.ValidationError({"chat_id": [_("Give a chat_id or a username.")]})
        if not attrs["text"].strip():
            raise serializers.ValidationError({"text": [_("This field may not be blank.")]})
        kind, default = _pipeline_kind_and_default(token, config)
        pipeline = _resolve_pipeline(attrs.get("pipeline"), kind=kind, default=default, config=config)
        stage = _resolve_stage(None, pipeline=pipeline, config=config)
        words = attrs["name"].split()
        return IncomingMessage(
            pipeline=pipeline,
            stage=stage,
            channel=attrs["channel"],
            chat_id=chat_id,
            username=username,
            text=attrs["text"].strip(),
            first_name=(words[0] if words else "")[:100],
            last_name=" ".join(words[1:])[:100],
            phone=attrs["phone"].strip(),
            sent_at=attrs["sent_at"],
        )


class IntakeResponseSerializer(serializers.Serializer):
    """What the API answers: the decision, its reason and the records it touched."""

    request_id = serializers.IntegerField()
    decision = serializers.CharField()
    reason = serializers.CharField()
    lead = serializers.IntegerField(allow_null=True)
    leads = serializers.ListField(child=serializers.IntegerField())
    deal = serializers.IntegerField(allow_null=True)
    customer = serializers.IntegerField(allow_null=True)
    is_repeat = serializers.BooleanField()
    is_repeat_inquiry = serializers.BooleanField()
    flagged_for_review = serializers.BooleanField()
    phones_found = serializers.ListField(child=serializers.CharField())
