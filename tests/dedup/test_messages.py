"""Texts the system stores are message ids with parameters, rendered in the reader's language."""
import pytest
from django.utils import translation
from django.utils.translation import gettext_lazy, ngettext_lazy

from crm.models import IncomingRequest, Lead, Note
from dedup import review
from dedup.merge import merge_job_create, merge_job_run, records_merge
from dedup.messages import Message, key_range_text, render, rule_name
from dedup.models import DuplicateGroup, Notification, Rule
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules


def _both(stored) -> tuple[str, str]:
    with translation.override("en"):
        english = render(stored)
    with translation.override("ru"):
        russian = render(stored)
    return english, russian


def test_message_renders_in_the_readers_language_with_plural_and_nested_parts():
    text = Message.join(
        [
            Message.of(gettext_lazy("A new chat.")),
            Message.of(ngettext_lazy("%(count)d record", "%(count)d records", "count"), count=5),
        ],
        " ",
    )
    assert str(text) == "A new chat. 5 records"
    assert _both(text.data) == ("A new chat. 5 records", "Новый чат. 5 записей")


def test_message_pickled_and_read_back_is_the_same_message():
    # (the rule preview is kept in Django's cache, which pickles it)
    import pickle

    from dedup import messages

    same = Message(messages.SAME_VALUE, field="phone", value="+79123456789")
    joined = Message.join([Message.of(gettext_lazy("A new chat.")), same], " ")
    for text in (joined, same, Message.of(gettext_lazy("A new chat."))):
        restored = pickle.loads(pickle.dumps(text))
        assert (type(restored), str(restored), restored.data) == (type(text), str(text), text.data)


def test_message_old_plain_text_renders_as_it_was():
    assert _both("Merged by hand.") == ("Merged by hand.", "Merged by hand.")


def test_message_record_reference_takes_the_model_name_in_the_readers_language(customer):
    text = Message(
        "dedup.merge_finished", count=1, record=customer
    )
    english, russian = _both(text.data)
    assert english == f"Merge finished: 1 record merged into customer #{customer.pk} Petrov Ivan."
    # the record takes the dative case the Russian sentence asks for ("к клиенту", not "к клиент")
    assert russian == f"Объединение завершено: 1 запись присоединена к клиенту №{customer.pk} Petrov Ivan."


def test_message_default_rule_names_render_translated_and_renamed_rules_as_typed(db):
    ensure_default_rules()
    rule = Rule.objects.get(entity="customer", name="Same phone")
    with translation.override("ru"):
        assert str(rule) == "Тот же телефон" == rule_name("Same phone")
        rule.name = "Phones (ours)"
        assert str(rule) == "Phones (ours)"


def test_message_scan_chunk_key_range_in_words():
    with translation.override("ru"):
        assert key_range_text({"from": None, "to": None}) == "все ключи"
        assert key_range_text({"from": "a", "to": "m"}) == "ключи от a до m"
    with translation.override("en"):
        assert key_range_text({"from": "m", "to": None}) == "keys from m"


def test_message_review_queue_reasons_are_stored_as_messages(db, django_capture_on_commit_callbacks):
    # given a scan run in English that found two customers sharing a phone
    ensure_default_rules()
    customer_with("Ivan", "Petrov", phones=["+7 912 000-45-67"])
    customer_with("Ivan", "Petrov", phones=["8 912 000-45-67"])
    with translation.override("en"), django_capture_on_commit_callbacks(execute=True):
        review.scan_start()
    group = DuplicateGroup.objects.get()
    # then its reason is stored as a message and a Russian reader reads it in Russian
    (reason,) = [reason for reason in group.reasons if "phone" in render(reason)]
    assert isinstance(reason, dict)
    english, russian = _both(reason)
    assert english.startswith("same phone")
    assert russian.startswith("то же значение поля «телефон»")


def test_message_merge_note_and_notification_render_in_both_languages(admin_user, django_capture_on_commit_callbacks):
    survivor = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    absorbed = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    with translation.override("en"), django_capture_on_commit_callbacks(execute=False):
        job = merge_job_create(user=admin_user, survivor=survivor, absorbed=[absorbed])
    merge_job_run(job_id=job.pk)
    notification = Notification.objects.get()
    note = Note.objects.get(object_id=survivor.pk)
    with translation.override("ru"):
        assert notification.text.startswith("Объединение завершено: 1 запись")
        assert note.display_text.startswith("С этой записью объединена 1 запись: клиент №")
    with translation.override("en"):
        assert notification.text.startswith("Merge finished: 1 record merged into customer")
        assert note.display_text.startswith("Merged 1 record into this one: customer #")


@pytest.mark.parametrize("language", ["en", "ru"])
def test_message_intake_notes_and_reasons_render_in_the_readers_language(intake_client, lead_pipeline, language):
    # given a new chat and a web form, received in English
    with translation.override("en"):
        chat = intake_client.post(
            "/api/messages/", {"channel": "telegram", "chat_id": "7", "text": "hi"}, format="json"
        ).json()
        form = intake_client.post("/api/leads/", {"name": "Ivan Petrov", "phones": ["+79123456789"]}, format="json")
    assert form.status_code == 201
    chat_note = Note.objects.get(object_id=chat["lead"], content_type__model="lead")
    form_request = IncomingRequest.objects.get(pk=form.json()["request_id"])
    form_note = Note.objects.get(object_id=form.json()["lead"], content_type__model="lead")
    expected = {
        "en": ("A new chat.", "No lead or deal in the searched stages matches.", "Name: Petrov Ivan"),
        "ru": ("Новый чат.", "На просмотренных этапах нет совпадающих лидов и сделок.", "Имя: Petrov Ivan"),
    }[language]
    # then a reader in either language reads them in theirs
    with translation.override(language):
        assert chat_note.display_text.startswith(expected[0])
        assert render(form_request.reason_data).startswith(expected[1])
        assert expected[2] in form_note.display_text or expected[2].replace("Petrov Ivan", "Ivan Petrov") in form_note.display_text
    assert Lead.objects.count() == 2


def test_message_merge_history_lists_entities_by_name(admin_client, admin_user, customer):
    other = factories.CustomerFactory()
    records_merge(survivor=customer, absorbed=[other], user=admin_user)
    from dedup.models import MergeJob
    from django.contrib.contenttypes.models import ContentType

    MergeJob.objects.create(
        entity_key="customer", content_type=ContentType.objects.get_for_model(customer), survivor_id=customer.pk,
        absorbed_ids=[other.pk], status=MergeJob.Status.DONE,
    )
    page = admin_client.get("/admin/dedup/mergejob/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Клиенты" in page
