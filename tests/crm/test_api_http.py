"""The intake over a real socket: a webhook posting to Django's live server, as a form or call tracker would."""
import json
import urllib.error
import urllib.request

import pytest

from crm.models import IncomingRequest, Lead

pytestmark = pytest.mark.django_db(transaction=True)


def _post(url, body, *, token=None, headers=None):
    """POST raw bytes; return (status, headers, parsed JSON body) for success and error answers alike."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def test_http_form_lead_is_created_then_a_retry_is_replayed_and_a_second_call_updates_it(live_server, intake_token):
    url = f"{live_server.url}/api/leads/"
    body = json.dumps({"name": "Ivan Petrov", "phones": ["8 (912) 345-67-89"], "source": "site"}).encode()
    # when the form posts a lead with an idempotency key
    status, _, first = _post(url, body, token=intake_token.raw, headers={"Idempotency-Key": "form-1"})
    # then a lead is created with the phone in E.164
    assert status == 201, first
    lead = Lead.objects.get()
    assert first["lead"] == lead.pk
    assert list(lead.phones.values_list("e164", flat=True)) == ["+79123456789"]
    # when the webhook retries with the same key: the same answer, marked as a replay, nothing new
    status, headers, again = _post(url, body, token=intake_token.raw, headers={"Idempotency-Key": "form-1"})
    assert status == 201
    assert headers["Idempotent-Replayed"] == "true"
    assert again["lead"] == first["lead"]
    # when a call tracker reports the same person in another format: the lead is found, not duplicated
    call = json.dumps({"name": "Ivan", "phones": ["+7 912 345 67 89"], "source": "call"}).encode()
    status, _, matched = _post(url, call, token=intake_token.raw)
    assert status == 200, matched
    assert matched["lead"] == lead.pk
    assert Lead.objects.count() == 1
    assert IncomingRequest.objects.count() == 2


def test_http_errors_are_clear_and_write_nothing(live_server, intake_token, settings):
    url = f"{live_server.url}/api/leads/"
    settings.INTAKE_MAX_BODY_BYTES = 2_000
    # no token
    status, _, body = _post(url, b'{"name": "Ivan"}')
    assert status == 401 and body["detail"]
    # a body that is not JSON
    status, _, body = _post(url, b"{name: Ivan", token=intake_token.raw)
    assert status == 400 and body["detail"]
    # an invalid phone, named by its field
    status, _, body = _post(url, b'{"name": "Ivan", "phones": ["12"]}', token=intake_token.raw)
    assert status == 400 and "phones" in body
    # a body over the limit
    status, _, body = _post(url, json.dumps({"name": "x" * 5_000}).encode(), token=intake_token.raw)
    assert status == 413 and "2000 bytes" in body["detail"]
    assert Lead.objects.count() == 0
    assert IncomingRequest.objects.count() == 0
