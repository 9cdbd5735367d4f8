"""Every text the system stores renders in both languages: a table over every message id in the code.

The ids are found in the source itself (the catalog of dedup.messages, every ``Message.of(...)`` and
``MergeError.of(...)`` with a literal text, and the module-level reasons passed to them), so a new stored text
without a Russian translation, with a parameter the translation drops, or with English left in it fails here.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import gettext_lazy

from dedup.messages import CATALOG, Message, render, str_msgid, text_of
from dedup.records import CASES, label_of, record_label
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "dedup").rglob("*.py")), *sorted((ROOT / "crm").rglob("*.py"))]
LAZY = {"_", "gettext_lazy", "ngettext_lazy", "pgettext_lazy"}
PLACEHOLDER = re.compile(r"%\((\w+?)(?:__(" + "|".join(CASES) + r"))?\)([sd])")
# Words that stay as they are in Russian: product and standard names.
LATIN_ALLOWED = {"JSON", "ID", "Telegram", "WhatsApp", "SEO", "CSV", "URL", "UTF", "E164", "NUL", "email"}
# Services that store the lazy text they are given (as a reason, a resolution, a title).
STORING = {"_resolve", "_resolution", "_title", "_run_fail", "scan_run_fail", "scan_chunk_fail", "merge_job_fail",
           "merge_undo_fail", "_job_failed", "_undo_back_to_done"}
# Parameters that name a record: rendered as a record reference (and so in the sentence's case).
RECORD_PARAMS = {"record", "survivor"}


def _literal(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _lazy_text(node) -> tuple | None:
    """Return (context, singular, plural) of a lazy-translation call with literal texts."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.func.id not in LAZY:
        return None
    texts = [_literal(arg) for arg in node.args]
    if node.func.id == "ngettext_lazy" and len(texts) >= 2 and texts[0] and texts[1]:
        return ("", texts[0], texts[1])
    if node.func.id == "pgettext_lazy" and len(texts) >= 2 and texts[0] and texts[1]:
        return (texts[0], texts[1], None)
    if texts and texts[0]:
        return ("", texts[0], None)
    return None


def _stored_msgids() -> set[tuple]:
    found = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        reasons = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                text = _lazy_text(node.value)
                if text and re.search(r"REASON|RESOLVED", node.targets[0].id):
                    found.add(text)
                    reasons[node.targets[0].id] = text
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "of"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"Message", "MergeError"}
                and node.args
            ):
                text = _lazy_text(node.args[0])
                if text:
                    found.add(text)
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in STORING:
                    for arg in [*node.args, *(keyword.value for keyword in node.keywords)]:
                        text = _lazy_text(arg)
                        if text:
                            found.add(text)
    return found


def _cases() -> list:
    rows = [("catalog:" + key, {"id": key}, str_msgid(t.singular), str_msgid(t.plural) if t.plural else None)
            for key, t in CATALOG.items()]
    for context, singular, plural in sorted(_stored_msgids(), key=lambda text: (text[1], text[0])):
        data = {"msg": singular}
        if context:
            data["c"] = context
        if plural:
            data.update(plural=plural, n="count")
        rows.append((singular[:60], data, singular, plural))
    return rows


CASES_TABLE = _cases()


def _sample(name: str, kind: str, case: str):
    if kind == "d":
        return 5
    if case or name in RECORD_PARAMS:
        return {"record": ["crm.customer", 1984, "Иван Петров"]}
    return f"«образец-{name}»"


def test_stored_texts_the_table_finds_the_texts_of_every_kind():
    msgids = {row[2] for row in CASES_TABLE}
    assert len(CASES_TABLE) > 100
    for expected in (
        "The worker running it stopped before it finished (it was restarted or ran out of memory); "
        "nothing was changed. Try again.",  # the sweeper's job error
        "Scan #%(id)s failed: %(reason)s",  # the scan-failure notification
        "Request from %(who)s",  # the intake's lead title
        "Not duplicates.",  # the review group's resolution
        "%(record)s is archived.",  # a merge refusal stored as the job's error
    ):
        assert expected in msgids


@pytest.mark.parametrize(("label", "data", "singular", "plural"), CASES_TABLE, ids=[row[0] for row in CASES_TABLE])
def test_stored_texts_render_in_both_languages(label, data, singular, plural):
    params = {}
    for name, case, kind in PLACEHOLDER.findall(singular + (plural or "")):
        if name not in params or case:
            params[name] = _sample(name, kind, case)
    for count in ([1, 2, 5] if plural else [None]):
        stored = {**data, "params": {**params, **({"count": count} if count is not None else {})}}
        with translation.override("en"):
            english = render(stored)
        with translation.override("ru"):
            russian = render(stored)
        for text in (english, russian):
            assert "%(" not in text and "__" not in text, text
            for name, value in stored["params"].items():
                if isinstance(value, str):
                    assert value in text, f"{name} missing from {text!r}"
                elif isinstance(value, dict):
                    assert "1984" in text and "Иван Петров" in text, f"{name} missing from {text!r}"
        if re.sub(PLACEHOLDER, "", singular).strip(" :;,.()#"):  # words to translate, not only parameters
            assert russian != english, f"not translated: {english!r}"
        leftover = {word for word in re.findall(r"[A-Za-z]{2,}", re.sub(r"«образец-\w+»", "", russian))}
        assert not leftover - LATIN_ALLOWED, f"English left in {russian!r}"


@pytest.mark.parametrize(
    ("case", "expected"),
    [("", "клиент №1984"), ("gen", "клиента №1984"), ("dat", "клиенту №1984"), ("acc", "клиента №1984"),
     ("ins", "клиентом №1984"), ("pre", "клиенте №1984")],
)
def test_stored_texts_record_label_takes_the_case_the_sentence_asks(case, expected):
    with translation.override("ru"):
        assert label_of("crm.customer", 1984, case=case) == expected
    with translation.override("en"):
        assert label_of("crm.customer", 1984, case=case) == "customer #1984"


def test_stored_texts_a_sentence_gets_its_record_in_the_right_case(db):
    absorbed, survivor = factories.CustomerFactory(last_name="Сидоров", first_name=""), factories.CustomerFactory()
    message = Message.of(
        gettext_lazy("%(record)s was merged into %(survivor__ins)s; its duplicates are that record’s now."),
        record=absorbed,
        survivor=survivor,
    )
    with translation.override("ru"):
        assert f"объединена с клиентом №{survivor.pk} " in render(message.data)
    with translation.override("en"):
        # a sentence that starts with a record starts with a capital letter
        assert render(message.data).startswith(f"Customer #{absorbed.pk} Сидоров was merged into customer #{survivor.pk}")


def test_stored_texts_record_label_on_its_own_is_the_same_label_capitalised(db):
    customer = factories.CustomerFactory(last_name="Petrov", first_name="Ivan")
    refusal = Message.of(gettext_lazy("%(record)s is archived."), record=customer)
    with translation.override("ru"):
        assert record_label(customer) == f"Клиент №{customer.pk} Petrov Ivan"
        assert render(refusal.data) == f"Запись клиент №{customer.pk} Petrov Ivan в архиве."
    with translation.override("en"):
        assert record_label(customer) == f"Customer #{customer.pk} Petrov Ivan"
        assert render(refusal.data) == f"Customer #{customer.pk} Petrov Ivan is archived."


def test_stored_texts_legacy_plain_text_reads_as_written():
    assert text_of(None, "The merge was not done: old English text") == "The merge was not done: old English text"
    assert text_of({}, "") == ""


# --- What the services store, read by someone with another language ---------------------------------------------


def _read(read) -> tuple[str, str]:
    with translation.override("en"):
        english = read()
    with translation.override("ru"):
        russian = read()
    return english, russian


def test_stored_texts_a_swept_jobs_error_and_notification_follow_the_reader(db):
    from datetime import timedelta

    from django.contrib.auth.models import Permission
    from django.utils import timezone

    from dedup.merge import merge_job_create, merge_jobs_sweep
    from dedup.models import MergeJob, Notification
    from tests.dedup.test_merge_jobs import MERGER_CODENAMES

    # Given a merge asked for in English whose message was lost
    user = factories.UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=MERGER_CODENAMES))
    survivor, duplicate = factories.CustomerFactory(), factories.CustomerFactory()
    with translation.override("en"):
        job = merge_job_create(user=user, survivor=survivor, absorbed=[duplicate])
    MergeJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=2), language="en")

    # When the sweeper fails it
    merge_jobs_sweep()

    # Then a Russian reader reads the reason and the notification in Russian, an English one in English
    job.refresh_from_db()
    assert job.error_data is not None
    english, russian = _read(lambda: job.error_text)
    assert english.startswith("No worker started it within an hour") and russian.startswith("За час ни один обработчик")
    note = Notification.objects.get(job=job)
    english, russian = _read(lambda: note.text)
    assert english.startswith("The merge was not done: No worker") and russian.startswith("Объединение не выполнено: За час")


def test_stored_texts_a_refused_merge_keeps_its_record_reference(db):
    from django.contrib.auth.models import Permission

    from dedup.merge import merge_job_create, merge_job_run
    from dedup.models import MergeJob
    from tests.dedup.test_merge_jobs import MERGER_CODENAMES

    user = factories.UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=MERGER_CODENAMES))
    survivor = factories.CustomerFactory(last_name="Petrov", first_name="Ivan")
    duplicate = factories.CustomerFactory(last_name="Petrov", first_name="Ivan")
    job = merge_job_create(user=user, survivor=survivor, absorbed=[duplicate], expected={
        str(duplicate.pk): "2001-01-01T00:00:00+00:00"})
    merge_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == MergeJob.Status.FAILED
    english, russian = _read(lambda: job.error_text)
    assert english.startswith(f"Customer #{duplicate.pk} Petrov Ivan was changed by someone else")
    assert f"клиент №{duplicate.pk} Petrov Ivan" in russian and "changed" not in russian


def test_stored_texts_scan_failure_and_group_resolution_follow_the_reader(db):
    from dedup import review
    from dedup.models.scan import DuplicateGroup, ScanRun

    user = factories.UserFactory(is_superuser=True)
    run = ScanRun.objects.create(requested_by=user, entities=["customer"])
    review.scan_run_fail(run_id=run.pk, reason=RuntimeError("database went away"))
    run.refresh_from_db()
    english, russian = _read(lambda: run.failure_text)
    assert english == "It stopped on an error: database went away"
    assert russian == "Остановлено из-за ошибки: database went away"
    from dedup.models import Notification

    english, russian = _read(lambda: Notification.objects.get(user=user).text)
    assert english.startswith(f"Scan #{run.pk} failed: It stopped") and russian.startswith(f"Проверка №{run.pk} не удалась: Остановлено")

    group = DuplicateGroup.objects.create(entity="customer", signature="x" * 40, size=2)
    review.group_dismiss(group=group, user=user)
    group.refresh_from_db()
    english, russian = _read(lambda: group.resolution_text)
    assert english == "Not duplicates." and russian == "Не дубли."


def test_stored_texts_legacy_rows_without_data_read_as_written(db):
    from dedup.models import MergeJob
    from dedup.models.scan import ScanRun

    run = ScanRun.objects.create(entities=[], status=ScanRun.Status.FAILED, failure_reason="Old English reason")
    with translation.override("ru"):
        assert run.failure_text == "Old English reason"
        assert MergeJob(error="Old error").error_text == "Old error"
