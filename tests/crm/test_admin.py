"""The CRM admin: every list and form renders, search, archived records, inlines and bounded query counts."""
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from crm import models
from crm.admin.card_timeline import HISTORY_LATEST
from crm.admin.inlines import LatestRowsFormSet
from tests import factories

# Models with their own change list, by admin URL name.
REGISTERED = [
    "customer",
    "company",
    "pipeline",
    "stage",
    "lead",
    "deal",
    "order",
    "tag",
    "note",
    "task",
    "call",
    "emailmessage",
    "smsmessage",
    "chatmessage",
    "attachment",
]

# The timeline kinds the card shows as read-only tables, in their order.
HISTORY_MODELS = [models.Call, models.EmailMessage, models.SmsMessage, models.ChatMessage, models.Attachment]

# The fixed bounds of the query-count tests: the same for 3 rows as for 30. Measured on SQLite: change lists 11
# (notes) to 17 (deals), the customer card 24, duplicate control's badges included. A query per row would add
# at least 27 with 30 rows; the few queries of headroom leave room for small additions to the pages.
CHANGELIST_MAX_QUERIES = 20
CHANGE_FORM_MAX_QUERIES = 26


def _url(model_name, view="changelist", *args):
    return reverse(f"admin:crm_{model_name}_{view}", args=args)


def _timeline(record, author, count=1):
    """Give a record `count` rows of every kind of timeline item (the first note pinned) and return it."""
    for index in range(count):
        factories.NoteFactory(content_object=record, author=author, pinned=index == 0)
        factories.TaskFactory(content_object=record, author=author, assignee=author)
        factories.CallFactory(content_object=record, author=author)
        factories.EmailMessageFactory(content_object=record, author=author)
        factories.SmsMessageFactory(content_object=record, author=author)
        factories.ChatMessageFactory(content_object=record, author=author)
        factories.AttachmentFactory(content_object=record, author=author)
    return record


@pytest.fixture
def records(db, admin_user):
    """One record of every kind, each with contacts and a timeline; returned by admin URL name."""
    tag = factories.TagFactory(name="vip")
    company = factories.CompanyFactory(name="Acme LLC", owner=admin_user)
    customer = factories.CustomerFactory(
        first_name="Ivan", last_name="Petrov", company=company, owner=admin_user, external_id="crm-1"
    )
    customer.tags.add(tag)
    factories.PhoneFactory(content_object=customer, number="+7 912 345-67-89", is_primary=True)
    factories.EmailFactory(content_object=customer, address="ivan@example.com")
    factories.MessengerFactory(content_object=customer, username="ivanp")
    lead = factories.LeadFactory(title="Website request", first_name="Anna", customer=customer)
    factories.PhoneFactory(content_object=lead, number="+7 903 111-22-33")
    deal = factories.DealFactory(title="Annual plan", customer=customer, company=company)
    order = factories.OrderFactory(number="A-100", customer=customer, phone="8 (912) 345-67-89")
    factories.OrderItemFactory(order=order)
    for record in (customer, company, lead, deal, order):
        _timeline(record, admin_user)
    note = customer.notes.get(pinned=True)
    return {
        "customer": customer,
        "company": company,
        "pipeline": deal.pipeline,
        "stage": deal.stage,
        "lead": lead,
        "deal": deal,
        "order": order,
        "tag": tag,
        "note": note,
        "task": models.Task.objects.first(),
        "call": models.Call.objects.first(),
        "emailmessage": models.EmailMessage.objects.first(),
        "smsmessage": models.SmsMessage.objects.first(),
        "chatmessage": models.ChatMessage.objects.first(),
        "attachment": models.Attachment.objects.first(),
    }


def _result_count(response):
    return response.context["cl"].result_count


def _listed(response):
    return list(response.context["cl"].result_list)


# --- Every page renders -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", REGISTERED)
def test_admin_changelist_renders_with_rows(admin_client, records, model_name):
    # Given one record of every kind
    # When a superuser opens the change list
    response = admin_client.get(_url(model_name))
    # Then it renders and lists the record
    assert response.status_code == 200
    assert records[model_name] in _listed(response)


@pytest.mark.parametrize("model_name", REGISTERED)
def test_admin_add_form_renders(admin_client, db, model_name):
    # When a superuser opens the empty form of a new record
    response = admin_client.get(_url(model_name, "add"))
    # Then it renders
    assert response.status_code == 200
    assert response.context["adminform"] is not None


@pytest.mark.parametrize("model_name", REGISTERED)
def test_admin_change_form_renders(admin_client, records, model_name):
    # Given a record with contacts and a timeline
    record = records[model_name]
    # When a superuser opens its form
    response = admin_client.get(_url(model_name, "change", record.pk))
    # Then it renders with the record's own text
    assert response.status_code == 200
    assert str(record)[:30] in response.content.decode()


def test_admin_customer_change_form_shows_contacts_and_timeline(admin_client, records):
    # Given a customer with a phone, an email, a Telegram handle and one item of every timeline kind
    customer = records["customer"]
    # When the card opens
    response = admin_client.get(_url("customer", "change", customer.pk))
    content = response.content.decode()
    # Then the contacts, notes and tasks are inlines of it
    assert "+7 912 345-67-89" in content
    assert "ivan@example.com" in content
    assert "ivanp" in content
    inline_models = {formset.formset.model for formset in response.context["inline_admin_formsets"]}
    assert inline_models == {models.Phone, models.Email, models.MessengerHandle, models.Note, models.Task}
    # and every other timeline kind is a read-only table of it, each item linked
    history = response.context["crm_history"]
    assert [table.title for table in history.tables] == [
        "Calls", "Email messages", "SMS", "Chat messages", "Attachments"
    ]
    for table, model in zip(history.tables, HISTORY_MODELS, strict=True):
        item = model.objects.get(object_id=customer.pk, content_type__model="customer")
        assert [row.url for row in table.rows] == [_url(model._meta.model_name, "change", item.pk)]
        assert f'href="{table.rows[0].url}"' in content
    assert "+79123456789" in content  # the call's phone


def test_admin_order_change_form_shows_items_and_timeline(admin_client, records):
    # When an order's card opens
    response = admin_client.get(_url("order", "change", records["order"].pk))
    # Then its items, notes and tasks are inlines of it, its attachments a table
    inline_models = {formset.formset.model for formset in response.context["inline_admin_formsets"]}
    assert models.OrderItem in inline_models
    assert models.Note in inline_models and models.Task in inline_models
    assert [len(table.rows) for table in response.context["crm_history"].tables] == [1, 1, 1, 1, 1]
    assert "Widget" in response.content.decode()


def test_admin_pipeline_change_form_edits_stages_inline(admin_client, records):
    # Given a pipeline with one stage
    pipeline = records["pipeline"]
    stage = pipeline.stages.get()
    # When a stage is added in the pipeline's form
    response = admin_client.post(
        _url("pipeline", "change", pipeline.pk),
        {
            "name": pipeline.name,
            "kind": pipeline.kind,
            "sort_order": 0,
            "stages-TOTAL_FORMS": 2,
            "stages-INITIAL_FORMS": 1,
            "stages-0-id": stage.pk,
            "stages-0-pipeline": pipeline.pk,
            "stages-0-name": stage.name,
            "stages-0-semantic": stage.semantic,
            "stages-0-sort_order": 0,
            "stages-1-pipeline": pipeline.pk,
            "stages-1-name": "Won",
            "stages-1-semantic": "won",
            "stages-1-sort_order": 9,
        },
    )
    # Then the pipeline has both stages
    assert response.status_code == 302
    assert list(pipeline.stages.values_list("name", "semantic")) == [("New", "open"), ("Won", "won")]


# --- Search -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    ["Petrov", "Acme", "ivan@example", "+79123456789", "8 (912) 345-67-89", "912 345", "ivanp", "crm-1"],
)
def test_admin_customer_search_finds_by_name_company_phone_email_handle_external_id(admin_client, records, term):
    # Given Ivan Petrov of Acme LLC, +7 912 345-67-89, ivan@example.com, @ivanp, external ID crm-1, and another
    factories.CustomerFactory(first_name="Olga", last_name="Smirnova")
    # When the change list is searched
    response = admin_client.get(_url("customer"), {"q": term})
    # Then only Ivan is listed
    assert _listed(response) == [records["customer"]]


def test_admin_customer_search_lists_a_customer_with_two_matching_phones_once(admin_client, records):
    # Given a customer with the same number written twice in different forms
    factories.PhoneFactory(content_object=records["customer"], number="89123456789")
    # When the number is searched in a third form
    response = admin_client.get(_url("customer"), {"q": "+7 (912) 345 67 89"})
    # Then the customer is one row
    assert _listed(response) == [records["customer"]]


@pytest.mark.parametrize(
    ("model_name", "term"),
    [
        ("company", "Acme"),
        ("lead", "8 903 111 22 33"),
        ("lead", "Website"),
        ("deal", "Annual"),
        ("order", "A-100"),
        ("order", "+79123456789"),
        ("note", None),
        ("task", None),
    ],
)
def test_admin_search_finds_records(admin_client, records, model_name, term):
    # When a change list is searched for a record's number, phone (any form), title or name
    term = term or str(records[model_name]).split()[0]
    response = admin_client.get(_url(model_name), {"q": term})
    # Then the record is found
    assert response.status_code == 200
    assert records[model_name] in _listed(response)


def test_admin_search_of_unknown_text_lists_nothing(admin_client, records):
    response = admin_client.get(_url("customer"), {"q": "Zzyzx"})
    assert _listed(response) == []


# --- Archived records ---------------------------------------------------------------------------------------------


def test_admin_changelist_hides_archived_records_by_default(admin_client, records):
    # Given a customer merged into Ivan (archived) and Ivan himself
    merged = factories.CustomerFactory(
        first_name="Ivan", last_name="Petroff", is_archived=True, merged_into=records["customer"]
    )
    # When the change list opens without filters
    default = admin_client.get(_url("customer"))
    # Then only active customers are listed and "Active" is the selected status
    assert _listed(default) == [records["customer"]]
    assert merged not in _listed(default)
    assert '<li class="selected">\n    <a href="?archived=active">Active</a>' in default.content.decode()
    # And the filter shows archived ones, or all
    assert _listed(admin_client.get(_url("customer"), {"archived": "archived"})) == [merged]
    assert set(_listed(admin_client.get(_url("customer"), {"archived": "all"}))) == {merged, records["customer"]}


def test_admin_archived_record_still_opens(admin_client, records):
    # Given an archived lead
    lead = records["lead"]
    models.Lead.objects.filter(pk=lead.pk).update(is_archived=True)
    # When its page is opened directly
    response = admin_client.get(_url("lead", "change", lead.pk))
    # Then it shows (duplicate control redirects merged-away pages; the admin never hides them)
    assert response.status_code == 200


def test_admin_autocomplete_offers_active_records_only(admin_client, records):
    # Given an active and an archived company with similar names
    archived = factories.CompanyFactory(name="Acme Old LLC", is_archived=True)
    # When the company field of a customer autocompletes "Acme"
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "Acme", "app_label": "crm", "model_name": "customer", "field_name": "company"},
    )
    # Then only the active company is offered
    ids = [item["id"] for item in response.json()["results"]]
    assert ids == [str(records["company"].pk)]
    assert str(archived.pk) not in ids


# --- Inlines ------------------------------------------------------------------------------------------------------


def _customer_form_data(customer, **extra):
    data = {
        "last_name": customer.last_name,
        "first_name": customer.first_name,
        "middle_name": "",
        "position": "",
        "birthday": "",
        "source": "",
        "external_id": customer.external_id,
        "custom_fields": "{}",
    }
    inline_prefixes = [
        "crm-phone-content_type-object_id",
        "crm-email-content_type-object_id",
        "crm-messengerhandle-content_type-object_id",
        "crm-note-content_type-object_id",
        "crm-task-content_type-object_id",
        "crm-call-content_type-object_id",
        "crm-emailmessage-content_type-object_id",
        "crm-smsmessage-content_type-object_id",
        "crm-chatmessage-content_type-object_id",
        "crm-attachment-content_type-object_id",
    ]
    for prefix in inline_prefixes:
        data[f"{prefix}-TOTAL_FORMS"] = 0
        data[f"{prefix}-INITIAL_FORMS"] = 0
    data.update(extra)
    return data


def test_admin_customer_form_adds_phone_with_international_form_and_note_by_current_user(admin_client, admin_user):
    # Given a customer without contacts
    customer = factories.CustomerFactory(first_name="Maria", last_name="Ivanova")
    phones = "crm-phone-content_type-object_id"
    notes = "crm-note-content_type-object_id"
    # When a phone in national form and a pinned note are added on the card
    response = admin_client.post(
        _url("customer", "change", customer.pk),
        _customer_form_data(
            customer,
            **{
                f"{phones}-TOTAL_FORMS": 1,
                f"{phones}-0-number": "8 (912) 000-11-22",
                f"{phones}-0-kind": "mobile",
                f"{phones}-0-is_primary": "on",
                f"{notes}-TOTAL_FORMS": 1,
                f"{notes}-0-text": "Prefers calls after 6 pm",
                f"{notes}-0-pinned": "on",
                f"{notes}-0-created_at_0": "2025-01-10",
                f"{notes}-0-created_at_1": "10:00:00",
            },
        ),
    )
    # Then the phone is stored with its international form and the note is pinned and authored by the user
    assert response.status_code == 302, response.context and response.context["errors"]
    phone = customer.phones.get()
    assert (phone.number, phone.e164, phone.is_primary) == ("8 (912) 000-11-22", "+79120001122", True)
    note = customer.notes.get()
    assert (note.pinned, note.author) == (True, admin_user)


def test_admin_customer_form_refuses_a_second_pinned_note(admin_client, admin_user):
    # Given a customer with a pinned note
    customer = factories.CustomerFactory(first_name="Maria", last_name="Ivanova")
    pinned = factories.NoteFactory(content_object=customer, pinned=True, text="Pinned", author=admin_user)
    notes = "crm-note-content_type-object_id"
    # When another note is added pinned too
    response = admin_client.post(
        _url("customer", "change", customer.pk),
        _customer_form_data(
            customer,
            **{
                f"{notes}-TOTAL_FORMS": 2,
                f"{notes}-INITIAL_FORMS": 1,
                f"{notes}-0-id": pinned.pk,
                f"{notes}-0-text": "Pinned",
                f"{notes}-0-pinned": "on",
                f"{notes}-0-created_at_0": "2025-01-10",
                f"{notes}-0-created_at_1": "10:00:00",
                f"{notes}-1-text": "Also important",
                f"{notes}-1-pinned": "on",
                f"{notes}-1-created_at_0": "2025-01-11",
                f"{notes}-1-created_at_1": "10:00:00",
            },
        ),
    )
    # Then the form says why instead of failing on the database's constraint, and nothing is added
    assert response.status_code == 200
    assert "Only one note can be pinned" in response.content.decode()
    assert customer.notes.count() == 1


def _contacts_saved_on_card(admin_client, customer, *, phones: int, emails: int):
    """Post the customer's card with new phones and emails; return the response."""
    phone_rows, email_rows = "crm-phone-content_type-object_id", "crm-email-content_type-object_id"
    data = {f"{phone_rows}-TOTAL_FORMS": phones, f"{email_rows}-TOTAL_FORMS": emails}
    for row in range(phones):
        data |= {f"{phone_rows}-{row}-number": f"8 (912) {customer.pk % 1000:03d}-11-{row:02d}", f"{phone_rows}-{row}-kind": "mobile"}
    for row in range(emails):
        data[f"{email_rows}-{row}-address"] = f"client{customer.pk}.{row}@example.com"
    return admin_client.post(_url("customer", "change", customer.pk), _customer_form_data(customer, **data))


def test_admin_customer_card_save_keeps_the_index_once_however_many_contact_rows(
    admin_client, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from dedup import registry
    from dedup.engine import index
    from dedup.models import MatchKey

    # Given the queries of a card saved with one new phone and one new email (after a first save warmed the caches)
    warm, one, five = factories.CustomerFactory.create_batch(3, first_name="Maria", last_name="Ivanova")
    assert _contacts_saved_on_card(admin_client, warm, phones=1, emails=1).status_code == 302
    with CaptureQueriesContext(connection) as one_each:
        assert _contacts_saved_on_card(admin_client, one, phones=1, emails=1).status_code == 302
    # When another card is saved with 3 phones and 2 emails, then it costs only the 3 more rows' own INSERTs: the
    # customer's keys are kept once for the save, not once more per row (a load and a write each, 15 queries more)
    with django_assert_max_num_queries(len(one_each) + 3):
        response = _contacts_saved_on_card(admin_client, five, phones=3, emails=2)
    assert response.status_code == 302, response.context and response.context["errors"]
    # and the keys written are the customer's whole keys, the same as reindexing it from scratch writes
    def keys():
        return sorted(MatchKey.objects.filter(entity="customer", record_id=five.pk).values_list("kind", "key"))

    written = keys()
    assert [kind for kind, _key in written].count("phone") == 3 and [kind for kind, _key in written].count("email") == 2
    index.reindex(registry.get("customer"), [five.pk])
    assert keys() == written


def test_admin_card_history_links_to_all_of_the_records_items_and_to_add_one(admin_client, admin_user):
    # Given a customer with seven calls and another customer with one
    customer = factories.CustomerFactory(first_name="Maria", last_name="Ivanova")
    calls = factories.CallFactory.create_batch(HISTORY_LATEST + 2, content_object=customer, author=admin_user)
    factories.CallFactory(content_object=factories.CustomerFactory(), author=admin_user)
    # When the card opens
    response = admin_client.get(_url("customer", "change", customer.pk))
    table = response.context["crm_history"].tables[0]
    # Then its calls table shows the latest five and says there are more
    assert (len(table.rows), table.more) == (HISTORY_LATEST, True)
    # and its "All calls" link lists exactly the customer's calls
    listed = admin_client.get(table.all_url)
    assert listed.status_code == 200
    assert set(_listed(listed)) == set(calls)
    # and its "Add call" link opens the call form for this customer
    added = admin_client.get(table.add_url)
    assert added.status_code == 200
    initial = added.context["adminform"].form.initial
    customer_type = ContentType.objects.get_for_model(models.Customer)
    assert (str(initial["content_type"]), str(initial["object_id"])) == (str(customer_type.pk), str(customer.pk))


def test_admin_customer_form_saves_a_note_edited_after_it_left_the_latest(admin_client, admin_user):
    # Given a customer whose card showed its latest notes, the oldest of them edited in the form
    customer = factories.CustomerFactory(first_name="Maria", last_name="Ivanova")
    notes = [
        factories.NoteFactory(content_object=customer, author=admin_user, text=f"Note {index}")
        for index in range(LatestRowsFormSet.latest)
    ]
    oldest = min(notes, key=lambda note: (note.created_at, note.pk))
    # and a note added by someone else meanwhile (the oldest is no longer among the latest)
    factories.NoteFactory(content_object=customer, author=admin_user, text="Meanwhile")
    prefix = "crm-note-content_type-object_id"
    # When the form is saved with the oldest note changed
    response = admin_client.post(
        _url("customer", "change", customer.pk),
        _customer_form_data(
            customer,
            **{
                f"{prefix}-TOTAL_FORMS": 1,
                f"{prefix}-INITIAL_FORMS": 1,
                f"{prefix}-0-id": oldest.pk,
                f"{prefix}-0-text": "Edited",
                f"{prefix}-0-created_at_0": "2025-01-10",
                f"{prefix}-0-created_at_1": "10:00:00",
            },
        ),
    )
    # Then the edit is saved on that note, and no note is added
    assert response.status_code == 302, response.context and response.context["errors"]
    oldest.refresh_from_db()
    assert oldest.text == "Edited"
    assert customer.notes.count() == LatestRowsFormSet.latest + 1


def test_admin_sidebar_follows_a_permission_granted(db):
    # Given a staff manager who may view customers but not calls, whose sidebar was drawn once
    manager = factories.UserFactory(is_staff=True)
    manager.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client = Client()
    client.force_login(manager)
    calls = _url("call")

    def sidebar_links():
        response = client.get(_url("customer"))
        assert response.status_code == 200
        return {model["admin_url"] for app in response.context["available_apps"] for model in app["models"]}

    assert calls not in sidebar_links()
    # When they are allowed to view calls
    manager.user_permissions.add(Permission.objects.get(codename="view_call"))
    # Then their next page's sidebar lists the calls
    assert calls in sidebar_links()
    admin.site.app_list_forget()


def test_admin_sidebar_html_is_the_app_lists_and_marks_each_page(admin_client, records):
    # Given the sidebar drawn on a customer's card, then kept
    from django.template import engines

    def sidebar(url):
        response = admin_client.get(url)
        html = response.content.decode()
        start = html.index('<nav class="sticky" id="nav-sidebar"')
        return response, html[start: html.index("</nav>", start)]

    first, kept = sidebar(_url("customer", "change", records["customer"].pk))
    _again, kept_again = sidebar(_url("customer", "change", records["customer"].pk))
    # Then it is Django's app_list.html over the user's list, the customers marked as the current model
    stock = engines["django"].from_string(
        "{% include 'admin/app_list.html' with app_list=available_apps show_changelinks=False %}"
    ).render({"available_apps": first.context["available_apps"]}, request=first.wsgi_request)
    assert stock.strip() in kept and kept == kept_again
    assert 'class="model-customer current-model"' in kept
    # When a deal list opens: the deals are marked, not the customers
    _deals, on_deals = sidebar(_url("deal"))
    assert 'class="model-deal current-model"' in on_deals and 'class="model-customer current-model"' not in on_deals
    admin.site.app_list_forget()


def test_admin_changelist_columns_show_primary_contacts_and_kind(admin_client, records):
    # Given Ivan with a primary phone and a repeat lead
    models.Lead.objects.filter(pk=records["lead"].pk).update(is_repeat=True)
    # When the customer and lead lists open
    customers = admin_client.get(_url("customer")).content.decode()
    leads = admin_client.get(_url("lead")).content.decode()
    # Then the columns show the primary phone, email, company and the lead's kind
    assert "+7 912 345-67-89" in customers and "ivan@example.com" in customers and "Acme LLC" in customers
    assert "Repeat" in leads


# --- Query counts -------------------------------------------------------------------------------------------------


def _customers(count, owner):
    company = factories.CompanyFactory(owner=owner)
    tag = factories.TagFactory(name="list")
    for _index in range(count):
        customer = factories.CustomerFactory(company=company, owner=owner)
        customer.tags.add(tag)
        factories.PhoneFactory(content_object=customer)
        factories.EmailFactory(content_object=customer)


def _leads(count, owner):
    for index in range(count):
        lead = factories.LeadFactory(owner=owner, is_repeat=index % 2 == 0)
        factories.PhoneFactory(content_object=lead)
        factories.EmailFactory(content_object=lead)


def _deals(count, owner):
    customer = factories.CustomerFactory()
    company = factories.CompanyFactory()
    for _index in range(count):
        factories.DealFactory(owner=owner, customer=customer, company=company, service="Audit")


def _orders(count, owner):
    for _index in range(count):
        factories.OrderFactory(owner=owner)


@pytest.mark.parametrize("rows", [3, 30])
@pytest.mark.parametrize(
    ("model_name", "make"), [("customer", _customers), ("lead", _leads), ("deal", _deals), ("order", _orders)]
)
def test_admin_changelist_query_count_does_not_grow_with_rows(
    admin_client, admin_user, django_assert_max_num_queries, model_name, make, rows
):
    # Given 3 or 30 records with contacts, owners, stages and tags
    make(rows, admin_user)
    # When the change list opens, the same number of queries serves both
    with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):
        response = admin_client.get(_url(model_name))
    # Then every record is listed
    assert response.status_code == 200
    assert _result_count(response) == rows


@pytest.mark.parametrize("rows", [3, 30])
def test_admin_customer_change_form_query_count_does_not_grow_with_rows(
    admin_client, admin_user, django_assert_max_num_queries, rows
):
    # Given a customer with 3 or 30 phones, emails, messenger handles and rows of every timeline kind
    customer = factories.CustomerFactory(company=factories.CompanyFactory(), owner=admin_user)
    customer.tags.add(factories.TagFactory(name="vip"))
    for _index in range(rows):
        factories.PhoneFactory(content_object=customer)
        factories.EmailFactory(content_object=customer)
        factories.MessengerFactory(content_object=customer)
    _timeline(customer, admin_user, count=rows)
    # When the card opens, the same number of queries serves both
    with django_assert_max_num_queries(CHANGE_FORM_MAX_QUERIES):
        response = admin_client.get(_url("customer", "change", customer.pk))
    # Then every contact is on the card, and the latest notes, tasks and history items with a link to the rest
    assert response.status_code == 200
    formsets = {formset.formset.model: formset.formset for formset in response.context["inline_admin_formsets"]}
    assert len(formsets[models.Phone].initial_forms) == rows
    assert len(formsets[models.Task].initial_forms) == min(rows, LatestRowsFormSet.latest)
    assert len(formsets[models.Note].initial_forms) == min(rows, LatestRowsFormSet.latest)
    attachments = response.context["crm_history"].tables[-1]
    assert (len(attachments.rows), attachments.more) == (min(rows, HISTORY_LATEST), rows > HISTORY_LATEST)
    newest = customer.attachments.order_by("-created_at", "-id").first()
    assert attachments.rows[0].url == _url("attachment", "change", newest.pk)
    if rows > HISTORY_LATEST:
        assert f'href="{attachments.all_url}"' in response.content.decode().replace("&amp;", "&")


@pytest.mark.parametrize("rows", [3, 30])
def test_admin_timeline_changelist_query_count_does_not_grow_with_rows(
    admin_client, admin_user, django_assert_max_num_queries, rows
):
    # Given 3 or 30 notes, on customers and leads in turn
    for index in range(rows):
        record = factories.CustomerFactory() if index % 2 == 0 else factories.LeadFactory()
        factories.NoteFactory(content_object=record, author=admin_user)
    # When the notes list opens (each row links its record)
    with django_assert_max_num_queries(CHANGELIST_MAX_QUERIES):
        response = admin_client.get(_url("note"))
    # Then every note is listed with a link to its record
    content = response.content.decode()
    assert _result_count(response) == rows
    assert content.count("/admin/crm/customer/") >= (rows + 1) // 2
    assert content.count("/admin/crm/lead/") >= rows // 2


def test_admin_order_total_shows_in_list(admin_client, db):
    factories.OrderFactory(number="B-7", total=Decimal("1234.50"))
    content = admin_client.get(_url("order")).content.decode()
    assert "B-7" in content and "1234.50" in content


def test_admin_note_add_form_attaches_a_note_to_a_record_by_the_current_user(admin_client, admin_user, records):
    # Given the note form offers the CRM's entities as the record kinds
    form = admin_client.get(_url("note", "add")).context["adminform"].form
    offered = {content_type.model for content_type in form.fields["content_type"].queryset}
    assert offered == {"customer", "company", "lead", "deal", "order"}
    # When a note is added to a deal from the notes list
    deal = records["deal"]
    response = admin_client.post(
        _url("note", "add"),
        {
            "content_type": ContentType.objects.get_for_model(models.Deal).pk,
            "object_id": deal.pk,
            "text": "Discount agreed",
            "created_at_0": "2025-02-01",
            "created_at_1": "09:30:00",
        },
    )
    # Then the deal's timeline has it, written by the current user
    assert response.status_code == 302
    note = deal.notes.get(text="Discount agreed")
    assert note.author == admin_user
