"""CSV / XLSX columns of customers, companies, leads and orders (django-import-export resources).

Export and import use the same columns, so an exported file can be edited and imported back:

* ``phone``, ``email`` and ``messenger`` hold several values separated by ";" or "," (exported with "; ");
  importing adds the values a record does not have yet and never removes any;
* ``company_name`` (customers) links the company with exactly that name, creating it when there is none;
* ``tags`` are tag names separated by ";"; unknown tags are created, existing tags are kept;
* ``external_id`` finds the record a row updates, else ``id`` (this CRM's record number, exported for that),
  so importing a file again updates rather than duplicates; an empty cell keeps what the record has;
* text cells starting with = + - @ tab or CR are exported with a leading ' (formula injection), read back without.

An import is one transaction: a bad row is reported with its line in the file and nothing of the file is saved.
Cells are read by crm.importing.cells, as import_csv reads them. One module for the widgets, columns and four
resources because each resource is a few lines on top of the shared columns.
"""
from __future__ import annotations

from datetime import date, datetime

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

from ..models import Company, Customer, Email, Lead, MessengerHandle, Order, Phone, Pipeline, Tag
from . import cells
from .cells import JOINER, cell_text
from .engine import HANDLE_CHANNELS, IMPORTERS, header_aliases
from .policy import DuplicatePolicyResourceMixin


def split_cell(value) -> list[str]:
    """Return the non-empty values of a cell holding several (``;`` or ``,`` separated), without repeats."""
    return cells.split_list(value)


def _header_column(header, known: set[str], aliases: dict[str, str]):
    """Return the known column a header typed by a person means ("E-mail" is email), or the header as it is."""
    key = cells.normalise_header(header)
    for candidate in (key, key.replace("_", ""), aliases.get(key), aliases.get(key.replace("_", ""))):
        if candidate in known:
            return candidate
    return header


# --- Widgets: one cell <-> one value (the rules are crm.importing.cells', shared with import_csv) -----------------


class TextWidget(widgets.CharWidget):
    def clean(self, value, row=None, **kwargs):
        return cell_text(value)


class FlagWidget(widgets.BooleanWidget):
    """Yes or no, read by cells.parse_bool; an empty cell is no."""

    def clean(self, value, row=None, **kwargs):
        if not isinstance(value, bool) and not cell_text(value):
            return False
        return cells.parse_bool(value)


class DayWidget(widgets.DateWidget):
    """A date read by cells.parse_date, or a spreadsheet's date cell; exported as YYYY-MM-DD."""

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%d", **kwargs)

    def clean(self, value, row=None, **kwargs):
        if not isinstance(value, (date, datetime)) and not cell_text(value):
            return None
        return cells.parse_date(value)


class AmountWidget(widgets.DecimalWidget):
    """A non-negative amount in either decimal style ("1 234,50", "1.234,50", "1,234.50") or a number cell."""

    def clean(self, value, row=None, **kwargs):
        if not isinstance(value, (bool, int, float)) and not cell_text(value):
            return None
        return cells.parse_decimal(value)


class ChoiceWidget(widgets.Widget):
    """One of a model field's choices, by its value or its label in any letter case ("web_form", "Web form")."""

    def __init__(self, choices: type[models.TextChoices], **kwargs):
        super().__init__(**kwargs)
        self.parse = cells.choice_parser(choices.choices)

    def clean(self, value, row=None, **kwargs):
        if not cell_text(value):
            return None
        return self.parse(value)

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
        super().__init__(Tag, separator=cells.TAG_SEPARATORS, field="name", **kwargs)

    def clean(self, value, row=None, **kwargs):
        names = cells.parse_tags(value, max_length=Tag._meta.get_field("name").max_length)
        return [
            Tag.objects.filter(name__iexact=name).order_by("pk").first() or Tag.objects.create(name=name)
            for name in names
        ]

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

    def parse(self, value) -> list:
        raise NotImplementedError

    def get_value(self, instance):
        if instance.pk is None:
            return []
        return [self.render_one(item) for item in getattr(instance, self.relation).all()]

    def export(self, instance, **kwargs):
        return JOINER.join(self.get_value(instance))

    def save(self, instance, row, is_m2m=False, **kwargs):
        instance.__dict__.setdefault("_imported_contacts", {})[self.relation] = self.parse(row.get(self.column_name))


class PhonesColumn(ContactColumn):
    relation = "phones"

    def render_one(self, phone):
        return phone.number

    def parse(self, value):
        # Any text is kept as typed; a number that cannot be read gets no E.164 and is simply not matched.
        max_length = Phone._meta.get_field("number").max_length
        return [number for number, _e164 in cells.parse_phones(value, max_length=max_length)]


class EmailsColumn(ContactColumn):
    relation = "emails"

    def render_one(self, email):
        return email.address

    def parse(self, value):
        return cells.parse_emails(value, max_length=Email._meta.get_field("address").max_length)


class MessengersColumn(ContactColumn):
    """Handles as cells.parse_handle reads them; exported as ``telegram:@username#chat_id``."""

    relation = "messengers"

    def render_one(self, handle):
        return cells.Handle(handle.channel, handle.username.lstrip("@"), handle.chat_id).render()

    def parse(self, value):
        handles = cells.parse_handles(
            value,
            channels=HANDLE_CHANNELS,
            default_channel=MessengerHandle.Channel.TELEGRAM,
            max_length=MessengerHandle._meta.get_field("username").max_length,
        )
        return [(handle.channel, handle.username, handle.chat_id) for handle in handles]


def _check_length(text: str, model: type[models.Model], field_name: str, what) -> str:
    try:
        return cells.check_length(text, model._meta.get_field(field_name).max_length)
    except cells.CellError as error:
        raise ValueError(f"{capfirst(what)}: {error}") from None


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


class EntityResource(DuplicatePolicyResourceMixin, resources.ModelResource):
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

    #: The import_csv entity whose header aliases this file shares.
    entity = ""
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

    @classmethod
    def column_for_header(cls, header) -> str | None:
        """Return the column a header typed by a person names, or None when it names none of this file's.

        "Phone", " Company name ", "E-mail" and "External ID" are phone, company_name, email and external_id,
        with the same aliases as import_csv ("firstname", "telephone"...): a header typed by a person must not
        make a column silently ignored. Never "ID": other systems' exports name their own record numbers so,
        which are not this CRM's ids.
        """
        known = {field.column_name for field in cls().fields.values()} - {"id"}
        column = _header_column(header, known, header_aliases(cls.entity))
        if column in known:
            return column
        return "id" if cell_text(header) == "id" else None

    def before_import(self, dataset, **kwargs):
        super().before_import(dataset, **kwargs)
        if dataset.headers:
            dataset.headers = [self.column_for_header(header) or header for header in dataset.headers]

    def import_field(self, field, instance, row, is_m2m=False, **kwargs):
        # An empty cell keeps what the record has, as in import_csv; columns of their own decide for themselves
        # (a lead's stage, contacts, tags).
        if (
            not is_m2m
            and isinstance(field.widget, (TextWidget, FlagWidget, DayWidget, AmountWidget, ChoiceWidget, UserWidget))
            and field.column_name in row
            and not isinstance(row[field.column_name], (bool, int, float, date))
            and not cell_text(row[field.column_name])
            and instance.pk is not None
        ):
            return
        if (
            self.fill_only()
            and not is_m2m
            and field.attribute
            and field.attribute not in ("phones", "emails", "messengers")
            and getattr(instance, field.attribute, None) not in (None, "", {}, [])
        ):
            return  # a duplicate updated by policy: what the record has is kept, only its empty fields are filled
        super().import_field(field, instance, row, is_m2m, **kwargs)

    def export_field(self, field, instance, **kwargs):
        value = super().export_field(field, instance, **kwargs)
        # Text that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is exported inert; numbers,
        # dates and yes/no are not text and stay as they are.
        if isinstance(field.widget, (widgets.NumberWidget, widgets.DateWidget, widgets.DateTimeWidget,
                                     widgets.BooleanWidget)):
            return value
        return cells.formula_escape(value)

    def lookup_instance(self, row):
        """Return the record a row names by its external ID or id (lookup_columns), or None."""
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
    entity = "customer"
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
            self.company_created(instance.company)


class CompanyResource(EntityResource):
    entity = "company"
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
    entity = "lead"
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
    entity = "order"
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
