"""The intake's in-memory configuration (crm.intake.config) over HTTP: a change is seen by the very next request,
whether made here (signals) or by another process (its stamp), and an unchanged configuration is not read again."""
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from crm.intake import config as intake_config
from crm.models import (
    Customer,
    Deal,
    IntakeConfigStamp,
    IntakeSettings,
    IntegrationToken,
    Lead,
    Pipeline,
    RepeatSalesSettings,
    Stage,
)
from tests import factories

LEADS = "/api/leads/"
MESSAGES = "/api/messages/"
# The tables the snapshot is loaded from; the per-request query reads only the token's and the stamp's.
CONFIG_TABLES = ("crm_pipeline", "crm_stage", "crm_intakesettings", "crm_repeatsalessettings")


def _stage(pipeline, name):
    return Stage.objects.get(pipeline=pipeline, name=name)


def _lead_with_phone(pipeline, phone, stage="New"):
    lead = factories.LeadFactory(pipeline=pipeline, stage=_stage(pipeline, stage))
    factories.PhoneFactory(content_object=lead, number=phone)
    return lead


def _customer_with_phone(phone):
    customer = factories.CustomerFactory()
    factories.PhoneFactory(content_object=customer, number=phone)
    return customer


def _post_lead(client, **payload):
    return client.post(LEADS, payload, format="json")


def _token_client(raw):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client


def _stamp():
    return IntakeConfigStamp.objects.filter(pk=IntakeConfigStamp.SINGLETON_ID).values_list("stamp", flat=True).first()


def _config_queries(captured):
    return [query["sql"] for query in captured if any(table in query["sql"] for table in CONFIG_TABLES)]


# --- A change saved as the admin saves it --------------------------------------------------------------


def test_intake_config_renamed_stage_is_seen_by_the_next_request(intake_client, lead_pipeline):
    # given a request that names the "In progress" stage (the configuration is now cached),
    # and a stage name nobody has yet
    first = _post_lead(intake_client, name="Ivan", phones=["+79123456780"], stage="In progress")
    assert first.status_code == 201, first.content
    assert _post_lead(intake_client, name="Olga", phones=["+79123456781"], stage="Working").status_code == 400
    # when the admin renames the stage
    stage = _stage(lead_pipeline, "In progress")
    stage.name = "Working"
    stage.save()
    # then the new name is accepted at once and the lead is in that stage
    renamed = _post_lead(intake_client, name="Olga", phones=["+79123456782"], stage="Working")
    assert renamed.status_code == 201, renamed.content
    assert Lead.objects.get(pk=renamed.json()["lead"]).stage_id == stage.pk
    # and the old name is refused with an error on the stage field
    old = _post_lead(intake_client, name="Petr", phones=["+79123456783"], stage="In progress")
    assert old.status_code == 400
    assert "In progress" in old.json()["stage"][0]


def test_intake_config_renamed_pipeline_is_seen_by_the_next_message(intake_client, lead_pipeline):
    # given a second lead pipeline a messenger bot names, used once (the configuration is now cached)
    partners = factories.PipelineFactory(name="Partners", kind=Pipeline.Kind.LEAD)
    factories.StageFactory(pipeline=partners, name="New")
    message = {"channel": "telegram", "text": "Hello", "pipeline": "Partners"}
    assert intake_client.post(MESSAGES, {**message, "chat_id": "1"}, format="json").status_code == 201
    # when the admin renames the pipeline
    partners.name = "Resellers"
    partners.save()
    # then a message naming the new name gets its lead in that pipeline
    renamed = intake_client.post(MESSAGES, {**message, "chat_id": "2", "pipeline": "Resellers"}, format="json")
    assert renamed.status_code == 201, renamed.content
    assert Lead.objects.get(pk=renamed.json()["lead"]).pipeline_id == partners.pk
    # and the old name is refused with an error on the pipeline field
    old = intake_client.post(MESSAGES, {**message, "chat_id": "3"}, format="json")
    assert old.status_code == 400
    assert "Partners" in old.json()["pipeline"][0]


def test_intake_config_switching_duplicate_control_off_is_seen_by_the_next_request(intake_client, lead_pipeline):
    # given a lead with a phone, and duplicate control on: a request with the phone updates that lead
    existing = _lead_with_phone(lead_pipeline, "+79123456789")
    settings = IntakeSettings.objects.create(pipeline=lead_pipeline, is_enabled=True)
    first = _post_lead(intake_client, phones=["+79123456789"])
    assert first.status_code == 200 and first.json()["lead"] == existing.pk
    # when the admin switches duplicate control off
    settings.is_enabled = False
    settings.save()
    # then the next request with the same phone makes a new lead
    second = _post_lead(intake_client, phones=["+79123456789"])
    assert second.status_code == 201, second.content
    assert second.json()["decision"] == "created" and second.json()["lead"] != existing.pk
    assert Lead.objects.count() == 2


def test_intake_config_search_stages_added_and_removed_change_the_matches(intake_client, lead_pipeline):
    # given a lead in "New" and settings that search only "In progress": the lead's phone makes a new lead
    in_new = _lead_with_phone(lead_pipeline, "+79123456789", stage="New")
    settings = IntakeSettings.objects.create(pipeline=lead_pipeline)
    settings.search_stages.add(_stage(lead_pipeline, "In progress"))
    not_searched = _post_lead(intake_client, phones=["+79123456789"])
    assert not_searched.status_code == 201, not_searched.content
    Lead.objects.exclude(pk=in_new.pk).delete()
    # when "New" is added to the searched stages
    settings.search_stages.add(_stage(lead_pipeline, "New"))
    # then the next request with the phone updates the lead in "New"
    searched = _post_lead(intake_client, phones=["+79123456789"])
    assert searched.status_code == 200, searched.content
    assert searched.json()["lead"] == in_new.pk
    # and once "New" is removed again, the phone makes a new lead again
    settings.search_stages.remove(_stage(lead_pipeline, "New"))
    removed = _post_lead(intake_client, phones=["+79123456789"])
    assert removed.status_code == 201, removed.content
    assert removed.json()["lead"] != in_new.pk


def test_intake_config_simple_crm_mode_switched_on_and_off_is_seen_by_the_next_request(
    intake_client, lead_pipeline, deal_pipeline
):
    # given the default mode: a request becomes a lead (and the configuration is now cached)
    as_lead = _post_lead(intake_client, name="Ivan", phones=["+79123456780"])
    assert as_lead.status_code == 201 and as_lead.json()["lead"] and as_lead.json()["deal"] is None
    # when the admin switches Simple CRM mode on
    settings = RepeatSalesSettings(simple_crm_mode=True, default_deal_pipeline=deal_pipeline)
    settings.save()
    # then the next request becomes a deal in the deal pipeline, not a lead
    as_deal = _post_lead(intake_client, name="Olga", phones=["+79123456781"])
    assert as_deal.status_code == 201, as_deal.content
    assert as_deal.json()["lead"] is None
    assert Deal.objects.get(pk=as_deal.json()["deal"]).pipeline_id == deal_pipeline.pk
    # and once it is switched off again, the next request is a lead again
    settings.simple_crm_mode = False
    settings.save()
    again = _post_lead(intake_client, name="Petr", phones=["+79123456782"])
    assert again.status_code == 201, again.content
    assert again.json()["deal"] is None
    assert Lead.objects.get(pk=again.json()["lead"]).pipeline_id == lead_pipeline.pk
    assert Deal.objects.count() == 1


def test_intake_config_repeat_sales_switched_off_and_on_is_seen_by_the_next_request(intake_client, lead_pipeline):
    # given repeat sales on: a returning customer's request makes a repeat lead (the configuration is now cached)
    first_customer, second_customer, third_customer = (
        _customer_with_phone(phone) for phone in ("+79123456780", "+79123456781", "+79123456782")
    )
    on = _post_lead(intake_client, phones=["+79123456780"])
    assert on.status_code == 201 and on.json()["is_repeat"] is True
    assert Lead.objects.get(pk=on.json()["lead"]).customer == first_customer
    # when the admin switches repeat sales off
    settings = RepeatSalesSettings(enabled=False)
    settings.save()
    # then the next returning customer's request goes to their history, and no lead is made
    off = _post_lead(intake_client, phones=["+79123456781"])
    assert off.status_code == 200, off.content
    assert off.json()["decision"] == "added_to_customer" and off.json()["customer"] == second_customer.pk
    assert Lead.objects.count() == 1
    # and once it is switched on again, the next returning customer gets a repeat lead again
    settings.enabled = True
    settings.save()
    again = _post_lead(intake_client, phones=["+79123456782"])
    assert again.status_code == 201, again.content
    assert Lead.objects.get(pk=again.json()["lead"]).customer == third_customer


def test_intake_config_rolled_back_change_is_never_seen(intake_client, lead_pipeline):
    # given a stage rename that a request saw inside a transaction which was then rolled back
    stage = _stage(lead_pipeline, "In progress")
    with pytest.raises(RuntimeError), transaction.atomic():
        stage.name = "Rolled back"
        stage.save()
        inside = _post_lead(intake_client, name="Ivan", phones=["+79123456780"], stage="Rolled back")
        assert inside.status_code == 201, inside.content
        raise RuntimeError("the admin's save failed")
    # when the admin then makes another change, to another stage
    other = _stage(lead_pipeline, "New")
    other.name = "Fresh"
    other.save()
    # then the next requests see the committed names: the later change, and not the rolled-back one
    assert _post_lead(intake_client, name="Olga", phones=["+79123456781"], stage="Fresh").status_code == 201
    rolled_back = _post_lead(intake_client, name="Petr", phones=["+79123456782"], stage="Rolled back")
    assert rolled_back.status_code == 400 and "stage" in rolled_back.json()
    assert _post_lead(intake_client, name="Anna", phones=["+79123456783"], stage="In progress").status_code == 201


# --- Tokens ---------------------------------------------------------------------------------------------


def test_intake_config_token_deactivated_with_save_is_refused_at_once(intake_client, intake_token, lead_pipeline):
    # given a token that was just used (it is in the cached configuration)
    assert _post_lead(intake_client, name="Ivan").status_code == 201
    # when the admin deactivates it
    intake_token.is_active = False
    intake_token.save()
    # then its next request is refused and writes nothing
    response = _post_lead(intake_client, name="Olga")
    assert response.status_code == 401
    assert Lead.objects.count() == 1


def test_intake_config_token_deactivated_with_update_is_refused_at_once(intake_client, intake_token, lead_pipeline):
    # given a token that was just used (it is in the cached configuration)
    assert _post_lead(intake_client, name="Ivan").status_code == 201
    stamp = _stamp()
    # when it is revoked with a queryset update, as the admin's "revoke" action does: no signal, no new stamp
    IntegrationToken.objects.filter(pk=intake_token.pk).update(is_active=False)
    assert _stamp() == stamp
    # then its next request is refused all the same (the token's row is read on every request)
    response = _post_lead(intake_client, name="Olga")
    assert response.status_code == 401
    assert Lead.objects.count() == 1


def test_intake_config_rotated_token_refuses_the_old_secret_and_takes_the_new(intake_client, intake_token):
    # given a token that was just used with its secret
    assert _post_lead(intake_client, name="Ivan").status_code == 201
    # when the admin issues it a new secret
    new_secret = IntegrationToken.objects.rotate(token=intake_token)
    # then the old secret is refused and the new one works, as the same integration
    assert _post_lead(intake_client, name="Olga").status_code == 401
    response = _post_lead(_token_client(new_secret), name="Petr")
    assert response.status_code == 201, response.content
    assert Lead.objects.get(pk=response.json()["lead"]).owner == intake_token.owner


def test_intake_config_token_last_use_is_read_on_every_request(
    intake_client, intake_token, django_capture_on_commit_callbacks
):
    # given a first request, which records the token's last use after its commit
    with django_capture_on_commit_callbacks(execute=True) as first:
        assert _post_lead(intake_client, name="Ivan").status_code == 201
    assert len(_token_writes(first)) == 1
    intake_token.refresh_from_db()
    assert intake_token.last_used_at is not None
    # when the integration posts again within the minute
    with django_capture_on_commit_callbacks(execute=True) as second:
        response = _post_lead(intake_client, name="Olga")
    # then the recorded use was read with the token (not the cached copy's empty one): nothing is written again
    assert response.status_code == 201, response.content
    assert _token_writes(second) == []


def _token_writes(callbacks):
    """The callbacks a request left after its commit, but the duplicate figures' refresh (dedup.engine.counts)."""
    from dedup.engine.counts import PendingRefresh

    return [callback for callback in callbacks if not isinstance(callback, PendingRefresh)]


# --- A change made by another process -----------------------------------------------------------------
# Another process's save writes a new stamp through its signal; here the row is changed without a signal
# (a queryset update) and the stamp is written the way that signal writes it.


def test_intake_config_other_process_stage_rename_is_seen_once_its_stamp_is_written(intake_client, lead_pipeline):
    # given a request that named "In progress" (the configuration is now cached)
    assert _post_lead(intake_client, name="Ivan", phones=["+79123456780"], stage="In progress").status_code == 201
    stage = _stage(lead_pipeline, "In progress")
    # when another process renames the stage; until its stamp is written this process keeps its snapshot
    Stage.objects.filter(pk=stage.pk).update(name="Working")
    unannounced = _post_lead(intake_client, name="Olga", phones=["+79123456781"], stage="Working")
    assert unannounced.status_code == 400
    intake_config.stamp_changed()
    # then the next request sees the new name, and the old one is refused
    renamed = _post_lead(intake_client, name="Olga", phones=["+79123456782"], stage="Working")
    assert renamed.status_code == 201, renamed.content
    assert Lead.objects.get(pk=renamed.json()["lead"]).stage_id == stage.pk
    old = _post_lead(intake_client, name="Petr", phones=["+79123456783"], stage="In progress")
    assert old.status_code == 400 and "stage" in old.json()


def test_intake_config_other_process_settings_change_is_seen_once_its_stamp_is_written(intake_client, lead_pipeline):
    # given a lead with a phone that incoming requests are matched to (the configuration is now cached)
    existing = _lead_with_phone(lead_pipeline, "+79123456789")
    IntakeSettings.objects.create(pipeline=lead_pipeline, is_enabled=True)
    assert _post_lead(intake_client, phones=["+79123456789"]).json()["lead"] == existing.pk
    # when another process switches duplicate control off and writes its stamp
    IntakeSettings.objects.filter(pipeline=lead_pipeline).update(is_enabled=False)
    intake_config.stamp_changed()
    # then the next request with the phone makes a new lead
    response = _post_lead(intake_client, phones=["+79123456789"])
    assert response.status_code == 201, response.content
    assert response.json()["lead"] != existing.pk


def test_intake_config_other_process_token_change_is_seen_once_its_stamp_is_written(
    intake_client, intake_token, manager
):
    # given a token whose leads go to its manager (the token is in the cached configuration)
    first = _post_lead(intake_client, name="Ivan")
    assert Lead.objects.get(pk=first.json()["lead"]).owner == manager
    # when another process gives the token another responsible manager and writes its stamp
    olga = factories.UserFactory(username="olga")
    IntegrationToken.objects.filter(pk=intake_token.pk).update(owner=olga)
    intake_config.stamp_changed()
    # then the next lead goes to the new manager
    second = _post_lead(intake_client, name="Petr")
    assert second.status_code == 201, second.content
    assert Lead.objects.get(pk=second.json()["lead"]).owner == olga


def test_intake_config_other_process_repeat_settings_change_is_seen_once_its_stamp_is_written(
    intake_client, lead_pipeline, deal_pipeline
):
    # given saved repeat sales settings in the default mode (the configuration is now cached)
    RepeatSalesSettings.objects.create(default_deal_pipeline=deal_pipeline)
    assert _post_lead(intake_client, name="Ivan", phones=["+79123456780"]).json()["deal"] is None
    # when another process switches Simple CRM mode on and writes its stamp
    RepeatSalesSettings.objects.update(simple_crm_mode=True)
    intake_config.stamp_changed()
    # then the next request becomes a deal
    response = _post_lead(intake_client, name="Olga", phones=["+79123456781"])
    assert response.status_code == 201, response.content
    assert response.json()["lead"] is None and Deal.objects.get(pk=response.json()["deal"])


# --- The snapshot is kept while nothing changes -------------------------------------------------------


def test_intake_config_unchanged_configuration_is_not_read_again(intake_client, lead_pipeline):
    # given a first request after the configuration was set up: it loads the snapshot
    with CaptureQueriesContext(connection) as first:
        assert _post_lead(intake_client, name="Ivan", phones=["+79123456780"]).status_code == 201
    assert {table for table in CONFIG_TABLES if any(table in sql for sql in _config_queries(first))} == set(
        CONFIG_TABLES
    )
    # when a second request comes with nothing changed
    with CaptureQueriesContext(connection) as second:
        response = _post_lead(intake_client, name="Olga", phones=["+79123456781"])
    # then it is served from the snapshot: no pipeline, stage or settings table is read
    assert response.status_code == 201, response.content
    assert _config_queries(second) == []


# --- What the token points to is deleted (the token's row is cleared with an update, no token signal) ---


def test_intake_config_deleted_default_pipeline_sends_the_next_lead_to_the_first_lead_pipeline(
    intake_client, intake_token, lead_pipeline
):
    # given an integration whose default pipeline is a second lead pipeline, used once (all cached)
    partners = factories.PipelineFactory(name="Partners", kind=Pipeline.Kind.LEAD)
    factories.StageFactory(pipeline=partners, name="New")
    intake_token.pipeline = partners
    intake_token.save()
    first = _post_lead(intake_client, name="Ivan")
    assert Lead.objects.get(pk=first.json()["lead"]).pipeline_id == partners.pk
    Lead.objects.all().delete()
    # when the admin deletes that pipeline
    partners.delete()
    # then the next request still succeeds, into the first lead pipeline
    response = _post_lead(intake_client, name="Olga")
    assert response.status_code == 201, response.content
    assert Lead.objects.get(pk=response.json()["lead"]).pipeline_id == lead_pipeline.pk


def test_intake_config_deleted_manager_leaves_the_next_lead_without_owner(intake_client, lead_pipeline, manager):
    # given leads of the integration going to its manager (the token and its manager are cached)
    first = _post_lead(intake_client, name="Ivan")
    assert Lead.objects.get(pk=first.json()["lead"]).owner == manager
    # when the manager's user is deleted (the token's manager is cleared with an update, no token signal)
    manager.delete()
    # then the next request still succeeds, and its lead has no owner rather than the deleted user's id
    response = _post_lead(intake_client, name="Olga")
    assert response.status_code == 201, response.content
    assert Lead.objects.get(pk=response.json()["lead"]).owner_id is None


def test_intake_config_deleted_manager_leaves_the_next_message_customer_without_owner(
    intake_client, lead_pipeline, deal_pipeline, manager
):
    # given Simple CRM mode, where a new chat's customer and deal go to the token's manager (all cached)
    RepeatSalesSettings.objects.create(simple_crm_mode=True, default_deal_pipeline=deal_pipeline)
    message = {"channel": "telegram", "text": "Hello"}
    first = intake_client.post(MESSAGES, {**message, "chat_id": "1"}, format="json")
    assert Deal.objects.get(pk=first.json()["deal"]).owner == manager
    # when the manager's user is deleted
    manager.delete()
    # then the next new chat still makes a customer and a deal, neither owned by the deleted user
    response = intake_client.post(MESSAGES, {**message, "chat_id": "2"}, format="json")
    assert response.status_code == 201, response.content
    deal = Deal.objects.get(pk=response.json()["deal"])
    assert deal.owner_id is None
    assert Customer.objects.get(pk=response.json()["customer"]).owner_id is None
