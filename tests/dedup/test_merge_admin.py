"""Admin: an archived record's page leads to its survivor; merge jobs are listed and can be undone."""
import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import include, path, reverse

from crm.models import Customer
from dedup.admin.mixins import MergeableAdminMixin
from dedup.merge import merge_job_create, merge_job_run, records_merge
from dedup.models import MergeJob, Notification
from tests import factories

pytestmark = pytest.mark.django_db


# An admin site of its own, so the test does not depend on how the CRM's admin classes are put together.
class CustomerAdmin(MergeableAdminMixin, admin.ModelAdmin):
    pass


site = admin.AdminSite(name="admin")
site.register(Customer, CustomerAdmin)
urlpatterns = [path("admin/dedup/", include("dedup.urls")), path("admin/", site.urls)]


@pytest.mark.urls(__name__)
def test_archived_record_page_redirects_to_its_survivor(admin_client, manager):
    # Given a duplicate merged into a survivor
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    duplicate = factories.CustomerFactory(first_name="Vanya", last_name="Petrov")
    records_merge(survivor=survivor, absorbed=[duplicate], user=manager)

    # When someone opens the duplicate's old page
    response = admin_client.get(reverse("admin:crm_customer_change", args=[duplicate.pk]), follow=True)

    # Then they land on the survivor's page, told why
    assert response.redirect_chain == [(reverse("admin:crm_customer_change", args=[survivor.pk]), 302)]
    assert (
        f"Customer #{duplicate.pk} Petrov Vanya was merged into Customer #{survivor.pk} Petrov Ivan"
        in response.content.decode()
    )


@pytest.mark.urls(__name__)
def test_archived_record_page_follows_later_merges_to_the_live_record(admin_client, manager):
    # Given A merged into B, then B merged into C
    a, b, c = factories.CustomerFactory.create_batch(3)
    records_merge(survivor=b, absorbed=[a], user=manager)
    records_merge(survivor=c, absorbed=[b], user=manager)

    # When A's old page is opened
    response = admin_client.get(reverse("admin:crm_customer_change", args=[a.pk]))

    # Then it goes straight to C
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:crm_customer_change", args=[c.pk])


@pytest.mark.urls(__name__)
def test_live_record_page_is_not_redirected(admin_client):
    # Given a live customer, and an id that does not exist
    customer = factories.CustomerFactory()

    # When their pages are opened
    live = admin_client.get(reverse("admin:crm_customer_change", args=[customer.pk]))
    missing = admin_client.get("/admin/crm/customer/not-a-number/change/")

    # Then the live page shows as usual, and the bad id gets the admin's usual answer, not a crash
    assert live.status_code == 200
    assert missing.status_code == 302 and missing["Location"] == reverse("admin:index")


def test_merge_job_admin_lists_jobs_and_undoes_the_selected(client, manager, django_capture_on_commit_callbacks):
    # Given a finished merge and a manager who may merge and view merges
    manager.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_customer", "merge_records", "view_mergejob"])
    )
    client.force_login(manager)
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    duplicate = factories.CustomerFactory(first_name="Vanya", last_name="Petrov")
    job = merge_job_create(user=manager, survivor=survivor, absorbed=[duplicate])
    merge_job_run(job_id=job.pk)
    url = reverse("admin:dedup_mergejob_changelist")
    assert f">#{survivor.pk}</a>" in client.get(url).content.decode()

    # When they undo it from the list (the undo is a background job, run once the request committed)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "undo_merges", "_selected_action": [job.pk]}, follow=True)

    # Then the list says it is queued; once run, the duplicate is live again and the manager is notified
    assert "1 undo queued; you will be notified when it is done." in response.content.decode()
    duplicate.refresh_from_db()
    assert not duplicate.is_archived
    assert MergeJob.objects.get(pk=job.pk).status == MergeJob.Status.UNDONE
    assert Notification.objects.get(user=manager, job=job, message__startswith="Undo finished").level == "success"


def test_merge_job_admin_reports_a_refused_undo(client, manager, django_capture_on_commit_callbacks):
    # Given a merge whose filled field was edited since
    manager.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_customer", "merge_records", "view_mergejob"])
    )
    client.force_login(manager)
    survivor = factories.CustomerFactory(position="")
    duplicate = factories.CustomerFactory(position="Buyer")
    job = merge_job_create(user=manager, survivor=survivor, absorbed=[duplicate])
    merge_job_run(job_id=job.pk)
    Customer.objects.filter(pk=survivor.pk).update(position="CEO")

    # When they try to undo it (the background undo refuses)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:dedup_mergejob_changelist"), {"action": "undo_merges", "_selected_action": [job.pk]}
        )

    # Then the notification says why, and the merge stands (done, undoable again)
    notification = Notification.objects.get(user=manager, job=job, level="error")
    assert "changed after the merge" in notification.message
    assert MergeJob.objects.get(pk=job.pk).status == MergeJob.Status.DONE
