"""CSV / XLSX columns of customers, companies, leads and orders (django-import-export resources).

Export and import use the same columns, so an exported file can be edited and imported back:

* ``phone``, ``email`` and ``messenger`` hold several values separated by ";" (exported with "; ");
  importing adds the values a record does not have yet and never removes any;
* ``company_name`` (customers) links the company with exactly that name, creating it when there is none;
* ``tags`` are tag names separated by ";"; unknown tags are created, existing tags are kept;
* ``external_id`` finds the record a row updates, else ``id`` (this CRM's record number, exported for that),
  so importing a file again updates rather than duplicates.

An import is one transaction: a bad row is reported with its line in the file and nothing of the file is saved.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from import_export import fields, resources, widgets
from import_export.results import Result

from dedup.engine.normalize import phone_e164

from .models import Company, Customer, Email, Lead, MessengerHandle, Order, Phone, Pipeline, Tag

#: What a multi-valued cell is split on when importing ...
SEPARATOR = ";"
#: ... and joined with when exporting.
JOINER = "; "


def cell_text(value) -> str:
    """Return a cell as trimmed text; spreadsheets give numbers (1234.0) where the user typed 1234."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def split_cell(value) -> list[str]:
    """Return the non-empty values of a cell holding several, separated by ";", without repeats."""
    return list(dict.fromkeys(part.strip() for part in cell_text(value).split(SEPARATOR) if part.strip()))


def _header_column(header, known: set[str]):
    """Return the known column a header typed by a person means ("E-mail" is email), or the header as it is."""
    text = cell_text(header).casefold()
    for candidate in ("_".join(text.replace("-", " ").split()), "_".join(text.replace("-", "").split())):
        if candidate in known:
            return candidate
    return header


# --- Widgets: one cell <-> one value ------------------------------------------------------------------------------


class TextWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        return cell_text(value)


class FlagWidget(widgets.BooleanWidget):
    """Yes or no: 1/0, true/false, yes/no (also in Russian); an empty cell is no."""

    TRUE_TEXTS = {"1", "true", "yes", "y", "x", "да"}
    FALSE_TEXTS = {"", "0", "false", "no", "n", "нет"}

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            return value
        text = cell_text(value).casefold()
        if text in self.TRUE_TEXTS:
            return True
        if text in self.FALSE_TEXTS:
            return False
        raise ValueError(_("“%(value)s” is not yes or no; write 1 or 0.") % {"value": value})


class DayWidget(widgets.DateWidget):
    """A date written as YYYY-MM-DD or DD.MM.YYYY, or a spreadsheet's date cell; exported as YYYY-MM-DD."""

    INPUT_FORMATS = ("%Y-%m-%d", "%d.%m.%Y")

    def __init__(self, **kwargs):
        super().__init__(format=self.INPUT_FORMATS[0], **kwargs)

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        text = cell_text(value)
        if not text:
            return None
        for input_format in self.INPUT_FORMATS:
            try:
                return datetime.strptime(text, input_format).date()
            except ValueError:
                continue
        raise ValueError(
            _("“%(value)s” is not a date; write it as YYYY-MM-DD or DD.MM.YYYY.") % {"value": text}
        )


class AmountWidget(widgets.DecimalWidget):
    """A non-negative amount: "1234.50", "1 234,50", "1,234.50" or a number cell."""

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            raise ValueError(_("“%(value)s” is not a number.") % {"value": value})
        if isinstance(value, (int, float, Decimal)):
            text = str(value)
        else:
            text = cell_text(value).replace("\u00a0", "").replace(" ", "")
            if not text:
                return None
            text = text.replace(",", "") if "." in text else text.replace(",", ".")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(_("“%(value)s” is not a number.") % {"value": value}) from None
        if not amount.is_finite():
            raise ValueError(_("“%(value)s” is not a number.") % {"value": value})
        if amount < 0:
            raise ValueError(_("%(value)s is negative; an amount cannot be below zero.") % {"value": value})
        return amount


class ChoiceWidget(widgets.Widget):
    """One of a model field's choices, by its value or its label in any letter case ("web_form", "Web form")."""

    def __init__(self, choices: type[models.TextChoices], **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def clean(self, value, row=None, **kwargs):
        text = cell_text(value).casefold()
        if not text:
            return None
        for choice, label in self.choices.choices:
            if text in (choice.casefold(), str(label).casefold()):
                return choice
        known = ", ".join(choice for choice, _label in self.choices.choices)
        raise ValueError(_("“%(value)s” is not one of: %(known)s.") % {"value": value, "known": known})

    def render(self, value, obj=None, **kwargs):
        return value or ""


class UserWidget(widgets.ForeignKeyWidget):
    """A responsible manager by username or email."""

    def __init__(self, **kwargs):
        super().__init__(get_user_model(), field="username", **kwargs)

    def clean(self, value, row=None, **kwargs):
        text = cell_text(value)
        if not text:
            return None
        user = (
            self.model._default_manager.filter(Q(username__iexact=text) | Q(email__iexact=text)).order_by("pk").first()
        )
        if user is None:
            raise ValueError(_("There is no user “%(value)s”; write a username or a user's email.") % {
                "value": text
            })
        return user


class TagsWidget(widgets.ManyToManyWidget):
    """Tag names separated by ";"; a name that is not a tag yet becomes one."""

    def __init__(self, **kwargs):
        super().__init__(Tag, separator=SEPARATOR, field="name", **kwargs)

    def clean(self, value, row=None, **kwargs):
        tags = []
        max_length = Tag._meta.get_field("name").max_length
        for name in split_cell(value):
            if len(name) > max_length:
                raise ValueError(
                    _("The tag “%(value)s” is longer than %(max)d characters.") % {
                        "value": name, "max": max_length
                    }
                )
            tag = Tag.objects.filter(name__iexact=name).order_by("pk").first() or Tag.objects.create(name=name)
            tags.append(tag)
        return tags

    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        return JOINER.join(tag.name for tag in value.all())


# --- Columns that are not one model field -------------------------------------------------------------------------


class ContactColumn(fields.Field):
    """Several phones, emails or messenger handles in one cell.

    Importing parses and checks the cell before the record is saved (a bad value is a validation error of the
    row) and keeps the values on the record; the resource adds them once the record has an id.
    """

    relation = ""

    def __init__(self, column_name: str):
        super().__init__(attribute=self.relation, column_name=column_name, widget=widgets.Widget())

    def render_one(self, item) -> str:
        raise NotImplementedError

    def parse_one(self, text: str):
        raise NotImplementedError

    def get_value(self, instance):
        if instance.pk is None:
            return []
        return [self.render_one(item) for item in getattr(instance, self.relation).all()]

    def export(self, instance, **kwargs):
        return JOINER.join(self.get_value(instance))

    def save(self, instance, row, is_m2m=False, **kwargs):
        values = [self.parse_one(text) for text in split_cell(row.get(self.column_name))]
        instance.__dict__.setdefault("_imported_contacts", {})[self.relation] = values


def _check_length(text: str, model: type[models.Model], field_name: str, what) -> str:
    max_length = model._meta.get_field(field_name).max_length
    if len(text) > max_length:
        raise ValueError(
            _("%(what)s “%(value)s” is longer than %(max)d characters.") % {
                "what": capfirst(what), "value": text, "max": max_length
            }
        )
    return text


class PhonesColumn(ContactColumn):
    relation = "phones"

    def render_one(self, phone):
        return phone.number

    def parse_one(self, text):
        # Any text is kept as typed; a number that cannot be read gets no E.164 and is simply not matched.
        return _check_length(text, Phone, "number", _("phone"))


class EmailsColumn(ContactColumn):
    relation = "emails"

    def render_one(self, email):
        return email.address

    def parse_one(self, text):
        return _check_length(text, Email, "address", _("email"))


class MessengersColumn(ContactColumn):
    """Handles written as ``telegram:@username``, ``telegram:#chat_id`` or ``telegram:@username#chat_id``.

    Without a known messenger before the colon the handle is a Telegram one.
    """

    relation = "messengers"

    def render_one(self, handle):
        text = f"{handle.channel}:"
        if handle.username:
            text += f"@{handle.username.lstrip('@')}"
        if handle.chat_id:
            text += f"#{handle.chat_id}"
        return text

    def parse_one(self, text):
        channel = MessengerHandle.Channel.TELEGRAM
        prefix, colon, rest = text.partition(":")
        if colon:
            for value, label in MessengerHandle.Channel.choices:
                if prefix.strip().casefold() in (value, str(label).casefold()):
                    channel, text = value, rest
                    break
        username, _hash, chat_id = text.strip().partition("#")
        username, chat_id = username.strip().lstrip("@"), chat_id.strip()
        if not username and not chat_id:
            raise ValueError(_("“%(value)s” has neither a username nor a chat ID.") % {"value": text})
        _check_length(username, MessengerHandle, "username", _("username"))
        _check_length(chat_id, MessengerHandle, "chat_id", _("chat ID"))
        return channel, username, chat_id


class CompanyNameColumn(fields.Field):
    """A customer's company by name: the company with exactly that name, created when there is none.

    An empty cell keeps the customer's company.
    """

    def __init__(self):
        super().__init__(attribute="company", column_name="company_name", widget=widgets.Widget())

    def get_value(self, instance):
        return instance.company.name if instance.company_id else ""

    def export(self, instance, **kwargs):
        return self.get_value(instance)

    def save(self, instance, row, is_m2m=False, **kwargs):
        name = cell_text(row.get(self.column_name))
        if not name:
            return
        _check_length(name, Company, "name", _("company name"))
        company = Company.objects.filter(name=name).select_related("merged_into").order_by("is_archived", "pk").first()
        if company is not None and company.is_archived and company.merged_into_id:
            # The company was merged away: link the survivor, never an archived record.
            company = company.merged_into
        if company is None:
            # Created in before_save_instance, once the row has passed validation.
            instance.__dict__["_new_company_name"] = name
        else:
            instance.company = company


class CustomerRefColumn(fields.Field):
    """An order's customer by the customer's external ID; an empty cell keeps the order's customer."""

    def __init__(self):
        super().__init__(attribute="customer", column_name="customer_external_id", widget=widgets.Widget())

    def get_value(self, instance):
        return instance.customer.external_id if instance.customer_id else ""

    def export(self, instance, **kwargs):
        return self.get_value(instance)

    def save(self, instance, row, is_m2m=False, **kwargs):
        external_id = cell_text(row.get(self.column_name))
        if not external_id:
            return
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            raise ValueError(_("There is no customer with the external ID “%(value)s”.") % {
                "value": external_id
            })
        instance.customer = customer


class StageColumn(fields.Field):
    """A lead's stage by name, in the pipeline named in the ``pipeline`` column.

    Without a pipeline the lead's own (or the first lead pipeline) is used; without a stage, the lead's own
    (or the pipeline's first stage).
    """

    def __init__(self, kind: str):
        super().__init__(attribute="stage", column_name="stage", widget=widgets.Widget())
        self.kind = kind

    def get_value(self, instance):
        return instance.stage.name if instance.stage_id else ""

    def export(self, instance, **kwargs):
        return self.get_value(instance)

    def save(self, instance, row, is_m2m=False, **kwargs):
        pipeline_name = cell_text(row.get("pipeline"))
        stage_name = cell_text(row.get(self.column_name))
        pipelines = Pipeline.objects.filter(kind=self.kind)
        if pipeline_name:
            pipeline = pipelines.filter(name=pipeline_name).first()
            if pipeline is None:
                raise ValueError(_("There is no pipeline “%(value)s”.") % {"value": pipeline_name})
        elif instance.pipeline_id:
            pipeline = instance.pipeline
        else:
            pipeline = pipelines.first()
            if pipeline is None:
                raise ValueError(_("There is no pipeline yet; create one before importing."))
        if stage_name:
            stage = pipeline.stages.filter(name=stage_name).first()
            if stage is None:
                raise ValueError(
                    _("There is no stage “%(stage)s” in the pipeline “%(pipeline)s”.") % {
                        "stage": stage_name, "pipeline": pipeline.name
                    }
                )
        elif instance.stage_id and instance.stage.pipeline_id == pipeline.pk:
            stage = instance.stage
        else:
            stage = pipeline.stages.first()
            if stage is None:
                raise ValueError(_("The pipeline “%(value)s” has no stages.") % {"value": pipeline.name})
        instance.pipeline, instance.stage = pipeline, stage


# --- Writing what a row brought -----------------------------------------------------------------------------------


def contact_points_add(
    *,
    record: models.Model,
    phones: list[str] = (),
    emails: list[str] = (),
    messengers: list[tuple[str, str, str]] = (),
) -> int:
    """Add the phones, emails and messenger handles a record does not have yet; return how many were added.

    A phone is known when its E.164 form (or, if it has none, its text) is; an email, case-insensitively.
    The first value added becomes primary when the record has no primary one. Rows are saved one by one (a few
    per record) so that Phone.save() computes the E.164 form and post_save keeps duplicate control's index
    current.
    """
    owner = {"content_type": ContentType.objects.get_for_model(record), "object_id": record.pk}
    added = 0
    for model, values, key_of_value, key_of_row, build in (
        (
            Phone,
            phones,
            lambda number: phone_e164(number) or number,
            lambda phone: phone.e164 or phone.number.strip(),
            lambda number: {"number": number},
        ),
        (
            Email,
            emails,
            lambda address: address.casefold(),
            lambda email: email.address.strip().casefold(),
            lambda address: {"address": address},
        ),
        (
            MessengerHandle,
            messengers,
            lambda handle: (handle[0], handle[1].casefold(), handle[2]),
            lambda handle: (handle.channel, handle.username.lstrip("@").casefold(), handle.chat_id),
            lambda handle: {"channel": handle[0], "username": handle[1], "chat_id": handle[2]},
        ),
    ):
        if not values:
            continue
        existing = list(model.objects.filter(**owner))
        known = {key_of_row(row) for row in existing}
        has_primary = any(row.is_primary for row in existing)
        for value in values:
            key = key_of_value(value)
            if key in known:
                continue
            model(is_primary=not has_primary, **owner, **build(value)).save()
            known.add(key)
            has_primary = True
            added += 1
    return added


class FileLineResult(Result):
    """Number a file's rows as the user sees them: the header is line 1, the first record line 2."""

    def append_invalid_row(self, number, row, validation_error):
        super().append_invalid_row(number + 1, row, validation_error)

    def append_error_row(self, number, row, errors):
        super().append_error_row(number + 1, row, errors)


# --- Resources ----------------------------------------------------------------------------------------------------


class EntityResource(resources.ModelResource):
    """Columns and behaviour every entity's file shares."""

    WIDGETS_MAP = {
        **resources.ModelResource.WIDGETS_MAP,
        "CharField": TextWidget,
        "TextField": TextWidget,
        "DateField": DayWidget,
        "DecimalField": AmountWidget,
        "BooleanField": FlagWidget,
    }

    # This CRM's own record number: exported so that an exported file imported back updates its records; never
    # written (a new record gets a new number).
    id = fields.Field(attribute="id", column_name="id", readonly=True, widget=widgets.IntegerWidget())
    external_id = fields.Field(attribute="external_id", column_name="external_id", widget=TextWidget())
    owner = fields.Field(attribute="owner", column_name="owner", widget=UserWidget())
    tags = fields.Field(attribute="tags", column_name="tags", widget=TagsWidget(), m2m_add=True)
    created_at = fields.Field(
        attribute="created_at", column_name="created_at", readonly=True, widget=widgets.DateTimeWidget()
    )

    #: Columns that find the record a row updates, tried in this order; a row none of them finds is a new record.
    lookup_columns: tuple[str, ...] = ("external_id", "id")
    #: What an export reads besides the rows: one join or one query per relation, never one per row.
    export_select_related: tuple[str, ...] = ("owner",)
    export_prefetch_related: tuple[str, ...] = ("tags",)
    #: Labels of columns that are not a model field, for the export form.
    labels: dict = {"id": _("ID"), "owner": _("responsible manager"), "created_at": _("created")}

    class Meta:
        # Rows are matched in get_instance() (by external_id, else by id), not by import_id_fields.
        import_id_fields = []
        clean_model_instances = True
        use_transactions = True
        skip_unchanged = False
        report_skipped = True

    def get_result_class(self):
        return FileLineResult

    @classmethod
    def column_label(cls, name: str) -> str:
        """Return a column's label for people: the model field's verbose name unless labelled here."""
        if name in cls.labels:
            return capfirst(cls.labels[name])
        try:
            return capfirst(cls._meta.model._meta.get_field(name).verbose_name)
        except FieldDoesNotExist:  # a column that is no model field and has no label
            return name

    def before_import(self, dataset, **kwargs):
        super().before_import(dataset, **kwargs)
        # "Phone", " Company name " and "External ID" are the columns phone, company_name and external_id: a
        # header typed by a person must not make a column silently ignored.
        # Never "ID": other systems' exports name their own record numbers so, which are not this CRM's ids.
        known = {field.column_name for field in self.fields.values()} - {"id"}
        if dataset.headers:
            dataset.headers = [_header_column(header, known) for header in dataset.headers]

    def get_instance(self, instance_loader, row):
        for column in self.lookup_columns:
            value = cell_text(row.get(column))
            if not value:
                continue
            if column == "id" and not value.isdigit():
                raise ValueError(_("The id “%(value)s” is not a record number of this CRM.") % {"value": value})
            instance = self._meta.model._default_manager.filter(**{column: value}).first()
            if instance is not None:
                return instance
        return None

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related(*self.export_select_related).prefetch_related(*self.export_prefetch_related)

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        contacts = instance.__dict__.pop("_imported_contacts", None)
        if contacts and instance.pk is not None:
            contact_points_add(
                record=instance,
                phones=contacts.get("phones", ()),
                emails=contacts.get("emails", ()),
                messengers=contacts.get("messengers", ()),
            )


class CustomerResource(EntityResource):
    company_name = CompanyNameColumn()
    phone = PhonesColumn("phone")
    email = EmailsColumn("email")
    messenger = MessengersColumn("messenger")

    export_select_related = ("owner", "company")
    export_prefetch_related = ("tags", "phones", "emails", "messengers")
    labels = {
        **EntityResource.labels,
        "company_name": _("company name"),
        "phone": _("phones"),
        "email": _("emails"),
        "messenger": _("messengers"),
    }

    class Meta:
        model = Customer
        name = _("customers")
        fields = export_order = [
            "id", "external_id", "last_name", "first_name", "middle_name", "company_name", "position", "birthday",
            "phone", "email", "messenger", "source", "owner", "tags", "exclude_from_repeat_sales", "created_at",
        ]

    def before_save_instance(self, instance, row, **kwargs):
        super().before_save_instance(instance, row, **kwargs)
        name = instance.__dict__.pop("_new_company_name", None)
        if name:
            instance.company = Company.objects.create(name=name, owner=instance.owner)


class CompanyResource(EntityResource):
    phone = PhonesColumn("phone")
    email = EmailsColumn("email")

    export_prefetch_related = ("tags", "phones", "emails")
    labels = {**EntityResource.labels, "phone": _("phones"), "email": _("emails")}

    class Meta:
        model = Company
        name = _("companies")
        fields = export_order = [
            "id", "external_id", "name", "tax_id", "website", "phone", "email", "owner", "tags", "created_at",
        ]


class LeadResource(EntityResource):
    channel = fields.Field(
        attribute="channel", column_name="channel", widget=ChoiceWidget(Lead.Channel), default=Lead.Channel.WEB_FORM
    )
    pipeline = fields.Field(
        attribute="pipeline", column_name="pipeline", readonly=True, widget=widgets.ForeignKeyWidget(Pipeline, "name")
    )
    stage = StageColumn(Pipeline.Kind.LEAD)
    phone = PhonesColumn("phone")
    email = EmailsColumn("email")
    messenger = MessengersColumn("messenger")

    export_select_related = ("owner", "pipeline", "stage")
    export_prefetch_related = ("tags", "phones", "emails", "messengers")
    labels = {
        **EntityResource.labels,
        "phone": _("phones"),
        "email": _("emails"),
        "messenger": _("messengers"),
    }

    class Meta:
        model = Lead
        name = _("leads")
        fields = export_order = [
            "id", "external_id", "title", "channel", "pipeline", "stage", "last_name", "first_name", "middle_name",
            "company_name", "phone", "email", "messenger", "source", "amount", "owner", "tags", "is_repeat",
            "is_repeat_inquiry", "created_at",
        ]

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if "stage" not in row and "stage" not in errors:
            # A file without a stage column still puts a new lead in a pipeline and stage.
            try:
                self.fields["stage"].save(instance, row)
            except ValueError as error:
                errors["stage"] = ValidationError(str(error), code="invalid")
        if errors:
            raise ValidationError(errors)


class OrderResource(EntityResource):
    customer = fields.Field(attribute="customer", column_name="customer", readonly=True, widget=widgets.Widget())
    customer_external_id = CustomerRefColumn()
    status = fields.Field(
        attribute="status", column_name="status", widget=ChoiceWidget(Order.Status), default=Order.Status.NEW
    )

    # Orders have a unique number: a row without an external ID updates the order with its number.
    lookup_columns = ("external_id", "number", "id")
    export_select_related = ("owner", "customer")
    labels = {
        **EntityResource.labels,
        "customer": _("customer"),
        "customer_external_id": _("customer's external ID"),
    }

    class Meta:
        model = Order
        name = _("orders")
        fields = export_order = [
            "id", "external_id", "number", "status", "customer", "customer_external_id", "total", "email", "phone",
            "owner", "tags", "created_at",
        ]
