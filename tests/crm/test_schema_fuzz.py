"""The intake API's OpenAPI schema, fuzzed in-process through the WSGI app: no input may cause a server error."""
import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, settings
from rest_framework.test import APIClient

# Random examples per operation (valid and invalid): enough to hit every field with wrong types, blanks, huge
# and odd values, while the file stays well under a minute. Schemathesis' exhaustive boundary-value phase is
# left out for the same reason (it sends several hundred requests per operation).
EXAMPLES = 60


def _load_schema():
    # The schema view needs no database, so it is read once when the module is collected.
    from config.wsgi import application

    loaded = schemathesis.openapi.from_wsgi("/api/schema/", application)
    # Valid and invalid data both: wrong types, missing and extra fields, out-of-range values.
    loaded.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return loaded


schema = _load_schema()


@pytest.fixture
def keep_test_connection():
    """Keep the test's database connection open across WSGI requests, as Django's test client does.

    A real WSGI request ends with close_old_connections, which would close the connection holding the test
    transaction (PostgreSQL) in the middle of the test.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, phases=[Phase.generate])
@pytest.mark.django_db
def test_schema_fuzz_never_answers_with_a_server_error(case, intake_token, duplicate_rules, keep_test_connection):
    # given an authenticated integration and a generated request (valid or not) for any operation
    # when it is sent
    response = case.call(headers={"Authorization": f"Token {intake_token.raw}"})
    # then the API answers it, with an error if it must, but never with a 5xx
    assert response.status_code < 500, (case.body, response.text[:500])


def test_schema_is_served_without_a_token_and_documents_both_endpoints(db):
    # given no credentials
    # when the schema is fetched
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    # then it lists the two intake operations with their errors and the idempotency header
    assert response.status_code == 200
    document = response.json()
    assert {"/api/leads/", "/api/messages/"} <= set(document["paths"])
    leads = document["paths"]["/api/leads/"]["post"]
    assert {"200", "201", "400", "401", "413"} <= set(leads["responses"])
    assert "Idempotency-Key" in [parameter["name"] for parameter in leads["parameters"]]
    # and says how to authenticate: the token in the Authorization header, required by both operations
    scheme = document["components"]["securitySchemes"]["tokenAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    for path in ("/api/leads/", "/api/messages/"):
        assert document["paths"][path]["post"]["security"] == [{"tokenAuth": []}], path
