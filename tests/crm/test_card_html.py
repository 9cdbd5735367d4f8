"""The card's fieldsets and tabular inlines rendered by functions give the admin templates' HTML
(crm/admin/card_html.py)."""
import re
from unittest import mock

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission
from django.template import engines
from django.template.backends.django import DjangoTemplates

from crm.admin.card_html import FIELDSET_TEMPLATE, STOCK_SOURCES, TABULAR_TEMPLATE, is_stock
from crm.admin.inlines import CardInlineAdminFormSet
from tests import factories


def _collapsed(html: str) -> str:
    """The page with what differs between two renders of it (CSRF token, clock) left out, and whitespace runs
    made one space: the functions keep whitespace wherever the templates put some, not its length."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'data-rendered-at="[^"]+"', "", html)
    html = re.sub(r'value="\d\d:\d\d:\d\d"', "", html)  # the "now" of empty timeline rows
    return re.sub(r"\s+", " ", html)


def _both_ways(request):
    """(by the functions, by Django's templates) of the page `request()` answers."""
    fast = request()
    with mock.patch("crm.templatetags.crm_card.is_stock", return_value=False):
        stock = request()
    assert fast.status_code == stock.status_code
    return _collapsed(fast.content.decode()), _collapsed(stock.content.decode())


@pytest.fixture
def busy_customer(admin_user):
    customer = factories.CustomerFactory(first_name='O"Neil <b>', company=factories.CompanyFactory(), owner=admin_user)
    customer.tags.add(factories.TagFactory(name="vip & <co>"))
    factories.PhoneFactory(content_object=customer)
    factories.EmailFactory(content_object=customer)
    factories.MessengerFactory(content_object=customer)
    for make in [factories.NoteFactory, factories.TaskFactory, factories.CallFactory, factories.EmailMessageFactory]:
        make(content_object=customer, author=admin_user)
    return customer


@pytest.mark.django_db
def test_card_html_is_the_templates_on_every_kind_of_card(admin_client, busy_customer):
    # Given cards with every kind of inline (contacts, notes and tasks, an order's items with their foreign key),
    # add forms and a record with collapsed and multi-field lines
    order = factories.OrderFactory(customer=busy_customer)
    lead = factories.LeadFactory()
    urls = [f"/admin/crm/customer/{busy_customer.pk}/change/", "/admin/crm/customer/add/",
            f"/admin/crm/lead/{lead.pk}/change/", f"/admin/crm/order/{order.pk}/change/", "/admin/crm/deal/add/",
            f"/admin/crm/company/{busy_customer.company.pk}/change/"]
    for url in urls:
        # When each is rendered by the functions and by Django's templates
        fast, stock = _both_ways(lambda: admin_client.get(url))
        # Then the HTML is the same, and it is the card (its fields and inlines are there)
        assert fast == stock, url
        assert 'class="module aligned' in fast and "js-inline-admin-formset" in fast
    assert 'value="O&quot;Neil &lt;b&gt;"' in _both_ways(
        lambda: admin_client.get(f"/admin/crm/customer/{busy_customer.pk}/change/"))[0]


@pytest.mark.django_db
def test_card_html_is_the_templates_with_errors(admin_client, busy_customer):
    # Given a card posted with a field error and two pinned notes (an error of the notes' formset)
    url = f"/admin/crm/customer/{busy_customer.pk}/change/"
    page = admin_client.get(url)
    data = {key: value for key, value in _form_data(page).items()}
    data["last_name"] = ""
    prefix = "crm-note-content_type-object_id"
    data[f"{prefix}-TOTAL_FORMS"] = "2"
    data.update({f"{prefix}-1-text": "second", f"{prefix}-1-pinned": "on", f"{prefix}-0-pinned": "on"})
    # When it is rendered back both ways
    fast, stock = _both_ways(lambda: admin_client.post(url, data))
    # Then the errors are shown, the same
    assert fast == stock
    assert "errornote" in fast and "errorlist" in fast


@pytest.mark.django_db
def test_card_html_is_the_templates_for_a_reader_who_may_only_view(client, busy_customer):
    # Given a manager who may change customers but only view notes and tasks (read-only rows, no delete box)
    user = factories.UserFactory(is_staff=True)
    codenames = ["change_customer", "view_customer", "view_note", "view_task", "view_phone", "change_phone"]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    # When the card is rendered both ways
    fast, stock = _both_ways(lambda: client.get(f"/admin/crm/customer/{busy_customer.pk}/change/"))
    # Then it is the same
    assert fast == stock
    assert "inlineviewlink" in fast


def _form_data(response) -> dict:
    """The values the change form would post (inputs, checked boxes, selected options, text areas)."""
    html = response.content.decode()
    data = {}
    for tag in re.findall(r"<input [^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or "__prefix__" in name.group(1) or 'type="submit"' in tag:
            continue
        if 'type="checkbox"' in tag:
            if " checked" in tag:
                data[name.group(1)] = "on"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = value.group(1) if value else ""
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', body)
        if "__prefix__" not in name and chosen:
            data[name] = chosen.group(1)
    for name, body in re.findall(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        if "__prefix__" not in name:
            data[name] = body.strip()
    return data


def test_card_html_recognises_only_the_stock_templates(tmp_path):
    # Given Django's own templates, and an engine that finds a fieldset.html of its own first
    stock = engines["django"].engine
    override = tmp_path / "admin" / "includes"
    override.mkdir(parents=True)
    (override / "fieldset.html").write_text("<fieldset>{{ fieldset.name }}</fieldset>")
    overridden = DjangoTemplates({"NAME": "overridden", "DIRS": [str(tmp_path)], "APP_DIRS": True,
                                  "OPTIONS": {}}).engine
    # Then the stock ones are recognised, the override is not (its page renders the template)
    assert is_stock(stock, FIELDSET_TEMPLATE) and is_stock(stock, TABULAR_TEMPLATE)
    assert not is_stock(overridden, FIELDSET_TEMPLATE)
    assert set(STOCK_SOURCES) == {FIELDSET_TEMPLATE, TABULAR_TEMPLATE}


@pytest.mark.django_db
def test_card_inline_media_is_the_admins(admin_client, busy_customer):
    # Given a card whose inlines include split date-time widgets (tasks) and related selects
    url = f"/admin/crm/customer/{busy_customer.pk}/change/"
    # When its media is added up the admin's way (every row's) and the card's (the formset's)
    cheap = admin_client.get(url).context["media"]
    with mock.patch.object(CardInlineAdminFormSet, "media", helpers.InlineAdminFormSet.media):
        every_row = admin_client.get(url).context["media"]
    # Then the scripts and styles are the same, in the same order
    assert str(cheap) == str(every_row)
    assert "calendar.js" in str(cheap)
