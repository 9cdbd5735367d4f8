"""The intake's cost does not grow with the base: the same bounded number of queries for a new person and for a
returning customer, with 3 or 30 leads and customers sharing the new person's name and stage."""
import pytest

from crm.models import Stage
from tests import factories

LEADS = "/api/leads/"
# Measured 16 on SQLite and 19 on PostgreSQL (its advisory locks) for a new person; about half of them refresh the
# stored duplicate figures after the commit (bench/README.md).
INTAKE_MAX_QUERIES = 22


def _crowd(pipeline, rows: int) -> factories.CustomerFactory:
    """`rows` leads named like the incoming person in the intake's stage, and as many customers; return one."""
    stage = Stage.objects.get(pipeline=pipeline, name="New")
    for index in range(rows):
        lead = factories.LeadFactory(
            pipeline=pipeline, stage=stage, first_name="New", last_name="Person", title=f"Form {index}"
        )
        factories.PhoneFactory(content_object=lead, number=f"+7916100{index:04d}")
        customer = factories.CustomerFactory(first_name="Back", last_name="Again")
        factories.PhoneFactory(content_object=customer, number=f"+7912100{index:04d}")
        factories.EmailFactory(content_object=customer, address=f"back{index}@example.com")
    return customer


@pytest.mark.parametrize("rows", [3, 30])
def test_intake_query_count_does_not_grow_with_the_base(
    intake_client, lead_pipeline, duplicate_rules, django_assert_max_num_queries, rows
):
    # Given leads and customers sharing the incoming person's name and stage
    _crowd(lead_pipeline, rows)
    # When a new person posts (the first request loads the intake's configuration: it is not measured)
    intake_client.post(LEADS, {"name": "Warm Up", "phones": ["+79169999999"]}, format="json")
    with django_assert_max_num_queries(INTAKE_MAX_QUERIES):
        created = intake_client.post(
            LEADS, {"name": "New Person", "phones": ["+79162000001"], "emails": ["new1@example.net"]}, format="json"
        )
    # and a returning customer writes again
    with django_assert_max_num_queries(INTAKE_MAX_QUERIES):
        returning = intake_client.post(
            LEADS, {"name": "Back Again", "phones": ["+79121000002"], "emails": ["back2@example.com"]}, format="json"
        )
    # Then both are decided within the same bound, whatever the crowd
    assert created.status_code == 201, created.content
    assert created.json()["decision"] == "created"
    assert returning.status_code in (200, 201), returning.content


# PostgreSQL, every round trip a request makes before its answer (Django lists BEGIN and COMMIT among the queries), the
# work after its commit included: the token, BEGIN, the leads' model stamp, the locks, the contact lookup, the lead,
# its keys, its contacts with the note and the request's row in one statement, the figures' mark with the look for a
# waiting refresh message, COMMIT. 13 before 2026-12-06 (and a pool check: 14; the mark was BEGIN, INSERT, COMMIT and a
# lookup of its own; bench/bench_intake_trips.py, bench/README.md); until 09:00 that day the mark was a second
# transaction after the COMMIT, a second wait for the WAL's flush.
INTAKE_NEW_PERSON_QUERIES = 10
INTAKE_RETURNING_QUERIES = 11  # + the customer with its company and deals


@pytest.mark.skipif(
    __import__("django.db").db.connection.vendor != "postgresql", reason="the counts of PostgreSQL's statements"
)
@pytest.mark.django_db(transaction=True)  # real commits: the work after them runs as in production
def test_intake_query_count_with_the_work_after_its_commit(
    intake_client, lead_pipeline, duplicate_rules, django_assert_max_num_queries
):
    from config.celery import app

    # Given the real broker with no worker (the refresh messages wait, as under load) and a refresh message waiting
    app.conf.task_always_eager = False
    app.control.purge()
    try:
        customer = _crowd(lead_pipeline, 3)
        intake_client.post(LEADS, {"name": "Warm Up", "phones": ["+79169999999"]}, format="json")
        # When a new person posts, then the whole request, its work after the commit included, is 10 round trips
        with django_assert_max_num_queries(INTAKE_NEW_PERSON_QUERIES) as captured:
            created = intake_client.post(
                LEADS, {"name": "New Person", "phones": ["+79162000001"], "emails": ["new1@example.net"]}, format="json"
            )
        # and one commit, the last of them, with the records' marks in its transaction (one wait for the WAL's flush)
        statements = [query["sql"] for query in captured.captured_queries]
        assert [sql for sql in statements if sql == "COMMIT"] == ["COMMIT"], statements
        assert statements[-1] == "COMMIT", statements
        assert any("figurespending" in sql.lower() for sql in statements[statements.index("BEGIN"):-1]), statements
        # and a returning customer's request one more
        phone, email = customer.phones.get().number, customer.emails.get().address
        with django_assert_max_num_queries(INTAKE_RETURNING_QUERIES) as captured:
            returning = intake_client.post(
                LEADS, {"name": "Back Again", "phones": [phone], "emails": [email]}, format="json"
            )
        statements = [query["sql"] for query in captured.captured_queries]
        assert [sql for sql in statements if sql == "COMMIT"] == ["COMMIT"] and statements[-1] == "COMMIT", statements
    finally:
        app.control.purge()
        app.conf.task_always_eager = True
    assert created.status_code == 201 and created.json()["decision"] == "created", created.content
    assert returning.status_code == 201 and returning.json()["customer"] == customer.pk, returning.content
    # and both records wait for their figures, for the one message already waiting
    from dedup.models import FiguresPending

    leads = [created.json()["lead"], returning.json()["lead"]]
    assert set(FiguresPending.objects.filter(entity="lead", record_id__in=leads).values_list("record_id", flat=True)) \
        == set(leads)
