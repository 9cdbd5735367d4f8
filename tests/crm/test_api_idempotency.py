"""A retried webhook with the same Idempotency-Key gets the first answer again and never makes a second record."""
from rest_framework.test import APIClient

from crm.models import ChatMessage, IncomingRequest, Lead, Note
from tests import factories

LEADS = "/api/leads/"
PAYLOAD = {"name": "Ivan Petrov", "emails": ["ivan@example.com"]}


def test_api_retry_with_the_same_key_returns_the_first_answer(intake_client, lead_pipeline):
    # given a lead posted with an idempotency key
    first = intake_client.post(LEADS, PAYLOAD, format="json", HTTP_IDEMPOTENCY_KEY="form-17")
    # when the webhook retries it twice (same key, same body, keys in another order)
    retries = [
        intake_client.post(LEADS, dict(reversed(PAYLOAD.items())), format="json", HTTP_IDEMPOTENCY_KEY="form-17")
        for _ in range(2)
    ]
    # then every retry gets the first answer, marked as replayed, and there is one lead with one note
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    for retry in retries:
        assert retry.status_code == 201
        assert retry.json() == first.json()
        assert retry["Idempotent-Replayed"] == "true"
    assert Lead.objects.count() == 1
    assert Note.objects.count() == 1
    assert IncomingRequest.objects.count() == 1


def test_api_same_key_with_another_body_is_422_and_writes_nothing(intake_client, lead_pipeline):
    intake_client.post(LEADS, PAYLOAD, format="json", HTTP_IDEMPOTENCY_KEY="form-17")
    # when the same key comes with different data
    response = intake_client.post(
        LEADS, {**PAYLOAD, "name": "Someone Else"}, format="json", HTTP_IDEMPOTENCY_KEY="form-17"
    )
    # then it is refused, naming the header
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()
    assert Lead.objects.count() == 1 and IncomingRequest.objects.count() == 1
    assert Lead.objects.get().last_name == "Petrov"


def test_api_keys_belong_to_one_integration(intake_client, lead_pipeline):
    # given another integration that happens to use the same key
    other = factories.IntegrationTokenFactory(name="Call tracker", pipeline=lead_pipeline)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other.raw}")
    intake_client.post(LEADS, PAYLOAD, format="json", HTTP_IDEMPOTENCY_KEY="1")
    # when it posts a different lead with that key
    response = client.post(LEADS, {"name": "Olga", "phones": ["+79990001122"]}, format="json", HTTP_IDEMPOTENCY_KEY="1")
    # then it is a request of its own
    assert response.status_code == 201
    assert Lead.objects.count() == 2


def test_api_failed_request_does_not_use_up_the_key(intake_client, lead_pipeline):
    # given a request refused for a bad phone
    bad = intake_client.post(LEADS, {"phones": ["nope"]}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert bad.status_code == 400
    # when the integration fixes it and retries with the same key
    good = intake_client.post(LEADS, {"phones": ["+79123456789"]}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    # then it is accepted
    assert good.status_code == 201


def test_api_message_retry_adds_the_message_once(intake_client, lead_pipeline):
    payload = {"channel": "telegram", "chat_id": "42", "text": "Привет"}
    for _ in range(3):
        response = intake_client.post("/api/messages/", payload, format="json", HTTP_IDEMPOTENCY_KEY="tg-update-9")
        assert response.status_code == 201
    assert ChatMessage.objects.count() == 1
    assert Lead.objects.count() == 1


def test_api_requests_without_a_key_are_each_decided(intake_client, lead_pipeline):
    # given no idempotency key, the second identical lead is recognised as a duplicate by its email instead
    first = intake_client.post(LEADS, PAYLOAD, format="json")
    second = intake_client.post(LEADS, PAYLOAD, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["lead"] == first.json()["lead"]
    assert IncomingRequest.objects.count() == 2
