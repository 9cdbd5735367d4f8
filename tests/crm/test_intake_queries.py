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
