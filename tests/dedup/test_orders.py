"""Orders as RetailCRM counts their duplicates: the same customer or contact with the same items (or the same
total) placed within a window; a repeat purchase is never a duplicate, on the card, in the counts and in the scan."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from crm.models import Order
from dedup.engine import counts, keys
from dedup.engine.finder import duplicate_counts, duplicates_of
from dedup.engine.scan import find_groups
from dedup.engine.selectors import with_duplicates
from dedup.models import DuplicatePair, Rule
from tests import factories
from tests.dedup.engine_helpers import ensure_default_rules, pks

pytestmark = pytest.mark.django_db

PLACED = timezone.now().replace(microsecond=0) - timedelta(days=30)


@pytest.fixture(autouse=True)
def default_rules():
    ensure_default_rules()


def order(customer=None, *, at, items=(("Shoes", 1),), total="1015.00", phone="", email="", number=None):
    """An order placed at `at` hours after PLACED, with these (name, quantity) items."""
    kwargs = {"number": number} if number else {}
    created = factories.OrderFactory(
        customer=customer, total=Decimal(total), phone=phone, email=email, **kwargs
    )
    for name, quantity in items:
        factories.OrderItemFactory(order=created, name=name, quantity=quantity, price=Decimal("1"))
    created.created_at = PLACED + timedelta(hours=at)
    created.save(update_fields=["created_at"])  # auto_now_add set it at creation; the index follows the save
    return created


def groups():
    return [sorted(group.ids) for group in find_groups("order")]


def test_default_order_rules_replace_phone_and_email():
    # Given the rules the migrations leave
    names = set(Rule.objects.filter(entity="order").values_list("name", flat=True))

    # Then orders match on a customer or contact together with items or total, never on a contact alone
    assert names == {
        "Same customer and items", "Same customer and total", "Same phone and items", "Same phone and total",
        "Same email and items", "Same email and total",
    }


def test_orders_repeat_purchase_next_week_is_not_a_duplicate():
    # Given a customer who buys the same shoes for the same total again a week later
    customer = factories.CustomerFactory()
    first = order(customer, at=0)
    again = order(customer, at=7 * 24)

    # Then neither the card, the counts, the filter nor the scan calls them duplicates
    assert pks(duplicates_of(first)) == set()
    assert duplicate_counts(Order, [first.pk, again.pk]) == {first.pk: 0, again.pk: 0}
    assert not with_duplicates(Order.objects.all()).exists()
    assert groups() == []


def test_orders_three_different_purchases_of_one_phone_are_not_grouped():
    # Given the case from the queue: one phone, three orders with other items and totals (1015 / 1198 / 1864)
    a = order(None, at=0, phone="+7 912 345-67-89", items=[("Shoes", 1)], total="1015.00")
    b = order(None, at=1, phone="+7 912 345-67-89", items=[("Hat", 2)], total="1198.00")
    c = order(None, at=2, phone="+7 912 345-67-89", items=[("Coat", 1)], total="1864.00")

    # Then none is a duplicate of another
    assert pks(duplicates_of(a)) == set()
    assert duplicate_counts(Order, [a.pk, b.pk, c.pk]) == {a.pk: 0, b.pk: 0, c.pk: 0}
    assert groups() == []


def test_orders_same_customer_same_items_within_two_hours_are_duplicates():
    # Given the same basket (lines in another order) placed twice within two hours, with different totals
    customer = factories.CustomerFactory()
    first = order(customer, at=0, items=[("Shoes", 1), ("Socks", 3)], total="1015.00")
    second = order(customer, at=2, items=[("Socks", 3), ("Shoes", 1)], total="1020.00")

    # Then they are duplicates everywhere, with the reason in words
    found = duplicates_of(first)
    assert pks(found) == {second.pk}
    reasons = " ".join(found[0].reasons)
    assert "items" in reasons and "within 24 hours" in reasons
    assert duplicate_counts(Order, [first.pk]) == {first.pk: 1}
    assert set(with_duplicates(Order.objects.all()).values_list("pk", flat=True)) == {first.pk, second.pk}
    assert groups() == [sorted([first.pk, second.pk])]


def test_orders_same_email_same_total_within_the_window_are_duplicates():
    # Given two orders without a customer, the same email and total, other items, ten hours apart
    first = order(None, at=0, email="anna@example.com", items=[("Shoes", 1)], total="1864.00")
    second = order(None, at=10, email="Anna@Example.com", items=[("Boots", 1)], total="1864.00")
    other_total = order(None, at=11, email="anna@example.com", items=[("Hat", 1)], total="99.00")

    # Then the same total makes the first two duplicates, not the third
    assert pks(duplicates_of(first)) == {second.pk}
    assert groups() == [sorted([first.pk, second.pk])]
    assert pks(duplicates_of(other_total)) == set()


def test_orders_window_changed_by_the_admin_takes_effect():
    # Given the same basket bought again after two days
    customer = factories.CustomerFactory()
    first = order(customer, at=0)
    second = order(customer, at=48)
    assert pks(duplicates_of(first)) == set()

    # When the admin widens the window of the customer + items rule to three days
    rule = Rule.objects.get(entity="order", name="Same customer and items")
    rule.time_window_hours = 72
    rule.save()

    # Then they are duplicates by that rule, on the card and in the scan
    found = duplicates_of(first)
    assert pks(found) == {second.pk}
    assert [match.rule.pk for match in found] == [rule.pk]
    assert groups() == [sorted([first.pk, second.pk])]

    # And narrowing it to one hour makes two orders two hours apart different again
    rule.time_window_hours = 1
    rule.save()
    third = order(customer, at=100, number="late-1", total="10.00")
    fourth = order(customer, at=102, number="late-2", total="20.00")
    assert second.pk not in pks(duplicates_of(first))
    assert fourth.pk not in pks(duplicates_of(third))


def test_orders_scan_never_chains_a_repeat_purchase_through_one_in_between():
    # Given the same basket at 0 h, 20 h and 40 h (each next one within 24 h of the previous)
    customer = factories.CustomerFactory()
    ids = [order(customer, at=hours).pk for hours in (0, 20, 40)]

    # Then the scan groups the first two, and the third (40 h after the first) is not in their group
    assert groups() == [sorted(ids[:2])]


def test_orders_counts_rebuild_respects_the_window():
    customer = factories.CustomerFactory()
    first = order(customer, at=0)
    second = order(customer, at=1)
    order(customer, at=200)

    counts.counts_rebuild(entity="order")

    stored = set(DuplicatePair.objects.filter(entity="order").values_list("record_id", "other_id"))
    assert stored == {(first.pk, second.pk), (second.pk, first.pk)}


def test_orders_time_key_sorts_as_time_and_survives_garbage():
    early, late = PLACED, PLACED + timedelta(days=400)
    assert keys.time_key(early) < keys.time_key(late)
    assert keys.time_rows(None) == [] and keys.time_rows("yesterday") == []
    assert keys.seconds_apart(keys.time_key(early), keys.time_key(early + timedelta(hours=2))) == 7200
    assert keys.seconds_apart("x", "1") is None


def test_orders_window_is_a_form_error_for_entities_not_in_time(admin_client):
    # When an admin sets a window on a customer rule, or a window of zero hours on an order rule
    base = {
        "name": "x", "active": "on", "position": "0",
        "conditions-TOTAL_FORMS": "1", "conditions-INITIAL_FORMS": "0",
        "conditions-MIN_NUM_FORMS": "1", "conditions-MAX_NUM_FORMS": "1000",
        "conditions-0-method": "normalized", "conditions-0-position": "0",
    }
    response = admin_client.post(
        "/admin/dedup/rule/add/",
        {**base, "entity": "customer", "conditions-0-field": "customer:phone", "time_window_hours": "5"},
    )
    assert response.status_code == 200
    assert "are not placed in time" in response.content.decode()
    response = admin_client.post(
        "/admin/dedup/rule/add/",
        {**base, "entity": "order", "conditions-0-field": "order:phone", "time_window_hours": "0"},
    )
    assert response.status_code == 200
    assert not Rule.objects.filter(name="x").exists()


def _placed_shown(record) -> str:
    from django.contrib.admin.utils import display_for_field

    return str(display_for_field(record.created_at, Order._meta.get_field("created_at"), ""))


def test_orders_screens_show_date_total_and_items(admin_client, django_capture_on_commit_callbacks):
    from django.urls import reverse

    from dedup import review
    from dedup.models import DuplicateGroup

    # Given an order placed twice within an hour
    customer = factories.CustomerFactory()
    first = order(customer, at=0, items=[("Running shoes", 1), ("Socks", 3)], total="1198.00")
    second = order(customer, at=1, items=[("Socks", 3), ("Running shoes", 1)], total="1198.00")

    # Then the card's list of duplicates shows each order's date, total and items
    html = admin_client.get(reverse("admin:crm_order_duplicates", args=[first.pk]), {"fragment": "1"}).content.decode()
    for record in (first, second):
        assert _placed_shown(record) in html
    assert "1198.00" in html or "1198,00" in html
    assert html.count("Running shoes \u00d71, Socks \u00d73") >= 2  # both rows (and the reason)

    # And the compare screen shows them in each record's column
    compare = admin_client.get(
        reverse("admin:crm_order_compare", args=[first.pk]), {"records": [first.pk, second.pk]}
    ).content.decode()
    assert _placed_shown(first) in compare and _placed_shown(second) in compare
    assert compare.count("Running shoes \u00d71, Socks \u00d73") >= 2

    # And the review queue's group page does too
    with django_capture_on_commit_callbacks(execute=True):
        review.scan_start(entities=["order"])
    group = DuplicateGroup.objects.get(entity="order")
    page = admin_client.get(reverse("admin:dedup_duplicategroup_change", args=[group.pk])).content.decode()
    assert _placed_shown(first) in page and _placed_shown(second) in page
    assert page.count("Running shoes \u00d71, Socks \u00d73") >= 2  # both members (and the reason)
