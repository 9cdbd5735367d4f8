"""Notifications: stored per user, polled by every admin page as toasts, marked read, listed in the admin."""
import json

import pytest
from django.urls import reverse

from dedup.models import Notification
from dedup.notifications import notification_send, notifications_mark_read, notifications_unread
from tests import factories

pytestmark = pytest.mark.django_db

POLL_URL = "/admin/dedup/notifications/poll/"
READ_URL = "/admin/dedup/notifications/read/"


@pytest.fixture
def staff_client(client, manager):
    client.force_login(manager)
    return client


def test_notifications_unread_are_the_users_own_and_unread(manager):
    # Given notifications for the manager (one read already) and one for someone else
    other = factories.UserFactory(username="other")
    first = notification_send(user=manager, message="Merge finished", level=Notification.Level.SUCCESS)
    read = notification_send(user=manager, message="Old news")
    notification_send(user=other, message="Not yours")
    notifications_mark_read(user=manager, ids=[read.pk])
    second = notification_send(user=manager, message="Merge failed", level=Notification.Level.ERROR)

    # When the manager's unread notifications are read, all and after the first
    # Then only theirs, unread, newest first
    assert list(notifications_unread(manager)) == [second, first]
    assert list(notifications_unread(manager, after_id=first.pk)) == [second]


def test_notifications_mark_read_touches_only_the_users_notifications(manager):
    # Given a notification of the manager and one of another user
    other = factories.UserFactory(username="other")
    mine = notification_send(user=manager, message="Mine")
    theirs = notification_send(user=other, message="Theirs")

    # When the manager marks both ids read
    marked = notifications_mark_read(user=manager, ids=[mine.pk, theirs.pk])

    # Then only the manager's own is read
    assert marked == 1
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.is_read and not theirs.is_read


def test_notification_send_refuses_an_unknown_level(manager):
    # Given a level the toast does not know
    # When a notification is sent with it
    # Then it is refused and nothing stored
    with pytest.raises(ValueError):
        notification_send(user=manager, message="?", level="shout")
    assert not Notification.objects.exists()


def test_notifications_poll_returns_unread_since_an_id(staff_client, manager):
    # Given two unread notifications of the manager, one with a link, and one of someone else
    first = notification_send(user=manager, message="Merge finished", url="/admin/crm/customer/1/change/")
    second = notification_send(user=manager, message="Merge failed: changed meanwhile", level="error")
    notification_send(user=factories.UserFactory(username="other"), message="Not yours")

    # When the page polls, first for everything, then for what is newer than the first
    everything = staff_client.get(POLL_URL).json()
    newer = staff_client.get(POLL_URL, {"after": first.pk}).json()

    # Then it gets the manager's notifications, newest first, with their links, and the unread count
    assert [item["id"] for item in everything["notifications"]] == [second.pk, first.pk]
    assert everything["notifications"][1] == {
        "id": first.pk,
        "level": "info",
        "message": "Merge finished",
        "url": "/admin/crm/customer/1/change/",
        "created_at": first.created_at.isoformat(),
        "popped": False,
        "job": None,
    }
    assert everything["unread"] == 2
    assert [item["id"] for item in newer["notifications"]] == [second.pk]


def test_notifications_poll_refuses_a_bad_after(staff_client):
    # Given a poll with garbage instead of an id
    response = staff_client.get(POLL_URL, {"after": "abc"})

    # Then it is a clear 400, not a crash
    assert response.status_code == 400
    assert "after" in response.json()["error"]


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_notifications_poll_is_for_staff_only(client, who):
    # Given a visitor who is not logged in, or a user who is not staff
    if who == "not staff":
        client.force_login(factories.UserFactory(username="customer", is_staff=False))

    # When they poll
    response = client.get(POLL_URL)

    # Then they are sent to the admin login
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("count", [3, 30])
def test_notifications_poll_query_count_does_not_grow(staff_client, manager, count, django_assert_max_num_queries):
    # Given 3 or 30 unread notifications
    for index in range(count):
        notification_send(user=manager, message=f"Merge {index} finished")

    # When the page polls
    # Then it costs the same few queries (session, user, list, count)
    with django_assert_max_num_queries(4):
        response = staff_client.get(POLL_URL)
    assert len(response.json()["notifications"]) == min(count, 20)


def test_notifications_read_endpoint_marks_the_dismissed_toast_read(staff_client, manager):
    # Given two unread notifications
    dismissed = notification_send(user=manager, message="Merge finished")
    kept = notification_send(user=manager, message="Another merge finished")

    # When the user dismisses the first toast
    response = staff_client.post(READ_URL, data=json.dumps({"ids": [dismissed.pk]}), content_type="application/json")

    # Then it is read and no longer polled; the other one still is
    assert response.json() == {"marked": 1, "unread": 1}
    assert [item["id"] for item in staff_client.get(POLL_URL).json()["notifications"]] == [kept.pk]


@pytest.mark.parametrize(
    "body", ['{"ids": ["x"]}', '{"ids": 5}', "not json", "[]", "[1, 2]", '"ids"', "5", "null", '{"ids": null}']
)
def test_notifications_read_endpoint_refuses_bad_input(staff_client, manager, body):
    # Given an unread notification
    notification = notification_send(user=manager, message="Merge finished")

    # When the endpoint gets garbage
    response = staff_client.post(READ_URL, data=body, content_type="application/json")

    # Then it answers 400 and marks nothing
    assert response.status_code == 400
    notification.refresh_from_db()
    assert not notification.is_read


def test_admin_pages_carry_the_toast_container_and_script(staff_client):
    # Given a logged-in manager
    # When they open any admin page
    page = staff_client.get(reverse("admin:index")).content.decode()

    # Then it has the Mergewise branding, the toast container with the poll URL, and the script
    assert ">Mergewise</a>" in page
    assert 'id="mw-toasts"' in page and f'data-poll-url="{POLL_URL}"' in page
    assert "dedup/notifications.js" in page and "dedup/notifications.css" in page
    assert reverse("admin:dedup_notification_changelist") in page


def test_admin_login_page_has_no_toasts(client):
    # Given a visitor who is not logged in
    # When they open the login page
    page = client.get(reverse("admin:login")).content.decode()

    # Then there is nothing to poll
    assert 'id="mw-toasts"' not in page and ">Mergewise</a>" in page


def test_notification_list_in_the_admin_shows_only_the_users_own(staff_client, manager):
    # Given a notification for the manager with a link, and one for another user
    notification_send(user=manager, message="Merge finished: Ivan Petrov", url="/admin/crm/customer/7/change/")
    notification_send(user=factories.UserFactory(username="other"), message="Somebody else's merge")

    # When the manager opens the notification list
    page = staff_client.get(reverse("admin:dedup_notification_changelist")).content.decode()

    # Then they see their own, with the link to the survivor, and not the other user's
    assert "Merge finished: Ivan Petrov" in page
    assert 'href="/admin/crm/customer/7/change/"' in page
    assert "Somebody else" not in page


def test_notification_list_mark_read_action(staff_client, manager):
    # Given two unread notifications
    first = notification_send(user=manager, message="One")
    second = notification_send(user=manager, message="Two")

    # When the manager marks the first read from the list
    response = staff_client.post(
        reverse("admin:dedup_notification_changelist"),
        {"action": "mark_read", "_selected_action": [first.pk]},
        follow=True,
    )

    # Then it is read and the list says so
    assert "1 notification marked read." in response.content.decode()
    assert list(notifications_unread(manager)) == [second]


POPPED_URL = "/admin/dedup/notifications/popped/"


def test_notifications_pop_once_per_user_whichever_browser_asks(manager, client):
    # Given a notification and two browsers of the same manager
    notification = notification_send(user=manager, message="Merge finished", level=Notification.Level.SUCCESS)
    laptop, phone = client, type(client)()
    laptop.force_login(manager)
    phone.force_login(manager)
    assert laptop.get(POLL_URL).json()["notifications"][0]["popped"] is False

    # When the laptop pops it as a toast
    claimed = laptop.post(POPPED_URL, data=json.dumps({"ids": [notification.pk]}), content_type="application/json")

    # Then the laptop shows it; the phone is told it popped already (it is in the list, unread, not a toast)
    assert claimed.json() == {"popped": [notification.pk]}
    polled = phone.get(POLL_URL).json()
    assert polled["notifications"][0]["popped"] is True and polled["unread"] == 1
    again = phone.post(POPPED_URL, data=json.dumps({"ids": [notification.pk]}), content_type="application/json")
    assert again.json() == {"popped": []}


def test_notifications_popped_endpoint_touches_only_the_users_own_and_refuses_bad_input(staff_client, manager):
    other = notification_send(user=factories.UserFactory(username="someone"), message="Not yours")
    response = staff_client.post(POPPED_URL, data=json.dumps({"ids": [other.pk]}), content_type="application/json")
    assert response.json() == {"popped": []}
    other.refresh_from_db()
    assert other.popped_at is None
    for body in ("[1]", '{"ids": "1"}', "{}", "not json"):
        response = staff_client.post(POPPED_URL, data=body, content_type="application/json")
        assert response.status_code == 400, body
