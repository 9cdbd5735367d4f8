"""The intake API refuses bad requests with clear errors that name the field, and writes nothing."""
import json

import pytest
from rest_framework.test import APIClient

from crm.models import ChatMessage, Customer, Email, IncomingRequest, Lead, Note, Phone
from tests import factories

LEADS = "/api/leads/"
MESSAGES = "/api/messages/"


def _written() -> dict:
    return {
        "leads": Lead.objects.count(),
        "customers": Customer.objects.count(),
        "phones": Phone.objects.count(),
        "emails": Email.objects.count(),
        "notes": Note.objects.count(),
        "chat": ChatMessage.objects.count(),
        "requests": IncomingRequest.objects.count(),
    }


NOTHING = {"leads": 0, "customers": 0, "phones": 0, "emails": 0, "notes": 0, "chat": 0, "requests": 0}


def test_api_leads_without_token_is_401_and_writes_nothing(lead_pipeline):
    # given a client with no credentials
    client = APIClient()
    # when it posts a valid lead
    response = client.post(LEADS, {"name": "Ivan Petrov", "phones": ["+79123456789"]}, format="json")
    # then it is told to authenticate, with the scheme to use, and nothing is stored
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "credentials" in response.json()["detail"]
    assert _written() == NOTHING


@pytest.mark.parametrize(
    "header",
    ["Token wrong-secret", "Token", "Token a b", "Bearer nope"],
)
def test_api_leads_with_bad_token_is_401(lead_pipeline, intake_token, header):
    # given a client presenting a wrong, malformed or foreign token
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    # when it posts a lead
    response = client.post(LEADS, {"name": "Ivan"}, format="json")
    # then it is refused and nothing is stored
    assert response.status_code == 401
    assert response.json()["detail"]
    assert _written() == NOTHING


def test_api_leads_with_revoked_token_is_401(lead_pipeline, intake_token):
    # given a token an admin switched off
    intake_token.is_active = False
    intake_token.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {intake_token.raw}")
    # when the integration posts
    response = client.post(LEADS, {"name": "Ivan"}, format="json")
    # then it is refused
    assert response.status_code == 401
    assert _written() == NOTHING


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"phones": "+79123456789"}, "phones"),  # a string, not a list
        ({"phones": [{"number": "+79123456789"}]}, "phones"),
        ({"emails": ["not-an-email"]}, "emails"),
        ({"emails": [5]}, "emails"),
        ({"amount": "a lot", "name": "Ivan"}, "amount"),
        ({"amount": -5, "name": "Ivan"}, "amount"),
        ({"custom_fields": ["budget", 5], "name": "Ivan"}, "custom_fields"),
        ({"custom_fields": {"budget": {"nested": 1}}, "name": "Ivan"}, "custom_fields"),
        ({"messenger": "telegram", "name": "Ivan"}, "messenger"),
        ({"messenger": {"channel": "telegram"}, "name": "Ivan"}, "messenger"),
        ({"messenger": {"channel": "icq", "username": "ivan"}, "name": "Ivan"}, "messenger"),
        ({"channel": "pigeon", "name": "Ivan"}, "channel"),
        ({"name": "Ivan", "tags": "vip"}, "tags"),
        ({"name": "x" * 301}, "name"),
        ({"name": "Ivan", "favourite_colour": "green"}, "favourite_colour"),
        ({}, "non_field_errors"),
    ],
)
def test_api_leads_wrong_types_are_400_naming_the_field(intake_client, payload, field):
    # given a payload with one bad field
    # when it is posted
    response = intake_client.post(LEADS, payload, format="json")
    # then the answer is 400 and names that field, and nothing is stored
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert _written() == NOTHING


@pytest.mark.parametrize("phone", ["abc", "123", "+7 000", "8 (912) 345-67-8", "+1 (415) 555-01"])
def test_api_leads_invalid_phone_is_400_naming_the_phone(intake_client, phone):
    # given a lead whose second phone cannot be a real number
    payload = {"name": "Ivan Petrov", "phones": ["+7 912 345-67-89", phone]}
    # when it is posted
    response = intake_client.post(LEADS, payload, format="json")
    # then the error points at phones[1] and quotes the value; nothing is stored, not even the good phone
    assert response.status_code == 400
    errors = response.json()["phones"]
    assert list(errors) == ["1"]
    assert phone in errors["1"][0]
    assert _written() == NOTHING


def test_api_leads_unknown_pipeline_is_400(intake_client):
    # given a pipeline name that does not exist
    # when a lead names it
    response = intake_client.post(LEADS, {"name": "Ivan", "pipeline": "Wholesale"}, format="json")
    # then the pipeline field says so
    assert response.status_code == 400
    assert "Wholesale" in response.json()["pipeline"][0]
    assert _written() == NOTHING


def test_api_leads_deal_pipeline_is_not_a_lead_pipeline(intake_client):
    # given a deal pipeline (leads cannot go there unless Simple CRM mode is on)
    factories.StageFactory(pipeline__name="Sales")
    # when a lead names it
    response = intake_client.post(LEADS, {"name": "Ivan", "pipeline": "Sales"}, format="json")
    # then it is refused as an unknown lead pipeline
    assert response.status_code == 400
    assert "pipeline" in response.json()
    assert _written() == NOTHING


def test_api_leads_unknown_stage_is_400(intake_client):
    response = intake_client.post(LEADS, {"name": "Ivan", "stage": "Negotiation"}, format="json")
    assert response.status_code == 400
    assert "Negotiation" in response.json()["stage"][0]
    assert _written() == NOTHING


def test_api_leads_malformed_json_is_400(intake_client):
    # given a body that is not JSON
    # when it is posted as JSON
    response = intake_client.post(LEADS, data='{"name": "Ivan", ', content_type="application/json")
    # then the answer says it is malformed
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert _written() == NOTHING


def test_api_leads_list_body_is_400(intake_client):
    response = intake_client.post(LEADS, data=json.dumps([{"name": "Ivan"}]), content_type="application/json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    assert _written() == NOTHING


def test_api_leads_wrong_content_type_is_415(intake_client):
    response = intake_client.post(LEADS, data="name=Ivan", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert _written() == NOTHING


def test_api_leads_huge_body_is_413(intake_client, settings):
    # given the body limit and a comment far larger than it
    settings.INTAKE_MAX_BODY_BYTES = 10_000
    body = json.dumps({"name": "Ivan", "comment": "x" * 50_000})
    # when it is posted
    response = intake_client.post(LEADS, data=body, content_type="application/json")
    # then it is refused with 413 and the limit in the message, before anything is parsed or stored
    assert response.status_code == 413
    assert "10000 bytes" in response.json()["detail"]
    assert _written() == NOTHING


def test_api_leads_body_larger_than_its_content_length_claims_is_413(intake_client, settings):
    # given a request whose Content-Length understates its body (a chunked or lying client)
    settings.INTAKE_MAX_BODY_BYTES = 1_000
    body = json.dumps({"name": "Ivan", "comment": "y" * 5_000}).encode()
    # when it is posted with a small declared length
    response = intake_client.generic(
        "POST", LEADS, body, content_type="application/json", CONTENT_LENGTH="900"
    )
    # then the parser still stops at the limit (the body cut at 900 bytes is not valid JSON either way)
    assert response.status_code in (400, 413)
    assert _written() == NOTHING


def test_api_leads_long_text_within_the_limit_is_400_naming_the_field(intake_client):
    response = intake_client.post(LEADS, {"name": "Ivan", "comment": "z" * 5000}, format="json")
    assert response.status_code == 400
    assert "comment" in response.json()
    assert _written() == NOTHING


def test_api_leads_reports_every_bad_field_at_once(intake_client):
    # given a payload with three different problems
    payload = {"phones": ["nonsense"], "emails": ["@"], "colour": "red"}
    # when it is posted
    response = intake_client.post(LEADS, payload, format="json")
    # then all three are named in one answer
    assert response.status_code == 400
    assert {"phones", "emails", "colour"} <= set(response.json())


def test_api_leads_too_long_idempotency_key_is_400(intake_client):
    response = intake_client.post(LEADS, {"name": "Ivan"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 300)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert _written() == NOTHING


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"channel": "telegram", "text": "hello"}, "chat_id"),
        ({"channel": "telegram", "chat_id": "42"}, "text"),
        ({"channel": "telegram", "chat_id": "42", "text": "   "}, "text"),
        ({"channel": "fax", "chat_id": "42", "text": "hi"}, "channel"),
        ({"channel": "telegram", "chat_id": "42", "text": "hi", "phone": "12"}, "phone"),
        ({"channel": "telegram", "chat_id": "42", "text": "hi", "sent_at": "yesterday"}, "sent_at"),
        ({"channel": "telegram", "chat_id": ["42"], "text": "hi"}, "chat_id"),
        ({"channel": "telegram", "chat_id": "42", "text": "hi", "pipeline": "Nope"}, "pipeline"),
    ],
)
def test_api_messages_bad_payload_is_400_naming_the_field(intake_client, payload, field):
    response = intake_client.post(MESSAGES, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert _written() == NOTHING


def test_api_messages_without_token_is_401(lead_pipeline):
    response = APIClient().post(MESSAGES, {"channel": "telegram", "chat_id": "1", "text": "hi"}, format="json")
    assert response.status_code == 401
    assert _written() == NOTHING


def test_api_leads_get_is_405(intake_client):
    response = intake_client.get(LEADS)
    assert response.status_code == 405


def test_api_token_use_is_recorded_only_for_accepted_requests(intake_client, intake_token, django_capture_on_commit_callbacks):
    # given a token never used
    assert intake_token.last_used_at is None
    # when a request is refused, the token is not touched
    with django_capture_on_commit_callbacks(execute=True):
        intake_client.post(LEADS, {"phones": ["x"]}, format="json")
    intake_token.refresh_from_db()
    assert intake_token.last_used_at is None
    # and when one is accepted, the time of use is recorded after the commit
    with django_capture_on_commit_callbacks(execute=True):
        intake_client.post(LEADS, {"phones": ["+79123456789"]}, format="json")
    intake_token.refresh_from_db()
    assert intake_token.last_used_at is not None


def test_api_errors_of_one_request_never_reach_the_next(intake_client):
    # given a request refused for its messenger and its phones (fields are shared by copy between requests)
    first = intake_client.post(
        LEADS, {"name": "Ivan", "phones": ["123"], "messenger": {"channel": "telegram"}}, format="json"
    )
    assert first.status_code == 400
    assert set(first.json()) == {"phones", "messenger"}
    # when a good request with a messenger follows, and then one with only a bad email
    second = intake_client.post(
        LEADS, {"name": "Ivan", "phones": ["+79123456789"], "messenger": {"channel": "telegram", "username": "ivan"}},
        format="json",
    )
    third = intake_client.post(LEADS, {"name": "Olga", "emails": ["not-an-email"]}, format="json")
    # then the good one is accepted with its data, and the last names only its own bad field
    assert second.status_code == 201, second.json()
    assert Lead.objects.get(pk=second.json()["lead"]).messengers.get().username == "ivan"
    assert third.status_code == 400
    assert set(third.json()) == {"emails"}


# --- Hostile bodies (issue 14): a client's mistake is a 400 or 413 in JSON, never a 500 or an HTML page ---


@pytest.mark.parametrize(
    "body",
    [
        "[" * 1000 + "]" * 1000,
        '{"name": "Ivan", "custom_fields": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}",
        '{"name": "Ivan", "custom_fields": {"a": ' + "[" * 100_00 + "]" * 100_00 + "}}",
    ],
    ids=["array-1000-deep", "object-1000-deep", "custom-fields-10000-deep"],
)
def test_api_leads_deeply_nested_json_is_400_before_parsing(intake_client, body):
    # when a body nested far deeper than any lead is posted
    response = intake_client.generic("POST", LEADS, body, content_type="application/json")
    # then it is refused with the limit named, in JSON, and nothing is written
    assert response.status_code == 400
    assert "nested deeper than 32 levels" in response.json()["detail"]
    assert _written() == NOTHING


def test_api_leads_brackets_inside_strings_do_not_count_as_nesting(intake_client):
    # a comment full of brackets (and an escaped quote) is text, not structure
    response = intake_client.post(LEADS, {"name": "Ivan", "comment": '[[[{{{"' * 50}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ('{"name": "Ivan", "custom_fields": {"note\\u0000": "x"}}', "custom_fields.note\ufffd"),
        ('{"name": "Ivan", "custom_fields": {"note": "a\\u0000b"}}', "custom_fields.note"),
        ('{"name": "Iv\\u0000an"}', "name"),
        ('{"name": "Ivan\\ud800"}', "name"),
        ('{"name": "Ivan", "phones": ["+79123456789", "\\udc00"]}', "phones.1"),
        ('{"name": "Ivan", "custom_fields": {"\\ud800": 1}}', "custom_fields.\ufffd"),
    ],
    ids=["nul-in-key", "nul-in-value", "nul-in-name", "lone-high-surrogate", "lone-low-surrogate", "surrogate-key"],
)
def test_api_leads_nul_and_lone_surrogates_are_400_naming_the_field(intake_client, body, field):
    # when a body carries a NUL or an unpaired surrogate (valid JSON, not storable text)
    response = intake_client.generic("POST", LEADS, body, content_type="application/json")
    # then it is a 400 naming where, and nothing is written
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert _written() == NOTHING


def test_api_leads_a_paired_surrogate_is_ordinary_text(intake_client):
    # an emoji escaped as a surrogate pair is one character, and welcome
    response = intake_client.generic(
        "POST", LEADS, '{"name": "Ivan \\ud83d\\ude00"}', content_type="application/json"
    )
    assert response.status_code == 201
    assert Lead.objects.get().last_name == "\U0001f600"


@pytest.mark.parametrize("size", [100_000, 3_000_000, 10_000_000])
def test_api_leads_oversize_body_is_413_json_whatever_the_size(intake_client, size):
    # when a body larger than the limit (and larger than Django's own upload limit) is posted
    body = json.dumps({"name": "Ivan", "comment": "x" * size})
    response = intake_client.generic("POST", LEADS, body, content_type="application/json")
    # then it is a 413 in JSON naming the limit, not Django's HTML 400
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "65536 bytes" in response.json()["detail"]
    assert _written() == NOTHING


@pytest.mark.parametrize("body", ['{"name": NaN}', '{"name": Infinity}', b'{"name": "\xff\xfe"}'])
def test_api_leads_non_standard_json_and_bad_utf8_are_400(intake_client, body):
    response = intake_client.generic("POST", LEADS, body, content_type="application/json")
    assert response.status_code == 400
    assert _written() == NOTHING


def test_api_messages_hostile_body_is_400(intake_client):
    body = '{"channel": "telegram", "chat_id": "1\\u0000", "text": "hi"}'
    response = intake_client.generic("POST", MESSAGES, body, content_type="application/json")
    assert response.status_code == 400
    assert "chat_id" in response.json()
    assert _written() == NOTHING
