"""The admin of the intake: tokens shown once, per-pipeline settings with a warning for won/lost stages."""
import pytest
from rest_framework.test import APIClient

import crm.intake.admin  # noqa: F401  (registers the intake admins, as crm.admin does)
from crm.models import IntakeSettings, IntegrationToken, RepeatSalesSettings, Stage


@pytest.fixture
def staff(admin_client):
    return admin_client


def _secrets_shown(response) -> list[str]:
    return [raw for _token, raw in response.context["secrets"]]


def _cookies_and_session_text(client, response) -> str:
    """Everything a browser holds after the response: its cookies (signed, readable) and the redirect's body."""
    return " ".join(morsel.value for morsel in [*response.cookies.values(), *client.cookies.values()])


def test_intake_admin_new_token_is_shown_once_and_works(staff, lead_pipeline):
    # given an admin creating a token for the website form
    response = staff.post(
        "/admin/crm/integrationtoken/add/",
        {"name": "Website form", "pipeline": lead_pipeline.pk, "is_active": "on"},
    )
    # then the secret is shown once, on the page answering the save, and in no cookie
    assert response.status_code == 200
    (raw,) = _secrets_shown(response)
    assert raw in response.content.decode() and "cannot be shown again" in response.content.decode()
    assert raw not in _cookies_and_session_text(staff, response)
    token = IntegrationToken.objects.get()
    assert token.prefix == raw[:8] and raw not in token.key_hash
    # and not a second time
    assert raw not in staff.get("/admin/crm/integrationtoken/").content.decode()
    # and the integration can post with it
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert client.post("/api/leads/", {"name": "Ivan"}, format="json").status_code == 201


def test_intake_admin_rotating_a_secret_stops_the_old_one(staff, intake_token):
    old = intake_token.raw
    response = staff.post(
        "/admin/crm/integrationtoken/",
        {"action": "rotate_secret", "_selected_action": [intake_token.pk]},
    )
    assert response.status_code == 200
    (new,) = _secrets_shown(response)
    # the new secret is on the page and travels in no cookie (the messages cookie is signed, not encrypted)
    assert new in response.content.decode()
    assert new not in _cookies_and_session_text(staff, response)
    assert new not in staff.get("/admin/crm/integrationtoken/").content.decode()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.post("/api/leads/", {"name": "Ivan"}, format="json").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert client.post("/api/leads/", {"name": "Ivan"}, format="json").status_code == 201


def test_intake_admin_settings_save_fields_and_warn_about_closed_stages(staff, lead_pipeline):
    # given an admin choosing fields and including the Won stage in the search
    won = Stage.objects.get(pipeline=lead_pipeline, name="Won")
    new = Stage.objects.get(pipeline=lead_pipeline, name="New")
    response = staff.post(
        "/admin/crm/intakesettings/add/",
        {
            "pipeline": lead_pipeline.pk,
            "is_enabled": "on",
            "match_phone": "on",
            "lead_fields": ["company_name"],
            "custom_fields": "contract, inn",
            "search_stages": [new.pk, won.pk],
            "conflict_policy": "keep",
            "multi_match_policy": "create_new",
        },
        follow=True,
    )
    # then the settings are stored and the admin is warned about the won stage
    assert response.status_code == 200, response.content
    settings = IntakeSettings.objects.get()
    assert settings.match_fields == ["company_name", "custom:contract", "custom:inn"]
    assert (settings.match_email, settings.conflict_policy) == (False, "keep")
    assert "Won and lost stages are searched" in " ".join(str(m) for m in response.context["messages"])


def test_intake_admin_repeat_sales_is_one_settings_page(staff):
    response = staff.get("/admin/crm/repeatsalessettings/")
    assert response.status_code == 302 and response["Location"].endswith("/add/")
    staff.post("/admin/crm/repeatsalessettings/add/", {"enabled": "", "simple_crm_mode": "on"})
    settings = RepeatSalesSettings.load()
    assert (settings.enabled, settings.simple_crm_mode) == (False, True)
    assert staff.get("/admin/crm/repeatsalessettings/").status_code == 302
    assert staff.get("/admin/crm/repeatsalessettings/add/").status_code == 403


def test_intake_admin_request_log_lists_decisions(staff, intake_client, django_assert_max_num_queries):
    for index in range(5):
        intake_client.post("/api/leads/", {"phones": [f"+7912345670{index}"]}, format="json")
    with django_assert_max_num_queries(12):
        response = staff.get("/admin/crm/incomingrequest/")
    assert response.status_code == 200
    assert response.content.count(b"new record created") >= 5
