"""Messenger messages: one chat is one lead, and a phone number written in a message joins the contact (seeds 000, 003)."""
import pytest

from crm.models import ChatMessage, IntakeSettings, Lead, Stage
from tests import factories

MESSAGES = "/api/messages/"


def _message(client, **payload):
    response = client.post(MESSAGES, {"channel": "telegram", "text": "Здравствуйте", **payload}, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def test_message_same_chat_never_makes_a_second_lead(intake_client, lead_pipeline):
    # given a Telegram chat whose number is hidden (only the chat id is known)
    first = _message(intake_client, chat_id="100500", name="Ivan")
    # when the client writes again from the same chat
    second = _message(intake_client, chat_id="100500", text="Есть новости?")
    # then the second message is added to the first lead's timeline
    assert first["decision"] == "created" and second["decision"] == "appended"
    assert second["lead"] == first["lead"]
    assert Lead.objects.count() == 1
    lead = Lead.objects.get()
    assert lead.channel == "telegram" and lead.first_name == "Ivan"
    assert sorted(ChatMessage.objects.filter(object_id=lead.pk).values_list("text", flat=True)) == [
        "Есть новости?",
        "Здравствуйте",
    ]


def test_message_chat_recognised_by_username_then_chat_id(intake_client, lead_pipeline):
    # given a chat the manager started by @username (seed 000)
    first = _message(intake_client, username="@IvanP")
    # when the client answers and the messenger now shows both the username and the chat id
    second = _message(intake_client, username="ivanp", chat_id="42")
    # and later only the chat id
    third = _message(intake_client, chat_id="42")
    # then all three are one lead, whose messenger handle remembers both
    assert first["lead"] == second["lead"] == third["lead"]
    handle = Lead.objects.get().messengers.get()
    assert (handle.username, handle.chat_id) == ("IvanP", "42")


def test_message_chat_recognised_by_a_number_as_username(intake_client, lead_pipeline):
    # given a WhatsApp chat known only by the number the messenger gives as its username
    first = _message(intake_client, channel="whatsapp", username="79123456789")
    # when the client writes again from it
    second = _message(intake_client, channel="whatsapp", username="79123456789", text="Есть новости?")
    # then it is the same chat, one lead
    assert second["decision"] == "appended" and second["lead"] == first["lead"]
    assert Lead.objects.count() == 1


def test_message_username_that_is_no_handle_is_kept_but_not_matched(intake_client, lead_pipeline):
    # given a message whose "username" is a display name, not a messenger handle
    first = _message(intake_client, username="Ivan Petrov")
    # when the same comes again
    second = _message(intake_client, username="Ivan Petrov", text="Есть новости?")
    # then nothing breaks: it is stored as it came, but never used to recognise a chat
    assert first["decision"] == second["decision"] == "created" and first["lead"] != second["lead"]
    assert Lead.objects.get(pk=first["lead"]).messengers.get().username == "Ivan Petrov"


def test_message_other_channel_same_id_is_another_chat(intake_client, lead_pipeline):
    first = _message(intake_client, chat_id="42")
    second = _message(intake_client, chat_id="42", channel="whatsapp")
    assert first["lead"] != second["lead"]


def test_message_to_a_closed_chat_lead_makes_a_repeat_lead(intake_client, lead_pipeline):
    # given a chat whose lead was lost
    first = _message(intake_client, chat_id="42")
    lost = Stage.objects.get(pipeline=lead_pipeline, name="Lost")
    Lead.objects.filter(pk=first["lead"]).update(stage=lost)
    # when the client writes again half a year later
    second = _message(intake_client, chat_id="42", text="Снова я")
    # then a new, repeat lead is created for the new inquiry
    assert second["decision"] == "created" and second["lead"] != first["lead"]
    assert Lead.objects.get(pk=second["lead"]).is_repeat


def test_message_phone_in_text_is_added_to_the_lead(intake_client, lead_pipeline):
    # given a chat lead with a hidden number
    created = _message(intake_client, chat_id="42")
    # when the client writes their number in Russian
    answer = _message(intake_client, chat_id="42", text="мой номер 8 912 345-67-89")
    # then the number is recognised and stored on the lead in international format
    assert answer["phones_found"] == ["+79123456789"]
    lead = Lead.objects.get(pk=created["lead"])
    assert list(lead.phones.values_list("e164", flat=True)) == ["+79123456789"]
    # and writing it again adds nothing
    _message(intake_client, chat_id="42", text="ещё раз: +7 912 345 67 89")
    assert lead.phones.count() == 1


def test_message_phone_in_english_text_is_added_to_the_customer_too(intake_client, lead_pipeline):
    # given a chat lead linked to a customer
    created = _message(intake_client, username="john")
    customer = factories.CustomerFactory()
    Lead.objects.filter(pk=created["lead"]).update(customer=customer)
    # when the client writes an American number
    _message(intake_client, username="john", text="call me at +1 (415) 555-0100")
    # then both the lead and the customer have it
    assert list(Lead.objects.get().phones.values_list("e164", flat=True)) == ["+14155550100"]
    assert list(customer.phones.values_list("e164", flat=True)) == ["+14155550100"]


def _phone_lead(pipeline, phone, *, stage="New", **fields):
    lead = factories.LeadFactory(pipeline=pipeline, stage=Stage.objects.get(pipeline=pipeline, name=stage), **fields)
    factories.PhoneFactory(content_object=lead, number=phone)
    return lead


def test_message_phone_merges_the_chat_lead_with_the_call_lead(intake_client, lead_pipeline, duplicate_rules):
    # given a lead from a phone call, and a Telegram chat lead of the same person with a hidden number (seed 003)
    call_lead = _phone_lead(lead_pipeline, "+79123456789", title="Call", channel="phone")
    chat = _message(intake_client, chat_id="42", text="Хочу консультацию")
    # when the bot asks for the number and the client writes it
    answer = _message(intake_client, chat_id="42", text="Мой номер 8 (912) 345-67-89")
    # then the two leads are merged into the older one through the merge service
    assert answer["decision"] == "merged", answer
    assert answer["lead"] == call_lead.pk
    chat_lead = Lead.objects.get(pk=chat["lead"])
    assert chat_lead.is_archived and chat_lead.merged_into_id == call_lead.pk
    assert Lead.objects.filter(is_archived=False).count() == 1
    # and the survivor has the chat's messages and its messenger handle
    assert ChatMessage.objects.filter(object_id=call_lead.pk, content_type__model="lead").count() == 2
    assert call_lead.messengers.filter(chat_id="42").exists()
    # so the next message from the chat goes to the survivor
    assert _message(intake_client, chat_id="42", text="Спасибо")["lead"] == call_lead.pk


def test_message_phone_does_not_merge_a_pair_marked_not_duplicate(intake_client, lead_pipeline, duplicate_rules):
    # given a call lead and a chat lead a manager marked "not a duplicate" of each other
    from dedup.engine.not_duplicates import not_duplicate_mark

    call_lead = _phone_lead(lead_pipeline, "+79123456789")
    chat = _message(intake_client, chat_id="42")
    not_duplicate_mark(entity="lead", pair=(call_lead.pk, chat["lead"]))
    # when the chat gives the same number
    answer = _message(intake_client, chat_id="42", text="8 912 345-67-89")
    # then the number is stored but the leads stay apart
    assert answer["decision"] == "appended"
    assert not Lead.objects.filter(is_archived=True).exists()
    assert Lead.objects.get(pk=chat["lead"]).phones.get().e164 == "+79123456789"


def test_message_phone_does_not_merge_with_a_closed_lead(intake_client, lead_pipeline, duplicate_rules):
    _phone_lead(lead_pipeline, "+79123456789", stage="Won")
    _message(intake_client, chat_id="42")
    answer = _message(intake_client, chat_id="42", text="8 912 345-67-89")
    assert answer["decision"] == "appended"
    assert not Lead.objects.filter(is_archived=True).exists()


def test_message_phone_shared_by_more_than_three_leads_is_flagged(intake_client, lead_pipeline, duplicate_rules):
    # given four leads with the number
    for _ in range(4):
        _phone_lead(lead_pipeline, "+79123456789")
    chat = _message(intake_client, chat_id="42")
    # when the chat gives it
    answer = _message(intake_client, chat_id="42", text="+7 912 345 67 89")
    # then nothing is merged and the chat lead is flagged for review
    assert answer["decision"] == "flagged" and answer["flagged_for_review"]
    assert not Lead.objects.filter(is_archived=True).exists()
    assert list(Lead.objects.get(pk=chat["lead"]).tags.values_list("name", flat=True)) == ["duplicate review"]


@pytest.mark.parametrize(
    ("policy", "archived"),
    [
        (IntakeSettings.MultiMatchPolicy.UPDATE_ALL, 2),
        (IntakeSettings.MultiMatchPolicy.UPDATE_NEWEST, 1),
        (IntakeSettings.MultiMatchPolicy.CREATE_NEW, 0),
    ],
)
def test_message_phone_shared_by_two_leads_follows_the_policy(intake_client, lead_pipeline, duplicate_rules, policy, archived):
    # given two leads with the number and the multi-match policy
    IntakeSettings.objects.create(pipeline=lead_pipeline, multi_match_policy=policy)
    _phone_lead(lead_pipeline, "+79123456789")
    _phone_lead(lead_pipeline, "+79123456789")
    _message(intake_client, chat_id="42")
    # when the chat gives the number
    _message(intake_client, chat_id="42", text="89123456789")
    # then all, the newest or none of them are merged with the chat lead
    assert Lead.objects.filter(is_archived=True).count() == archived


def test_message_chat_lead_title_is_stored_as_a_message_and_follows_the_reader(intake_client, lead_pipeline, admin_client):
    from django.utils import translation

    # given a chat lead the intake titled (the request ran in English)
    _message(intake_client, chat_id="100777", username="ivan_p")
    lead = Lead.objects.get()
    assert lead.title == "Telegram chat @ivan_p" and lead.title_data is not None
    # then each reader sees it in their language
    with translation.override("ru"):
        assert str(lead) == "Чат Telegram: @ivan_p"
    with translation.override("en"):
        assert str(lead) == "Telegram chat @ivan_p"
    # and once a manager changes the title it is plain text in every language
    lead.title = "Ivan, wants SEO"
    lead.save()
    lead.refresh_from_db()
    assert lead.title_data is None
    with translation.override("ru"):
        assert str(lead) == "Ivan, wants SEO"


def test_message_lead_title_shown_in_russian_is_kept_as_a_message_when_saved_unchanged(intake_client, lead_pipeline):
    from django.utils import translation

    _message(intake_client, chat_id="100778", username="petr")
    lead = Lead.objects.get()
    with translation.override("ru"):
        lead.title = str(lead)  # the form showed the Russian title and saved it back untouched
    lead.save()
    lead.refresh_from_db()
    assert lead.title_data is not None
