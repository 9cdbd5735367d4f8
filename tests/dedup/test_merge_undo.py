"""Undo puts every field, row, link and flag back exactly, or refuses with the reason when that is not safe."""
import datetime

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied

from crm.models import Customer
from dedup.merge import MergeError, merge_undo, records_merge
from dedup.models import MergeJob
from tests import factories
from tests.dedup.test_merge_relations import give_everything

pytestmark = pytest.mark.django_db


def crm_state() -> dict:
    """Every row of every CRM table, through tables included; updated_at aside (undo is itself an edit)."""
    state = {}
    for model in apps.get_app_config("crm").get_models(include_auto_created=True):
        rows = []
        for row in model._base_manager.order_by("pk").values():
            row.pop("updated_at", None)
            rows.append(row)
        state[model._meta.label] = rows
    return state


@pytest.fixture
def merger(db):
    """A manager allowed to change customers and merge them."""
    user = factories.UserFactory(username="merger")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_customer", "merge_records", "change_company"])
    )
    return user


def done_job(survivor, absorbed, result, user) -> MergeJob:
    """A finished job as the worker leaves it, for a merge made with records_merge."""
    return MergeJob.objects.create(
        entity_key="customer",
        content_type=ContentType.objects.get_for_model(survivor),
        survivor_id=survivor.pk,
        absorbed_ids=[record.pk for record in absorbed],
        created_by=user,
        status=MergeJob.Status.DONE,
        snapshot=result.snapshot,
    )


def rich_duplicates():
    """A survivor and two duplicates with fields to fill, contacts to unite, tags, pins and a whole timeline."""
    company = factories.CompanyFactory(name="Acme LLC")
    survivor = factories.CustomerFactory(
        first_name="Ivan", last_name="Petrov", position="", external_id="", custom_fields={"size": "M"}
    )
    first = factories.CustomerFactory(
        first_name="Ivan",
        last_name="Petrov",
        position="Buyer",
        company=company,
        external_id="1C-7",
        birthday=datetime.date(1990, 1, 2),
        custom_fields={"size": "L", "city": "Kazan"},
    )
    second = factories.CustomerFactory(first_name="Vanya", last_name="Petrov")
    give_everything(survivor, tag_names=["vip"], phone="+7 912 345-67-89", email="ivan@example.com", handle="ivan")
    give_everything(first, rows_per_kind=3, tag_names=["vip", "wholesale"], phone="8 912 345 67 89",
                    email="IVAN@example.com", handle="@Ivan")  # fmt: skip
    give_everything(second, rows_per_kind=2, tag_names=["wholesale"], phone="+7 912 000-00-02")
    factories.NoteFactory(content_object=survivor, text="Survivor's pin", pinned=True)
    factories.NoteFactory(content_object=first, text="First's pin", pinned=True)
    factories.NoteFactory(content_object=second, text="Second's pin", pinned=True)
    factories.PhoneFactory(content_object=second, number="+7 912 000-00-03", is_primary=True)
    return survivor, first, second


def test_merge_undo_restores_every_row_exactly(merger):
    # Given duplicates with everything a merge changes, and the whole CRM as it was before the merge
    survivor, first, second = rich_duplicates()
    before = crm_state()
    result = records_merge(survivor=survivor, absorbed=[first, second], user=merger)
    job = done_job(survivor, [first, second], result, merger)
    assert crm_state() != before

    # When the merge is undone
    merge_undo(job=job, user=merger)

    # Then every row of every CRM table is as it was before the merge, and the job says it was undone
    assert crm_state() == before
    job.refresh_from_db()
    assert job.status == MergeJob.Status.UNDONE and job.undone_by == merger and job.undone_at is not None


def test_merge_undo_keeps_rows_added_to_the_survivor_after_the_merge(merger):
    # Given a merge, after which a manager wrote a new note on the survivor
    survivor, first, second = rich_duplicates()
    result = records_merge(survivor=survivor, absorbed=[first, second], user=merger)
    job = done_job(survivor, [first, second], result, merger)
    later = factories.NoteFactory(content_object=survivor, text="Written after the merge")

    # When the merge is undone
    merge_undo(job=job, user=merger)

    # Then the new note stays with the survivor, the merge note is gone, the absorbed records are live again
    assert set(survivor.notes.values_list("text", flat=True)) >= {later.text}
    assert not survivor.notes.filter(text__startswith="Merged ").exists()
    assert Customer.objects.filter(pk__in=[first.pk, second.pk], is_archived=False).count() == 2


def test_merge_undo_refuses_when_a_filled_field_was_edited_since(merger):
    # Given a merge that filled the survivor's position, edited by hand afterwards
    survivor, first, second = rich_duplicates()
    result = records_merge(survivor=survivor, absorbed=[first, second], user=merger)
    job = done_job(survivor, [first, second], result, merger)
    survivor.refresh_from_db()
    survivor.position = "Chief buyer"
    survivor.save()

    # When the merge is undone
    with pytest.raises(MergeError, match="Position of .* changed after the merge"):
        merge_undo(job=job, user=merger)

    # Then nothing moved back: the edit stays and the duplicates stay archived
    survivor.refresh_from_db()
    assert survivor.position == "Chief buyer"
    assert Customer.objects.filter(pk__in=[first.pk, second.pk], is_archived=True).count() == 2
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE


def test_merge_undo_refuses_when_the_survivor_was_merged_into_another_record(merger):
    # Given a merge whose survivor was later merged into a third customer
    survivor, first, second = rich_duplicates()
    result = records_merge(survivor=survivor, absorbed=[first, second], user=merger)
    job = done_job(survivor, [first, second], result, merger)
    third = factories.CustomerFactory()
    records_merge(survivor=third, absorbed=[survivor], user=merger)

    # When the first merge is undone
    # Then it refuses, pointing at the later merge
    with pytest.raises(MergeError, match=f"merged into #{third.pk} afterwards; undo that merge first"):
        merge_undo(job=job, user=merger)


def test_merge_undo_refuses_when_a_moved_row_was_deleted_since(merger):
    # Given a merge after which one of the moved orders was deleted
    survivor, first, second = rich_duplicates()
    moved_order = first.orders.first()
    result = records_merge(survivor=survivor, absorbed=[first, second], user=merger)
    job = done_job(survivor, [first, second], result, merger)
    moved_order.delete()

    # When the merge is undone
    with pytest.raises(MergeError, match="1 of the orders the merge moved was deleted or moved"):
        merge_undo(job=job, user=merger)

    # Then the undo changed nothing: the other orders are still on the survivor
    assert survivor.orders.count() == 1 + 3 + 2 - 1


def test_merge_undo_refuses_when_the_survivor_was_deleted(merger):
    # Given a merge whose survivor was deleted afterwards
    survivor, first, second = rich_duplicates()
    result = records_merge(survivor=survivor, absorbed=[first, second], user=merger)
    job = done_job(survivor, [first, second], result, merger)
    Customer.objects.filter(pk=survivor.pk).delete()

    # When the merge is undone
    # Then it says the survivor is gone
    with pytest.raises(MergeError, match="was deleted; the merge cannot be undone"):
        merge_undo(job=job, user=merger)


@pytest.mark.parametrize("status", [MergeJob.Status.QUEUED, MergeJob.Status.FAILED, MergeJob.Status.UNDONE])
def test_merge_undo_refuses_a_job_that_is_not_done(merger, status):
    # Given a job that did not finish (or was undone already)
    survivor, first = factories.CustomerFactory(), factories.CustomerFactory()
    job = MergeJob.objects.create(
        entity_key="customer",
        content_type=ContentType.objects.get_for_model(Customer),
        survivor_id=survivor.pk,
        absorbed_ids=[first.pk],
        status=status,
    )

    # When it is undone
    # Then it refuses, naming the status
    with pytest.raises(MergeError, match="Only a finished merge can be undone"):
        merge_undo(job=job, user=merger)


def test_merge_undo_needs_the_merge_permission(merger):
    # Given a finished merge and a staff user without the merge permission
    survivor, first, second = rich_duplicates()
    result = records_merge(survivor=survivor, absorbed=[first, second], user=merger)
    job = done_job(survivor, [first, second], result, merger)
    clerk = factories.UserFactory(username="clerk")
    clerk.user_permissions.add(Permission.objects.get(codename="change_customer"))

    # When the clerk undoes it
    with pytest.raises(PermissionDenied):
        merge_undo(job=job, user=clerk)

    # Then the merge stands
    job.refresh_from_db()
    assert job.status == MergeJob.Status.DONE


def test_merge_carries_not_a_duplicate_pairs_to_the_survivor_and_undo_removes_them(
    merger, django_capture_on_commit_callbacks
):
    # Given B marked "not a duplicate" of C, then B and A (one person) merged with A surviving
    from dedup.engine.finder import duplicates_of
    from dedup.engine.not_duplicates import not_duplicate_mark
    from dedup.models import NotDuplicate
    from tests.dedup.engine_helpers import customer_with, ensure_default_rules

    ensure_default_rules()
    a = customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["ivan@example.com"])
    b = customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["office@example.com"])
    c = customer_with("Oleg", "Sidorov", phones=["+79990000001"], emails=["office@example.com"])
    not_duplicate_mark(entity="customer", pair=(b.pk, c.pk), user=merger)
    assert [match.record for match in duplicates_of(a)] == [b]
    with django_capture_on_commit_callbacks(execute=True):  # the index drops B's keys once the merge commits
        result = records_merge(survivor=a, absorbed=[b], user=merger)

    # Then A now holds C's office email (taken from B) but C is not reported as A's duplicate
    assert {email.address for email in a.emails.all()} == {"ivan@example.com", "office@example.com"}
    assert duplicates_of(Customer.objects.get(pk=a.pk)) == []
    low, high = sorted((a.pk, c.pk))
    assert NotDuplicate.objects.filter(entity="customer", low_id=low, high_id=high).exists()
    assert result.snapshot["not_duplicates"] == [[low, high]]

    # And an undo forgets the carried pair but keeps the one the manager made
    with django_capture_on_commit_callbacks(execute=True):
        merge_undo(job=done_job(a, [b], result, merger), user=merger)
    assert not NotDuplicate.objects.filter(entity="customer", low_id=low, high_id=high).exists()
    assert NotDuplicate.objects.filter(entity="customer", low_id=min(b.pk, c.pk), high_id=max(b.pk, c.pk)).exists()
