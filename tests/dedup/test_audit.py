"""Merges, undos, "not a duplicate" decisions and rule changes are in the admin's History of the records."""
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import translation

from crm.models import Customer
from dedup import review
from dedup.merge import merge_job_create, merge_job_run, merge_undo
from dedup.models import DuplicateGroup, NotDuplicate, Rule
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules


def _history(record) -> list[str]:
    """The record's History entries as a reader in the active language sees them."""
    from dedup.templatetags.dedup_log import log_message

    return [
        log_message(entry)
        for entry in LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(record), object_id=str(record.pk)
        ).order_by("pk")
    ]


def test_audit_merge_and_undo_are_in_each_records_history(admin_user, django_capture_on_commit_callbacks):
    # given two customers merged by an admin
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    absorbed = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    with django_capture_on_commit_callbacks(execute=False):
        job = merge_job_create(user=admin_user, survivor=survivor, absorbed=[absorbed])
    merge_job_run(job_id=job.pk)
    # then each record's History says so, naming the other record
    assert _history(survivor) == [f"Merge #{job.pk}: 1 record merged into this one: customer #{absorbed.pk} Petrov Ivan."]
    assert _history(absorbed) == [f"Merge #{job.pk}: merged into customer #{survivor.pk} Petrov Ivan and archived."]
    # when the merge is undone
    job.refresh_from_db()
    merge_undo(job=job, user=admin_user)
    # then the undo is logged too, by the admin who did it
    assert _history(survivor)[-1].startswith(f"Merge #{job.pk} undone: 1 record separated again")
    assert _history(absorbed)[-1].startswith(f"Merge #{job.pk} undone: a record of its own again")
    assert set(LogEntry.objects.values_list("user_id", flat=True)) == {admin_user.pk}


def test_audit_the_history_page_shows_the_merge(admin_client, admin_user, django_capture_on_commit_callbacks):
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    absorbed = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    with django_capture_on_commit_callbacks(execute=False):
        job = merge_job_create(user=admin_user, survivor=survivor, absorbed=[absorbed])
    merge_job_run(job_id=job.pk)
    page = admin_client.get(reverse("admin:crm_customer_history", args=[survivor.pk])).content.decode()
    assert f"Merge #{job.pk}: 1 record merged into this one" in page


def test_audit_merge_is_logged_in_the_requesters_language(admin_user, django_capture_on_commit_callbacks):
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    absorbed = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    with translation.override("ru"), django_capture_on_commit_callbacks(execute=False):
        job = merge_job_create(user=admin_user, survivor=survivor, absorbed=[absorbed])
    merge_job_run(job_id=job.pk)
    # stored as a message: each reader sees it in their own language, whoever merged
    with translation.override("ru"):
        assert _history(survivor)[0].startswith(f"Объединение №{job.pk}")
        assert f"клиент №{absorbed.pk} Petrov Ivan" in _history(survivor)[0]
    with translation.override("en"):
        assert _history(survivor)[0].startswith(f"Merge #{job.pk}: 1 record merged")


def test_audit_review_queue_dismissal_is_in_each_records_history(admin_user, django_capture_on_commit_callbacks):
    # given a scan that found two customers sharing a phone
    ensure_default_rules()
    first = customer_with("Ivan", "Petrov", phones=["+7 912 000-45-67"])
    second = customer_with("Ivan", "Petrov", phones=["8 912 000-45-67"])
    with django_capture_on_commit_callbacks(execute=True):
        review.scan_start()
    group = DuplicateGroup.objects.get(status=DuplicateGroup.Status.OPEN)
    # when an admin dismisses the group
    review.group_dismiss(group=group, user=admin_user)
    # then both records' History say they were marked as not duplicates of each other
    assert _history(first) == [
        f"Marked as not a duplicate of customer #{second.pk} Petrov Ivan. (Review queue, group #{group.pk} dismissed.)"
    ]
    assert _history(second)[0].startswith(f"Marked as not a duplicate of customer #{first.pk} Petrov Ivan.")


def test_audit_rule_change_in_the_admin_is_logged(admin_client, admin_user):
    ensure_default_rules()
    rule = Rule.objects.filter(entity="customer").first()
    response = admin_client.post(
        reverse("admin:dedup_rule_changelist"),
        {
            "form-TOTAL_FORMS": 1, "form-INITIAL_FORMS": 1, "form-0-id": rule.pk,
            "form-0-active": "" if rule.active else "on", "_save": "Save",
        },
    )
    assert response.status_code == 302
    entry = LogEntry.objects.get(content_type=ContentType.objects.get_for_model(Rule), object_id=str(rule.pk))
    assert entry.user_id == admin_user.pk and "Active" in entry.get_change_message()


def test_not_duplicate_admin_shows_names_and_links_and_forgets_a_pair(admin_client, admin_user):
    from dedup.engine.not_duplicates import not_duplicate_mark

    # given a pair marked as not duplicates
    first = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    second = factories.CustomerFactory(first_name="Anna", last_name="Sidorova")
    not_duplicate_mark(entity="customer", pair=(first.pk, second.pk), user=admin_user)
    pair = NotDuplicate.objects.get()
    # then the list names both records with links to them and says which records they are
    page = admin_client.get(reverse("admin:dedup_notduplicate_changelist")).content.decode()
    assert f"Customer #{first.pk} Petrov Ivan" in page and f"Customer #{second.pk} Sidorova Anna" in page
    assert reverse("admin:crm_customer_change", args=[first.pk]) in page
    assert "Customers" in page or "customers" in page
    # when the admin forgets the pair
    response = admin_client.post(
        reverse("admin:dedup_notduplicate_changelist"),
        {"action": "forget_pairs", "_selected_action": [pair.pk]},
        follow=True,
    )
    # then it is gone and both records' History say so
    assert "1 pair forgotten." in response.content.decode()
    assert not NotDuplicate.objects.exists()
    assert _history(first)[-1] == f"No longer marked as not a duplicate of customer #{second.pk} Sidorova Anna."


def test_not_duplicate_admin_forgetting_needs_the_delete_permission(client, admin_user):
    from django.contrib.auth.models import Permission

    from dedup.engine.not_duplicates import not_duplicate_mark

    first, second = factories.CustomerFactory(), factories.CustomerFactory()
    not_duplicate_mark(entity="customer", pair=(first.pk, second.pk), user=admin_user)
    viewer = factories.UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_notduplicate"))
    client.force_login(viewer)
    client.post(
        reverse("admin:dedup_notduplicate_changelist"),
        {"action": "forget_pairs", "_selected_action": [NotDuplicate.objects.get().pk]},
    )
    assert NotDuplicate.objects.exists()
    assert Customer.objects.count() == 2
