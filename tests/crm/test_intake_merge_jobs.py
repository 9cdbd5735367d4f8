"""The intake's automatic merges go through the merge service as merge jobs: in the history, undoable."""
from crm.models import IntakeSettings, Lead, Stage
from dedup.merge import merge_history, merge_undo
from dedup.models import MergeJob
from tests import factories

MESSAGES = "/api/messages/"


def _message(client, **payload):
    response = client.post(MESSAGES, {"channel": "telegram", "text": "Здравствуйте", **payload}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def _form_lead(pipeline, **fields):
    lead = factories.LeadFactory(
        pipeline=pipeline, stage=Stage.objects.get(pipeline=pipeline, name="New"), channel="web_form", **fields
    )
    factories.PhoneFactory(content_object=lead, number="+79123456789")
    return lead


def test_intake_chat_merge_is_an_undoable_job_that_keeps_the_full_last_name(
    intake_client, lead_pipeline, duplicate_rules
):
    # given a form lead "Ivan Petrov" and a Telegram chat of "Ivan P", with the policy "update with new data"
    IntakeSettings.objects.create(pipeline=lead_pipeline, conflict_policy=IntakeSettings.ConflictPolicy.UPDATE)
    form_lead = _form_lead(lead_pipeline, first_name="Ivan", last_name="Petrov", source="")
    chat = _message(intake_client, chat_id="42", name="Ivan P")
    # when the chat gives the form lead's phone
    answer = _message(intake_client, chat_id="42", text="Мой номер 8 912 345-67-89")
    # then the chat lead is merged into the form lead, which keeps "Petrov"
    assert answer["decision"] == "merged" and answer["lead"] == form_lead.pk
    form_lead.refresh_from_db()
    assert form_lead.last_name == "Petrov"
    # and the merge is a finished merge job in the survivor's history
    job = merge_history(form_lead).get()
    assert job.status == MergeJob.Status.DONE
    assert (job.survivor_id, job.absorbed_ids) == (form_lead.pk, [chat["lead"]])
    # and it can be undone: the chat lead is back with its own chat
    merge_undo(job=job, user=factories.UserFactory(is_superuser=True, is_staff=True))
    chat_lead = Lead.objects.get(pk=chat["lead"])
    assert not chat_lead.is_archived and chat_lead.last_name == "P"
    assert chat_lead.messengers.filter(chat_id="42").exists()
    assert MergeJob.objects.get(pk=job.pk).status == MergeJob.Status.UNDONE
