"""The visitor id on the intake: two requests from one browser meet even with no phone or email."""
import pytest

from crm.intake.selectors import ContactKeys, visitor_id_clean
from crm.models import IntakeSettings, Lead, Note
from dedup.engine.finder import duplicates_of

LEADS = "/api/leads/"
VISITOR = "3f2a9c0d5e8b4a71b6c2d9e0f1a2b3c4"


def _settings(pipeline, **values):
    IntakeSettings.objects.update_or_create(pipeline=pipeline, defaults=values)


def post(client, **body):
    headers = body.pop("headers", {})
    return client.post(LEADS, body, format="json", headers=headers)


def test_intake_two_requests_from_one_browser_update_one_lead(intake_client, lead_pipeline):
    _settings(lead_pipeline, conflict_policy=IntakeSettings.ConflictPolicy.UPDATE)
    first = post(intake_client, name="Ivan", visitor_id=VISITOR, comment="a question")
    assert first.status_code == 201 and first.json()["decision"] == "created"
    lead = Lead.objects.get(pk=first.json()["lead"])
    assert lead.visitor_id == VISITOR

    # when the same browser sends another form, still without a phone or an email
    second = post(intake_client, name="Ivan Petrov", visitor_id=VISITOR, source="pricing page")

    body = second.json()
    assert body["decision"] == "updated" and body["lead"] == lead.pk
    assert Lead.objects.count() == 1
    notes = Note.objects.filter(object_id=lead.pk, content_type__model="lead").values_list("text", flat=True)
    assert any("Matched: same browser (visitor ID 3f2a9c0d…)" in text for text in notes)


def test_intake_another_browser_is_another_lead(intake_client, lead_pipeline):
    post(intake_client, name="Ivan", visitor_id=VISITOR)

    response = post(intake_client, name="Ivan", visitor_id="another-browser-0000000001")

    assert response.json()["decision"] == "created"
    assert Lead.objects.count() == 2


def test_intake_visitor_id_from_the_header(intake_client, lead_pipeline):
    post(intake_client, name="Ivan", headers={"X-Visitor-Id": VISITOR})

    response = post(intake_client, name="Anna", headers={"X-Visitor-Id": VISITOR})

    assert response.json()["decision"] == "updated"


def test_intake_visitor_cookie_counts_only_from_the_same_site(intake_client, lead_pipeline):
    intake_client.cookies["mw_vid"] = VISITOR
    cross = post(intake_client, name="Ivan", headers={"Sec-Fetch-Site": "cross-site"})
    assert Lead.objects.get(pk=cross.json()["lead"]).visitor_id == ""

    same = post(intake_client, name="Ivan", headers={"Sec-Fetch-Site": "same-site"})
    assert Lead.objects.get(pk=same.json()["lead"]).visitor_id == VISITOR


@pytest.mark.parametrize(
    "garbage", ["short", "x" * 65, "<script>alert(1)</script>0000", "a b c d e f g h i j k", 12345678901234567890,
                {"id": VISITOR}, ["x"], None, "ид-посетителя-кириллицей-000"],
)
def test_intake_garbage_visitor_id_is_ignored_without_an_error(intake_client, lead_pipeline, garbage):
    post(intake_client, name="Ivan", visitor_id=VISITOR)

    response = post(intake_client, name="Ivan", visitor_id=garbage, headers={"X-Visitor-Id": "also garbage!"})

    assert response.status_code == 201, response.content
    assert response.json()["decision"] == "created"
    assert Lead.objects.get(pk=response.json()["lead"]).visitor_id == ""


def test_visitor_id_clean_and_lock_keys():
    assert visitor_id_clean(f"  {VISITOR} ") == VISITOR
    assert visitor_id_clean("a" * 15) == "" and visitor_id_clean("a" * 16) == "a" * 16
    assert visitor_id_clean(None) == "" and visitor_id_clean(123) == ""
    assert f"visitor:{VISITOR}" in ContactKeys.build(visitor=VISITOR).lock_keys()
    assert ContactKeys.build(visitor="bad value").lock_keys() == []


def test_visitor_id_is_a_match_key_of_duplicate_control(db, lead_pipeline):
    # given an admin rule "same visitor ID" on leads
    from dedup.models import Condition, Rule

    rule = Rule.objects.create(entity="lead", name="Same browser")
    Condition.objects.create(rule=rule, field="visitor_id", method="normalized")
    stage = lead_pipeline.stages.get(name="New")
    first = Lead.objects.create(title="a", pipeline=lead_pipeline, stage=stage, visitor_id=VISITOR)
    second = Lead.objects.create(title="b", pipeline=lead_pipeline, stage=stage, visitor_id=VISITOR)
    Lead.objects.create(title="c", pipeline=lead_pipeline, stage=stage, visitor_id="z" * 20)

    assert [match.pk for match in duplicates_of(first)] == [second.pk]
