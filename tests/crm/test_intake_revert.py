"""An incoming request that updated existing records keeps the old values and can be reverted."""
import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm.intake.revert import incoming_request_revert
from crm.models import IncomingRequest, IntakeSettings
from tests import factories
from tests.crm.test_intake_policies import LEADS, _lead, _phones, _settings


@pytest.fixture
def updated(intake_client, lead_pipeline):
    """A lead "Ivan Petrov" (source ads) updated by a form with a new surname, source, email and tag."""
    existing = _lead(lead_pipeline, phones=["+7 912 345-67-89"], first_name="Ivan", last_name="Petrov", source="ads")
    _settings(lead_pipeline, conflict_policy=IntakeSettings.ConflictPolicy.UPDATE)
    response = intake_client.post(
        LEADS,
        {
            "name": "Ivan Sidorov", "phones": ["8 912 345 67 89"], "emails": ["ivan@new.example"], "source": "seo",
            "tags": ["web"],
        },
        format="json",
    )
    assert response.json()["decision"] == "updated"
    return existing, IncomingRequest.objects.get(pk=response.json()["request_id"])


def test_intake_update_keeps_the_old_values_in_the_decision_log(updated):
    existing, request = updated
    (change,) = request.changes
    assert (change["model"], change["pk"]) == ("crm.lead", existing.pk)
    assert change["fields"]["last_name"] == {"before": "Petrov", "after": "Sidorov"}
    assert change["fields"]["source"] == {"before": "ads", "after": "seo"}
    assert list(change["added"]) == ["crm.email"]


def test_intake_update_revert_puts_everything_back(updated, admin_user):
    existing, request = updated
    incoming_request_revert(request=request, user=admin_user)
    existing.refresh_from_db()
    assert (existing.first_name, existing.last_name, existing.source) == ("Ivan", "Petrov", "ads")
    assert not existing.emails.exists() and not existing.tags.exists()
    assert _phones(existing) == ["+79123456789"]
    request.refresh_from_db()
    assert request.reverted_at is not None and request.reverted_by == admin_user
    assert LogEntry.objects.filter(object_id=str(existing.pk), change_message__contains="reverted").exists()
    # and it cannot be reverted twice
    with pytest.raises(ValidationError):
        incoming_request_revert(request=request, user=admin_user)


def test_intake_update_revert_refuses_to_overwrite_a_later_edit(updated, admin_user):
    existing, request = updated
    existing.refresh_from_db()
    existing.last_name = "Ivanov"
    existing.save()
    with pytest.raises(ValidationError, match="Last name"):
        incoming_request_revert(request=request, user=admin_user)
    existing.refresh_from_db()
    assert (existing.last_name, existing.source) == ("Ivanov", "seo")


def test_intake_update_never_replaces_a_name_with_its_initial(intake_client, lead_pipeline):
    existing = _lead(lead_pipeline, phones=["+7 912 345-67-89"], first_name="Ivan", last_name="Petrov")
    _settings(lead_pipeline, conflict_policy=IntakeSettings.ConflictPolicy.UPDATE)
    intake_client.post(LEADS, {"name": "Ivan P.", "phones": ["8 912 345 67 89"]}, format="json")
    existing.refresh_from_db()
    assert existing.last_name == "Petrov"


def test_intake_request_admin_revert_action(updated, admin_client):
    existing, request = updated
    response = admin_client.post(
        reverse("admin:crm_incomingrequest_changelist"),
        {"action": "revert_update", "_selected_action": [request.pk]},
        follow=True,
    )
    assert "1 request reverted." in response.content.decode()
    existing.refresh_from_db()
    assert existing.last_name == "Petrov"


def test_intake_request_admin_revert_needs_change_permission(updated, client):
    from django.contrib.auth.models import Permission

    existing, request = updated
    viewer = factories.UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_incomingrequest"))
    client.force_login(viewer)
    client.post(
        reverse("admin:crm_incomingrequest_changelist"),
        {"action": "revert_update", "_selected_action": [request.pk]},
    )
    existing.refresh_from_db()
    assert existing.last_name == "Sidorov"
