"""FilterSets of the CRM's entities, and the same filters in the admin's sidebar through the adapter."""
import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from crm import filters, models
from tests import factories


def _listed(response):
    return list(response.context["cl"].result_list)


@pytest.fixture
def deals(db):
    """A new, a repeat and a repeat-inquiry deal."""
    return {
        "new": factories.DealFactory(title="First purchase"),
        "repeat": factories.DealFactory(title="Second purchase", is_repeat=True),
        "repeat_inquiry": factories.DealFactory(title="Asked again", is_repeat=True, is_repeat_inquiry=True),
    }


# --- FilterSets on their own --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["new", "repeat", "repeat_inquiry"])
def test_deal_filterset_kind_selects_one_kind(deals, kind):
    # Given a new, a repeat and a repeat-inquiry deal
    # When the deals are filtered by kind
    found = list(filters.DealFilterSet(data={"kind": kind}, queryset=models.Deal.objects.all()).qs)
    # Then exactly the deal of that kind is found
    assert found == [deals[kind]]


def test_lead_filterset_kind_splits_leads_into_three_kinds(db):
    # Given leads of every combination of the repeat flags
    leads = [
        factories.LeadFactory(is_repeat=repeat, is_repeat_inquiry=inquiry)
        for repeat in (False, True)
        for inquiry in (False, True)
    ]
    # When they are filtered by each kind
    found = {
        kind: set(filters.LeadFilterSet(data={"kind": kind}, queryset=models.Lead.objects.all()).qs)
        for kind, _label in filters.KindFilter.CHOICES
    }
    # Then every lead is in exactly one kind
    assert sorted(len(group) for group in found.values()) == [1, 1, 2]
    assert set.union(*found.values()) == set(leads)


def test_entity_filterset_hides_archived_records_unless_asked(db):
    # Given an active and an archived company
    active = factories.CompanyFactory(name="Active LLC")
    archived = factories.CompanyFactory(name="Old LLC", is_archived=True)
    queryset = models.Company.objects.all()
    # Then without a status only the active one is found; the status filter finds the others
    assert list(filters.CompanyFilterSet(data={}, queryset=queryset).qs) == [active]
    assert list(filters.CompanyFilterSet(data={"archived": "archived"}, queryset=queryset).qs) == [archived]
    assert set(filters.CompanyFilterSet(data={"archived": "all"}, queryset=queryset).qs) == {active, archived}


def test_order_filterset_filters_by_owner_tag_status_and_created_range(db):
    # Given orders of two managers, one tagged, made on different days
    alice, bob = factories.UserFactory(username="alice"), factories.UserFactory(username="bob")
    tag = factories.TagFactory(name="wholesale")
    january = factories.OrderFactory(owner=alice, status=models.Order.Status.SHIPPED)
    march = factories.OrderFactory(owner=bob)
    march.tags.add(tag)
    models.Order.objects.filter(pk=january.pk).update(created_at=timezone.make_aware(datetime.datetime(2025, 1, 15)))
    models.Order.objects.filter(pk=march.pk).update(created_at=timezone.make_aware(datetime.datetime(2025, 3, 15)))
    queryset = models.Order.objects.all()

    def found(**data):
        return list(filters.OrderFilterSet(data=data, queryset=queryset).qs)

    # Then each filter finds its order
    assert found(owner=alice.pk) == [january]
    assert found(tags=[tag.pk]) == [march]
    assert found(status="shipped") == [january]
    assert found(created_after="2025-01-01", created_before="2025-01-31") == [january]
    assert found(created_after="2025-03-15") == [march]


def test_customer_filterset_source_choices_are_the_sources_in_use(db):
    # Given customers from two sources and one without
    factories.CustomerFactory(source="Website")
    factories.CustomerFactory(source="Exhibition")
    factories.CustomerFactory(source="")
    # When the source filter lists its choices
    field = filters.CustomerFilterSet(queryset=models.Customer.objects.all()).filters["source"].field
    # Then they are the sources in use, without an empty one
    assert [value for value, _label in field.choices if value] == ["Exhibition", "Website"]


# --- The adapter, through the admin change lists ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["new", "repeat", "repeat_inquiry"])
def test_admin_deal_changelist_kind_filter_shows_only_that_kind(admin_client, deals, kind):
    # When the deal list is filtered by kind in the sidebar
    response = admin_client.get(reverse("admin:crm_deal_changelist"), {"kind": kind})
    # Then only deals of that kind are listed
    assert response.status_code == 200
    assert _listed(response) == [deals[kind]]


def test_admin_deal_changelist_sidebar_offers_the_kinds_as_links(admin_client, deals):
    # When the deal list opens
    content = admin_client.get(reverse("admin:crm_deal_changelist")).content.decode()
    # Then the sidebar offers New / Repeat / Repeat inquiry
    assert 'data-filter-title="kind"' in content
    for query, label in (("?kind=new", "New"), ("?kind=repeat", "Repeat"), ("?kind=repeat_inquiry", "Repeat inquiry")):
        assert f'<a href="{query}">{label}</a>' in content


def test_admin_lead_changelist_combines_kind_stage_and_channel(admin_client, db):
    # Given leads in two stages from two channels, some repeat
    won = factories.StageFactory(
        name="Won", semantic=models.Stage.Semantic.WON, pipeline__kind=models.Pipeline.Kind.LEAD, pipeline__name="Leads"
    )
    match = factories.LeadFactory(stage=won, channel="telegram", is_repeat=True)
    factories.LeadFactory(stage=won, channel="telegram")
    factories.LeadFactory(channel="telegram", is_repeat=True)
    factories.LeadFactory(stage=won, channel="phone", is_repeat=True)
    # When the list is filtered by stage, channel and kind together
    response = admin_client.get(
        reverse("admin:crm_lead_changelist"), {"stage": won.pk, "channel": "telegram", "kind": "repeat"}
    )
    # Then only the lead matching all three is listed
    assert _listed(response) == [match]
    # And the stage meaning filter works on its own
    by_meaning = admin_client.get(reverse("admin:crm_lead_changelist"), {"stage_semantic": "won"})
    assert len(_listed(by_meaning)) == 3


def test_admin_customer_changelist_filters_by_owner_tag_and_nobody(admin_client, db):
    # Given customers of a manager, a tagged one, and one without a manager
    manager = factories.UserFactory(username="olga")
    tag = factories.TagFactory(name="vip")
    owned = factories.CustomerFactory(owner=manager)
    tagged = factories.CustomerFactory()
    tagged.tags.add(tag)
    url = reverse("admin:crm_customer_changelist")
    # Then each sidebar filter lists its customers
    assert _listed(admin_client.get(url, {"owner": manager.pk})) == [owned]
    assert _listed(admin_client.get(url, {"tags": tag.pk})) == [tagged]
    assert set(_listed(admin_client.get(url, {"owner": "null"}))) == {tagged}


def test_admin_changelist_created_range_filter_form(admin_client, db):
    # Given an order from January and one from March
    january = factories.OrderFactory(number="JAN")
    march = factories.OrderFactory(number="MAR")
    models.Order.objects.filter(pk=january.pk).update(created_at=timezone.make_aware(datetime.datetime(2025, 1, 15)))
    models.Order.objects.filter(pk=march.pk).update(created_at=timezone.make_aware(datetime.datetime(2025, 3, 15)))
    url = reverse("admin:crm_order_changelist")
    # When the sidebar's date form is submitted for January, with another filter active
    response = admin_client.get(url, {"created_after": "2025-01-01", "created_before": "2025-01-31", "status": "new"})
    # Then only January's order is listed and the form keeps the other filter as a hidden field
    assert _listed(response) == [january]
    content = response.content.decode()
    assert '<input type="date" id="id_created_after" name="created_after" value="2025-01-01">' in content
    assert '<input type="hidden" name="status" value="new">' in content
    # And an open-ended range works too
    assert _listed(admin_client.get(url, {"created_after": "2025-02-01"})) == [march]


@pytest.mark.parametrize("query", [{"kind": "sometimes"}, {"created_after": "not-a-date"}, {"owner": "999999"}])
def test_admin_changelist_with_a_bad_filter_value_shows_the_error_page(admin_client, deals, query):
    # When a filter gets a value it does not know
    response = admin_client.get(reverse("admin:crm_deal_changelist"), query)
    # Then the admin redirects to its "invalid filter" page instead of crashing or ignoring it
    assert response.status_code == 302
    assert response.url.endswith("?e=1")


def test_admin_archived_filter_has_no_separate_all_link(admin_client, db):
    # When a change list opens
    content = admin_client.get(reverse("admin:crm_company_changelist")).content.decode()
    # Then the status filter offers Active (selected), Archived and All, and no second "All"
    start = content.index('data-filter-title="status"')
    block = content[start:content.index("</details>", start)]
    assert block.count("<li") == 3
    assert '<li class="selected">\n    <a href="?archived=active">Active</a>' in block


def test_admin_changelist_with_facets_counts_every_filter_choice(admin_client, deals):
    # Given a new, a repeat and a repeat-inquiry deal, and an archived repeat deal
    factories.DealFactory(title="Merged away", is_repeat=True, is_archived=True)
    # When the deal list is shown with counts
    content = admin_client.get(reverse("admin:crm_deal_changelist"), {"_facets": "True"}).content.decode()
    # Then each kind and each status shows how many deals it has
    assert "New (1)</a>" in content
    assert "Repeat (1)</a>" in content
    assert "Repeat inquiry (1)</a>" in content
    assert "Active (3)</a>" in content
    assert "Archived (1)</a>" in content
    assert "All (4)</a>" in content
