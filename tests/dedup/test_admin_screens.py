"""The admin's screens of issue 13: "Merge selected" on the lists, the dashboard, the favicon, the queue's pages,
and the notification payload an open card keeps up with."""
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from crm.models import Customer, Deal
from dedup.admin import charts
from dedup.models import DuplicateGroup, MergeJob, Rule, ScanRun
from dedup.notifications import notification_payload, notification_send
from dedup.review.dashboard import MERGE_DAYS, dashboard_figures
from tests import factories

ACTION = "merge_selected"


def _manager(*, merge=True, username="manager"):
    user = factories.UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="crm"))
    if merge:
        user.user_permissions.add(Permission.objects.get(codename="merge_records"))
    return user


def _post_action(client, model, records):
    return client.post(
        reverse(f"admin:crm_{model}_changelist"),
        {"action": ACTION, "_selected_action": [record.pk for record in records]},
    )


# --- Merge selected ------------------------------------------------------------------------------------------


def test_merge_selected_opens_the_compare_screen_for_the_chosen_customers(client, db):
    # Given three customers chosen on the list by a manager who may merge
    chosen = [factories.CustomerFactory(first_name="Ivan", last_name="Petrov") for _index in range(3)]
    client.force_login(_manager())

    # When "Merge selected" runs
    response = _post_action(client, "customer", reversed(chosen))

    # Then it goes to the compare screen of all three, the oldest as the priority record
    assert response.status_code == 302
    url = urlparse(response["Location"])
    assert url.path == reverse("admin:crm_customer_compare", args=[chosen[0].pk])
    query = parse_qs(url.query)
    assert query["records"] == [str(record.pk) for record in chosen]
    assert query["priority"] == [str(chosen[0].pk)]
    # and the compare screen opens with the three columns
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert len(page.context["columns"]) == 3


@pytest.mark.parametrize("model", ["customer", "company", "lead", "deal", "order"])
def test_merge_selected_is_offered_on_every_registered_list(admin_client, model):
    # When a registered entity's change list opens
    response = admin_client.get(reverse(f"admin:crm_{model}_changelist"))

    # Then "Merge selected" is one of its actions
    assert ACTION in dict(response.context["action_form"].fields["action"].choices)


def test_merge_selected_is_not_offered_without_the_merge_permission(client, db):
    # Given a manager who may change customers but not merge
    client.force_login(_manager(merge=False))
    chosen = factories.CustomerFactory.create_batch(2)

    # When the list opens, and when the action is posted anyway
    listing = client.get(reverse("admin:crm_customer_changelist"))
    response = _post_action(client, "customer", chosen)

    # Then the action is not there, and posting it does not reach the compare screen
    assert ACTION not in dict(listing.context["action_form"].fields["action"].choices)
    assert "compare" not in response.get("Location", "")


def test_merge_selected_wants_two_live_records(client, db):
    # Given a manager, one live customer and one already merged away
    client.force_login(_manager())
    live = factories.CustomerFactory()
    gone = factories.CustomerFactory(is_archived=True)

    # When one record alone is chosen, then a live one with the archived one
    alone = _post_action(client, "customer", [live])
    mixed = client.post(
        reverse("admin:crm_customer_changelist") + "?status=all",
        {"action": ACTION, "_selected_action": [live.pk, gone.pk]},
    )

    # Then neither opens the compare screen; each says why
    assert alone.status_code == 302 and "compare" not in alone["Location"]
    assert "compare" not in mixed.get("Location", "")
    messages = [str(m) for m in client.get(reverse("admin:crm_customer_changelist")).context["messages"]]
    assert any("at least two" in message for message in messages)


def test_merge_selected_works_for_deals(client, db, deal_pipeline):
    # Given two deals of one customer chosen on the deal list
    customer = factories.CustomerFactory()
    stage = deal_pipeline.stages.get(name="Open")
    deals = [Deal.objects.create(title="SEO", pipeline=deal_pipeline, stage=stage, customer=customer)
             for _index in range(2)]
    client.force_login(_manager())

    # When "Merge selected" runs
    response = _post_action(client, "deal", deals)

    # Then the compare screen of the two deals opens
    assert urlparse(response["Location"]).path == reverse("admin:crm_deal_compare", args=[deals[0].pk])
    assert client.get(response["Location"]).status_code == 200


# --- The dashboard ---------------------------------------------------------------------------------------------


def _run(days_ago, stats):
    started = timezone.now() - timedelta(days=days_ago)
    return ScanRun.objects.create(status=ScanRun.Status.DONE, started_at=started, finished_at=started, stats=stats)


def _job(user, *, days_ago=0, status=MergeJob.Status.DONE):
    return MergeJob.objects.create(
        entity_key="customer",
        content_type=ContentType.objects.get_for_model(Customer),
        survivor_id=1,
        absorbed_ids=[2],
        created_by=user,
        status=status,
        created_at=timezone.now() - timedelta(days=days_ago),
    )


def test_dashboard_figures_read_scans_merges_reasons_and_the_queue(db):
    # Given two scans, merges by two managers on two days (one failed), and open and dismissed groups
    _run(2, {"customer": {"groups": 10}, "lead": {"groups": 1}})
    _run(1, {"customer": {"groups": 7}, "lead": {"groups": 2}})
    anna, boris = factories.UserFactory(username="anna"), factories.UserFactory(username="boris")
    _job(anna), _job(anna), _job(anna, days_ago=3), _job(boris), _job(boris, status=MergeJob.Status.FAILED)
    rule = Rule.objects.filter(entity="customer").order_by("position", "id").first()
    for index in range(3):
        group = DuplicateGroup.objects.create(entity="customer", signature=f"s{index}", size=2)
        group.rules.add(rule)
    DuplicateGroup.objects.create(entity="lead", signature="l", size=2)
    DuplicateGroup.objects.create(entity="lead", signature="d", size=2, status=DuplicateGroup.Status.DISMISSED)

    # When the dashboard reads its figures
    board = dashboard_figures()

    # Then each entity's line has a point per scan, oldest first
    assert [value for _when, value in board.duplicates_over_time["Customers"]] == [10, 7]
    # merges are counted per day and per manager (the failed one not)
    assert len(board.merges_per_day) == MERGE_DAYS
    assert board.merges_per_day[-1][1] == 3 and board.merges_per_day[-4][1] == 1
    assert board.merges_per_manager == [("anna", 3), ("boris", 1)]
    # the top reason is the rule of the open groups, and the open queue is counted per entity
    assert board.top_reasons[0] == (f"Customers: {rule.name}", 3)
    assert board.open_queue == [("Customers", 3), ("Leads", 1)]
    assert board.open_total == 4


def test_dashboard_figures_take_the_same_queries_however_many_rows(db, django_assert_num_queries):
    # Given a few scans and merges, then many more
    manager = factories.UserFactory(username="anna")
    _run(1, {"customer": {"groups": 1}})
    _job(manager)
    with django_assert_num_queries(5):
        dashboard_figures()
    for days in range(2, 30):
        _run(days, {"customer": {"groups": days}, "deal": {"groups": 1}})
        _job(manager, days_ago=days)

    # Then the dashboard still reads them in five queries
    with django_assert_num_queries(5):
        dashboard_figures()


def test_admin_index_shows_the_dashboard_as_pictures(admin_client, db):
    # Given a finished scan and an open group
    _run(1, {"customer": {"groups": 3}})
    DuplicateGroup.objects.create(entity="customer", signature="x", size=2)

    # When the admin index opens
    content = admin_client.get(reverse("admin:index")).content.decode()

    # Then it draws the charts as inline SVG, linking the queue; no table of figures, no script from elsewhere
    assert content.count('<svg class="mw-chart"') == 5
    assert "Open review queue: 1 group" in content
    assert reverse("admin:dedup_duplicategroup_changelist") in content
    # (a script or stylesheet from another host; not the letters "cdn", which a random CSRF token may contain)
    assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', content)


def test_admin_index_hides_the_dashboard_from_staff_without_duplicate_control(client, db):
    # Given a staff user with no permission on duplicate control
    client.force_login(factories.UserFactory(username="clerk"))

    # Then the index shows no dashboard
    assert "mw-chart" not in client.get(reverse("admin:index")).content.decode()


def test_charts_draw_bars_to_scale_and_say_when_empty():
    # Given two bars, one twice the other
    svg = str(charts.hbar_chart([("Customers", 10), ("Leads", 5)], title="Queue", empty="Nothing"))

    # Then both are drawn with their values, and an empty chart says so in words
    assert svg.count("<rect") == 2 and ">10<" in svg and ">5<" in svg
    widths = [float(part.split('"')[0]) for part in svg.split('width="')[2:]]
    assert widths[0] == pytest.approx(2 * widths[1], rel=0.05)
    assert "Nothing" in str(charts.hbar_chart([], title="Queue", empty="Nothing"))
    assert "&lt;b&gt;" in str(charts.hbar_chart([("<b>", 1)], title="t", empty="e"))


# --- Small things the screens need -----------------------------------------------------------------------------


def test_favicon_is_linked_and_served(admin_client, client):
    # When any admin page opens, and when a browser asks for /favicon.ico
    page = admin_client.get(reverse("admin:index")).content.decode()
    response = client.get("/favicon.ico")

    # Then the page links the icon and /favicon.ico leads to it (no 404)
    assert 'rel="icon"' in page and "dedup/favicon.svg" in page
    assert response.status_code == 301 and response["Location"].endswith("dedup/favicon.svg")


def test_review_queue_pages_long_lists(admin_client, db):
    # Given more open groups than a page holds
    for index in range(30):
        DuplicateGroup.objects.create(entity="customer", signature=f"p{index}", size=2)

    # When the queue opens
    response = admin_client.get(reverse("admin:dedup_duplicategroup_changelist"))

    # Then it shows one page of 25 with a way to the next
    assert len(response.context["cl"].result_list) == 25
    assert response.context["cl"].multi_page


def test_notification_payload_names_its_merge_for_an_open_card(db):
    # Given a notification about a finished merge
    user = factories.UserFactory(username="anna")
    job = _job(user)
    notification = notification_send(user=user, message="Merged", job=job)

    # Then the toast script gets the merge's records, so the card of any of them can refresh
    payload = notification_payload(notification)
    assert payload["job"] == {
        "id": job.pk,
        "status": "done",
        "content_type": ContentType.objects.get_for_model(Customer).pk,
        "survivor": 1,
        "absorbed": [2],
    }


def test_day_chart_keeps_its_first_and_last_date_inside_the_picture():
    # Given thirty days of merges, read in Russian (a month's short name is longer: "5 дек.")
    from datetime import date, timedelta

    from django.utils import translation

    from dedup.admin.charts import day_bar_chart

    days = [(date(2026, 11, 6) + timedelta(days=index), index % 3) for index in range(30)]
    with translation.override("ru"):
        svg = str(day_bar_chart(days, title="t", empty="e", width=340))

    # Then the first date starts at the axis and the last ends at the plot's right edge
    assert 'text-anchor="start"' in svg and 'text-anchor="end"' in svg
    import re

    dates = re.findall(r'<text x="([0-9.]+)" y="144" text-anchor="(\w+)"', svg)  # the labels under the axis
    assert [anchor for _x, anchor in dates] == ["start", "middle", "end"]
    assert float(dates[-1][0]) == 340 - 6  # the plot's right edge (6 px margin)
