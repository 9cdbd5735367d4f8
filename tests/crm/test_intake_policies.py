"""Incoming duplicate control (Kommo's settings) over HTTP: every policy combination, scope and field choice."""
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import IncomingRequest, IntakeSettings, Lead, Note, Pipeline, Stage, Task
from tests import factories

LEADS = "/api/leads/"
Conflict = IntakeSettings.ConflictPolicy
Multi = IntakeSettings.MultiMatchPolicy


def _stage(pipeline, name):
    return Stage.objects.get(pipeline=pipeline, name=name)


def _lead(pipeline, stage="New", *, phones=(), emails=(), handles=(), age_days=0, **fields):
    """An existing lead with contacts, created `age_days` ago."""
    lead = factories.LeadFactory(stage=_stage(pipeline, stage), pipeline=pipeline, **fields)
    for number in phones:
        factories.PhoneFactory(content_object=lead, number=number)
    for address in emails:
        factories.EmailFactory(content_object=lead, address=address)
    for handle in handles:
        factories.MessengerFactory(content_object=lead, **handle)
    if age_days:
        Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timedelta(days=age_days))
        lead.refresh_from_db()
    return lead


def _settings(pipeline, **values):
    settings, _created = IntakeSettings.objects.update_or_create(pipeline=pipeline, defaults=values)
    return settings


def _notes(record):
    return list(Note.objects.filter(object_id=record.pk, content_type__model=type(record)._meta.model_name))


def _phones(lead):
    return sorted(lead.phones.values_list("e164", flat=True))


def _created_unmatched(response) -> dict:
    """Assert that the request made a new lead because nothing matched; 201 alone would also be a request
    flagged for review or created despite its matches."""
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["decision"] == "created", body
    assert "flagged_for_review" not in body or body["flagged_for_review"] is False, body
    return body


def test_intake_no_match_creates_a_lead_with_its_contacts_and_a_note(intake_client, lead_pipeline, manager):
    # given an empty base
    # when a web form sends a lead
    response = intake_client.post(
        LEADS,
        {
            "name": "Ivan Petrov",
            "company": "Acme LLC",
            "phones": ["8 (912) 345-67-89"],
            "emails": ["Ivan@Example.com"],
            "messenger": {"channel": "telegram", "username": "@ivanp"},
            "source": "landing",
            "custom_fields": {"budget": 5000},
            "tags": ["spring"],
            "comment": "Please call me after 6pm",
        },
        format="json",
    )
    # then a lead is created in the first open stage, owned by the integration's manager, with every contact
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["decision"] == "created"
    lead = Lead.objects.get(pk=body["lead"])
    assert (lead.first_name, lead.last_name, lead.company_name) == ("Ivan", "Petrov", "Acme LLC")
    assert lead.stage.name == "New" and lead.owner == manager
    assert _phones(lead) == ["+79123456789"]
    assert list(lead.emails.values_list("address", flat=True)) == ["Ivan@Example.com"]
    assert lead.messengers.get().username == "ivanp"
    assert lead.custom_fields == {"budget": 5000}
    assert list(lead.tags.values_list("name", flat=True)) == ["spring"]
    # and the decision, with what came in, is on the lead's timeline and in the request log
    (note,) = _notes(lead)
    assert "Please call me after 6pm" in note.text and "No lead or deal" in note.text
    logged = IncomingRequest.objects.get(pk=body["request_id"])
    assert logged.lead == lead and logged.decision == "created" and logged.status_code == 201


def test_intake_one_match_update_policy_updates_the_existing_lead(intake_client, lead_pipeline):
    # given a lead with a phone, and the "update with new data" policy
    existing = _lead(lead_pipeline, phones=["+7 912 345-67-89"], first_name="Ivan", last_name="Petrov", source="ads")
    _settings(lead_pipeline, conflict_policy=Conflict.UPDATE)
    # when the same person sends a form with the phone in national format, a new surname and an email
    response = intake_client.post(
        LEADS,
        {"name": "Ivan Sidorov", "phones": ["8 912 345 67 89"], "emails": ["ivan@new.example"], "source": "seo"},
        format="json",
    )
    # then no lead is created: the existing one has the new data, the email added and a note saying why
    assert response.status_code == 200, response.content
    assert response.json()["decision"] == "updated"
    assert response.json()["lead"] == existing.pk
    assert Lead.objects.count() == 1
    existing.refresh_from_db()
    assert (existing.last_name, existing.source) == ("Sidorov", "seo")
    assert list(existing.emails.values_list("address", flat=True)) == ["ivan@new.example"]
    assert _phones(existing) == ["+79123456789"]
    (note,) = _notes(existing)
    assert "same phone +79123456789" in note.text
    assert "Updated with the new data" in note.text


def test_intake_one_match_keep_policy_leaves_the_lead_as_it_was(intake_client, lead_pipeline):
    # given a lead and the "do not change the existing lead" policy
    existing = _lead(lead_pipeline, emails=["ivan@example.com"], first_name="Ivan", last_name="Petrov")
    _settings(lead_pipeline, conflict_policy=Conflict.KEEP)
    # when a form comes with the same email (other case) but another surname and a phone
    response = intake_client.post(
        LEADS, {"name": "Ivan Sidorov", "emails": ["IVAN@example.com"], "phones": ["+79990001122"]}, format="json"
    )
    # then the existing lead keeps its data and gets only a note with what came in
    assert response.status_code == 200
    assert response.json()["decision"] == "kept"
    existing.refresh_from_db()
    assert existing.last_name == "Petrov"
    assert _phones(existing) == []
    assert Lead.objects.count() == 1
    (note,) = _notes(existing)
    assert "Sidorov" in note.text and "+79990001122" in note.text
    assert "kept as it was" in note.text


@pytest.mark.parametrize("conflict", [Conflict.UPDATE, Conflict.KEEP])
@pytest.mark.parametrize("multi", [Multi.UPDATE_ALL, Multi.UPDATE_NEWEST, Multi.CREATE_NEW])
def test_intake_two_matches_follow_the_multi_match_policy(intake_client, lead_pipeline, conflict, multi):
    # given an older lead matching by phone and a newer one matching by email
    older = _lead(lead_pipeline, phones=["+79123456789"], last_name="Old", age_days=10)
    newer = _lead(lead_pipeline, emails=["ivan@example.com"], last_name="New", age_days=1)
    _settings(lead_pipeline, conflict_policy=conflict, multi_match_policy=multi)
    # when a request matches both
    response = intake_client.post(
        LEADS, {"last_name": "Incoming", "phones": ["+79123456789"], "emails": ["ivan@example.com"]}, format="json"
    )
    body = response.json()
    older.refresh_from_db()
    newer.refresh_from_db()
    if multi == Multi.CREATE_NEW:
        # then a new lead is made and the matches are left alone, with the reason logged on the new lead
        assert response.status_code == 201
        assert body["decision"] == "created_despite_matches"
        assert Lead.objects.count() == 3
        assert (older.last_name, newer.last_name) == ("Old", "New")
        assert not _notes(older) and not _notes(newer)
        assert f"#{older.pk}" in _notes(Lead.objects.get(pk=body["lead"]))[0].text
        return
    # then no lead is created; the targets are all matches or only the newest
    assert response.status_code == 200
    assert Lead.objects.count() == 2
    targets = [older, newer] if multi == Multi.UPDATE_ALL else [newer]
    untouched = [lead for lead in (older, newer) if lead not in targets]
    assert sorted(body["leads"]) == sorted(lead.pk for lead in targets)
    for lead in targets:
        assert len(_notes(lead)) == 1
        expected = "Incoming" if conflict == Conflict.UPDATE else {older.pk: "Old", newer.pk: "New"}[lead.pk]
        assert lead.last_name == expected
    for lead in untouched:
        assert not _notes(lead)
        assert lead.last_name == "Old"
    assert body["decision"] == ("updated" if conflict == Conflict.UPDATE else "kept")


def test_intake_three_matches_are_still_merged(intake_client, lead_pipeline):
    # given three leads sharing a phone (Kommo merges up to three)
    leads = [_lead(lead_pipeline, phones=["+79123456789"], age_days=days) for days in (3, 2, 1)]
    _settings(lead_pipeline, multi_match_policy=Multi.UPDATE_ALL)
    # when the phone comes in again
    response = intake_client.post(LEADS, {"phones": ["+79123456789"], "source": "call"}, format="json")
    # then all three are updated
    assert response.status_code == 200
    assert sorted(response.json()["leads"]) == sorted(lead.pk for lead in leads)
    assert set(Lead.objects.values_list("source", flat=True)) == {"call"}


def test_intake_more_than_three_matches_makes_a_new_lead_flagged_for_review(intake_client, lead_pipeline):
    # given four leads sharing a phone
    leads = [_lead(lead_pipeline, phones=["+79123456789"], source="old") for _ in range(4)]
    _settings(lead_pipeline, multi_match_policy=Multi.UPDATE_ALL, create_task_after_merge=True)
    # when the phone comes in again
    response = intake_client.post(LEADS, {"name": "Ivan", "phones": ["+79123456789"], "source": "new"}, format="json")
    # then nothing is merged: a new lead is created, tagged for review, with the four matches in its note
    assert response.status_code == 201
    body = response.json()
    assert body["decision"] == "flagged" and body["flagged_for_review"] is True
    flagged = Lead.objects.get(pk=body["lead"])
    assert list(flagged.tags.values_list("name", flat=True)) == ["duplicate review"]
    text = _notes(flagged)[0].text
    assert all(f"#{lead.pk}" in text for lead in leads)
    assert set(Lead.objects.filter(pk__in=[lead.pk for lead in leads]).values_list("source", flat=True)) == {"old"}
    assert not Task.objects.exists()


def test_intake_won_and_lost_leads_are_not_searched_by_default(intake_client, lead_pipeline):
    # given a lost lead with the phone (a customer who said no half a year ago)
    lost = _lead(lead_pipeline, stage="Lost", phones=["+79123456789"])
    # when the customer comes back through the form
    response = intake_client.post(LEADS, {"name": "Ivan", "phones": ["+79123456789"]}, format="json")
    # then a new lead is created (a repeat lead), and the lost one stays untouched
    new = Lead.objects.get(pk=_created_unmatched(response)["lead"])
    assert new.pk != lost.pk and new.is_repeat
    assert not _notes(lost)


def test_intake_searches_only_the_chosen_stages(intake_client, lead_pipeline):
    # given a lead in "New" and settings that search only "In progress"
    in_new = _lead(lead_pipeline, stage="New", phones=["+79123456789"])
    settings = _settings(lead_pipeline)
    settings.search_stages.set([_stage(lead_pipeline, "In progress")])
    # when its phone comes in
    response = intake_client.post(LEADS, {"phones": ["+79123456789"]}, format="json")
    # then it is not matched
    assert _created_unmatched(response)["lead"] != in_new.pk
    assert Lead.objects.count() == 2
    # and once "New" is searched too, the next request updates it
    settings.search_stages.add(_stage(lead_pipeline, "New"))
    Lead.objects.exclude(pk=in_new.pk).delete()
    response = intake_client.post(LEADS, {"phones": ["+79123456789"], "source": "again"}, format="json")
    assert response.status_code == 200
    assert response.json()["lead"] == in_new.pk


def test_intake_can_search_another_pipeline_when_its_stages_are_chosen(intake_client, lead_pipeline):
    # given a lead in a second lead pipeline
    other = factories.PipelineFactory(name="Partners", kind=Pipeline.Kind.LEAD)
    factories.StageFactory(pipeline=other, name="New")
    partner_lead = _lead(other, phones=["+79123456789"])
    settings = _settings(lead_pipeline)
    # when only the incoming pipeline is searched (the default), it is not matched
    unmatched = _created_unmatched(intake_client.post(LEADS, {"phones": ["+79123456789"]}, format="json"))
    assert unmatched["lead"] != partner_lead.pk
    Lead.objects.exclude(pk=partner_lead.pk).delete()
    # then after choosing the other pipeline's stage, it is
    settings.search_stages.set([_stage(other, "New"), _stage(lead_pipeline, "New")])
    response = intake_client.post(LEADS, {"phones": ["+79123456789"]}, format="json")
    assert response.status_code == 200
    assert response.json()["lead"] == partner_lead.pk


@pytest.mark.parametrize(
    ("switch", "payload", "existing"),
    [
        ("match_phone", {"phones": ["+79123456789"]}, {"phones": ["+79123456789"]}),
        ("match_email", {"emails": ["ivan@example.com"]}, {"emails": ["ivan@example.com"]}),
        (
            "match_messenger",
            {"messenger": {"channel": "telegram", "username": "IvanP"}},
            {"handles": [{"channel": "telegram", "username": "ivanp"}]},
        ),
    ],
)
def test_intake_each_contact_kind_matches_only_while_switched_on(intake_client, lead_pipeline, switch, payload, existing):
    # given a lead with one kind of contact
    lead = _lead(lead_pipeline, **existing)
    settings = _settings(lead_pipeline, **{switch: True})
    # when a request carries the same contact, it is matched
    first = intake_client.post(LEADS, payload, format="json")
    assert first.status_code == 200 and first.json()["lead"] == lead.pk
    # and with that kind switched off (saved as the admin saves it) it is not
    setattr(settings, switch, False)
    settings.save()
    second = intake_client.post(LEADS, payload, format="json")
    assert _created_unmatched(second)["lead"] != lead.pk


def test_intake_chosen_custom_field_matches(intake_client, lead_pipeline):
    # given a lead with a contract number in a custom field, chosen for the check
    lead = _lead(lead_pipeline, custom_fields={"contract": "C-1001"})
    _settings(lead_pipeline, match_fields=["custom:contract"])
    # when a request with the same contract number (other case) comes, without any contact in common
    response = intake_client.post(
        LEADS, {"name": "Someone", "custom_fields": {"contract": "c-1001"}}, format="json"
    )
    # then it is matched by that field
    assert response.status_code == 200
    assert response.json()["lead"] == lead.pk
    assert "contract" in _notes(lead)[0].text


def test_intake_chosen_text_field_matches_and_unchosen_does_not(intake_client, lead_pipeline):
    # given a lead with a company name
    lead = _lead(lead_pipeline, company_name="Acme LLC")
    # when the company name is not chosen, the same company makes a new lead
    assert _created_unmatched(intake_client.post(LEADS, {"company": "Acme LLC"}, format="json"))["lead"] != lead.pk
    Lead.objects.exclude(pk=lead.pk).delete()
    # then once it is chosen, the request is matched
    _settings(lead_pipeline, match_fields=["company_name"])
    response = intake_client.post(LEADS, {"company": "acme llc"}, format="json")
    assert response.status_code == 200 and response.json()["lead"] == lead.pk


@pytest.mark.parametrize("with_task", [True, False])
def test_intake_task_after_merge_follows_the_setting(intake_client, lead_pipeline, with_task):
    # given a lead with a responsible manager
    owner = factories.UserFactory(username="olga")
    lead = _lead(lead_pipeline, phones=["+79123456789"], owner=owner)
    _settings(lead_pipeline, create_task_after_merge=with_task)
    # when its phone comes in
    intake_client.post(LEADS, {"phones": ["+79123456789"], "name": "Ivan"}, format="json")
    # then a task for that manager exists only when the setting is on; the note is always there
    tasks = Task.objects.filter(object_id=lead.pk)
    assert tasks.count() == (1 if with_task else 0)
    if with_task:
        assert tasks.get().assignee == owner and tasks.get().due_at > timezone.now()
    assert len(_notes(lead)) == 1


def test_intake_switched_off_always_creates(intake_client, lead_pipeline):
    existing = _lead(lead_pipeline, phones=["+79123456789"])
    _settings(lead_pipeline, is_enabled=False)
    response = intake_client.post(LEADS, {"phones": ["+79123456789"]}, format="json")
    assert _created_unmatched(response)["lead"] != existing.pk
    assert Lead.objects.count() == 2


def test_intake_archived_lead_is_never_matched(intake_client, lead_pipeline):
    # given a lead that was merged away (archived)
    archived = _lead(lead_pipeline, phones=["+79123456789"], is_archived=True)
    # when its phone comes in
    response = intake_client.post(LEADS, {"phones": ["+79123456789"]}, format="json")
    # then a new lead is made, as if nothing matched
    assert _created_unmatched(response)["lead"] != archived.pk


def test_intake_update_with_contacts_the_lead_holds_adds_none_and_reads_none(intake_client, lead_pipeline):
    # given a lead with a phone and an email
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    lead = _lead(lead_pipeline, phones=["+79123456789"], emails=["Ivan@Example.com"])
    # when a request brings the same phone (another format) and email (another case)
    with CaptureQueriesContext(connection) as queries:
        response = intake_client.post(
            LEADS, {"name": "Ivan Petrov", "phones": ["8 912 345-67-89"], "emails": ["ivan@example.COM"]},
            format="json",
        )
    # then the lead is updated without a second phone or email, and its contacts were not read again
    assert response.status_code == 200 and response.json()["lead"] == lead.pk
    assert _phones(lead) == ["+79123456789"]
    assert lead.emails.count() == 1
    reads_of_its_contacts = [
        query["sql"] for query in queries.captured_queries
        if '"object_id" = ' in query["sql"] and ("crm_phone" in query["sql"] or "crm_email" in query["sql"])
    ]
    assert reads_of_its_contacts == []


def test_intake_update_with_a_new_email_adds_it_beside_the_known_phone(intake_client, lead_pipeline):
    # given a lead with a phone
    lead = _lead(lead_pipeline, phones=["+79123456789"])
    # when a request brings that phone and a new email
    response = intake_client.post(
        LEADS, {"name": "Ivan Petrov", "phones": ["+79123456789"], "emails": ["ivan@example.com"]}, format="json"
    )
    # then the email is added and the phone is not doubled
    assert response.status_code == 200 and response.json()["lead"] == lead.pk
    assert _phones(lead) == ["+79123456789"]
    assert list(lead.emails.values_list("address", flat=True)) == ["ivan@example.com"]
