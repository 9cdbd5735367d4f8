"""Concurrent requests about one person never make two leads (PostgreSQL advisory locks on contact keys)."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from crm.models import ChatMessage, IncomingRequest, Lead

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason=(
            "SQLite's in-memory test database uses shared-cache table locks that fail at once (SQLITE_LOCKED) "
            "instead of waiting, so concurrent writers cannot be exercised there; the lock under test is "
            "PostgreSQL's pg_advisory_xact_lock. Run with DATABASE_URL=postgres://..."
        ),
    ),
]

WORKERS = 50


def _fire(token, path, payloads, headers=None):
    """Post every payload at once from its own thread and database connection; return the responses."""
    barrier = threading.Barrier(len(payloads))

    def post(index):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.raw}")
        try:
            barrier.wait(timeout=30)
            return client.post(path, payloads[index], format="json", **(headers(index) if headers else {}))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        return list(pool.map(post, range(len(payloads))))


def test_intake_fifty_concurrent_requests_for_one_person_make_one_lead(intake_token):
    # given fifty webhooks about the same person, in different phone formats and with different emails
    formats = ["+7 912 345-67-89", "8 (912) 345-67-89", "89123456789", "+79123456789", "8 912 345 67 89"]
    payloads = [
        {"name": "Ivan Petrov", "phones": [formats[i % len(formats)]], "emails": [f"ivan{i}@example.com"]}
        for i in range(WORKERS)
    ]
    # when they arrive at the same moment
    responses = _fire(intake_token, "/api/leads/", payloads)
    # then none fails, exactly one creates the lead and the others update it
    assert sorted({response.status_code for response in responses}) == [200, 201], [r.content for r in responses]
    assert [response.status_code for response in responses].count(201) == 1
    assert Lead.objects.count() == 1
    lead = Lead.objects.get()
    assert lead.phones.count() == 1
    assert lead.emails.count() == WORKERS
    assert IncomingRequest.objects.count() == WORKERS


def test_intake_fifty_concurrent_retries_with_one_key_make_one_lead(intake_token):
    # given one webhook retried fifty times at once with the same idempotency key
    payloads = [{"name": "Ivan", "emails": ["ivan@example.com"]}] * WORKERS
    responses = _fire(intake_token, "/api/leads/", payloads, headers=lambda i: {"HTTP_IDEMPOTENCY_KEY": "hook-1"})
    # then every answer is the same 201 and there is one lead and one logged request
    assert {response.status_code for response in responses} == {201}
    assert len({response.json()["lead"] for response in responses}) == 1
    assert Lead.objects.count() == 1
    assert IncomingRequest.objects.count() == 1


def test_intake_fifty_concurrent_messages_from_one_chat_make_one_lead(intake_token):
    payloads = [{"channel": "telegram", "chat_id": "42", "text": f"message {i}"} for i in range(WORKERS)]
    responses = _fire(intake_token, "/api/messages/", payloads)
    assert sorted({response.status_code for response in responses}) == [200, 201]
    assert Lead.objects.count() == 1
    assert ChatMessage.objects.count() == WORKERS


def _hold_advisory_locks(ids: list[int]):
    """Another session holding these advisory locks, as a request about one person does until it commits."""
    import psycopg

    params = connection.get_connection_params()
    other = psycopg.connect(
        " ".join(f"{name}={params[name]}" for name in ("host", "port", "user", "password", "dbname") if params.get(name))
    )
    other.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [ids])
    return other


@pytest.mark.usefixtures("rules_and_fresh_scorer")
def test_intake_requests_about_namesakes_wait_for_each_other_only_where_a_lead_model_decides(intake_token):
    from django.db import OperationalError

    from crm.intake import selectors, services
    from dedup.engine.scoring import store
    from dedup.engine.scoring.learned import learned_cache_clear
    from tests.dedup.scored_helpers import customer_model

    # Given a request about an "Ivan Petrov" in progress: it holds the locks of its name's blocks until it commits
    name_locks = services.contact_lock_ids(
        selectors.scored_lock_keys(services.IncomingLead(pipeline=None, stage=None, first_name="Ivan",
                                                         last_name="Petrov"))
    )
    assert name_locks
    other = _hold_advisory_locks(name_locks)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {intake_token.raw}")
    body = {"name": "Ivan Petrov", "phones": ["+7 912 000-11-22"], "emails": ["another.ivan@example.com"]}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a wait for the other request fails instead of hanging
        # When no model is learned for leads, a request about another Ivan Petrov (no contact in common) does not
        # wait for it: nothing decides by the name
        response = client.post("/api/leads/", body, format="json")
        assert response.status_code == 201, response.content

        # When the leads' model is learned, the name decides, and the same request waits for the one in progress
        store.scoring_model_save(entity="lead", model=customer_model(), records=100)
        learned_cache_clear()
        with pytest.raises(OperationalError, match="lock timeout"):
            client.post("/api/leads/", {**body, "phones": ["+7 912 000-33-44"]}, format="json")
    finally:
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
