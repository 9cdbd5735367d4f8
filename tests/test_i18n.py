"""The Russian translation: the admin follows the browser's Accept-Language, and the catalog is whole and sound."""
import ast
import gettext
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from tests import factories

PO_PATH = Path(settings.BASE_DIR) / "locale" / "ru" / "LC_MESSAGES" / "django.po"
MO_PATH = PO_PATH.with_suffix(".mo")
RUSSIAN_PLURAL_FORMS = (
    "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);"
)
# Every kind of placeholder a msgid can carry: %(name)s, %(seconds).1f, %s, %%, {name} and HTML tags.
PLACEHOLDER = re.compile(
    r"%\(\w+\)(?:\.\d+)?[sdrf]|%[sdr%]|\{\w*\}|</?(?:a|b|br|code|div|em|i|kbd|li|ol|p|span|strong|ul)(?:\s[^<>]*)?/?>"
)
PHONE = "+7 912 345-67-89"


# --- A small reader of .po files (polib is not a dependency) -------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str = ""
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False


def _unquote(text: str) -> str:
    return ast.literal_eval(text)  # a PO string is a C string; its escapes (\n, \", \\) are Python's too


def read_po(path: Path) -> list[Entry]:
    """Return the entries of a .po file, the header (msgid "") first."""
    entries: list[Entry] = []
    entry, key = Entry(), None

    def finish():
        nonlocal entry, key
        if key is not None:
            entries.append(entry)
        entry, key = Entry(), None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#~"):
            if key is not None and not entry.obsolete:
                finish()
            entry.obsolete = True
            line = line[2:].strip()
            if not line:
                continue
        if not line:
            finish()
            continue
        if line.startswith("#,"):
            if key is not None:
                finish()
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        if line.startswith('"'):
            value = _unquote(line)
        else:
            keyword, _space, rest = line.partition(" ")
            if keyword == "msgctxt" or (keyword == "msgid" and key not in (None, "msgctxt")):
                finish()
            key, value = keyword, _unquote(rest)
            if key == "msgctxt":
                entry.msgctxt = ""
            elif key.startswith("msgstr"):
                index = int(key[7:-1]) if key.startswith("msgstr[") else 0
                entry.msgstr.setdefault(index, "")
        if key == "msgctxt":
            entry.msgctxt += value
        elif key == "msgid":
            entry.msgid += value
        elif key == "msgid_plural":
            entry.msgid_plural += value
        elif key and key.startswith("msgstr"):
            index = int(key[7:-1]) if key.startswith("msgstr[") else 0
            entry.msgstr[index] += value
    finish()
    return entries


@pytest.fixture(scope="module")
def catalog() -> list[Entry]:
    entries = read_po(PO_PATH)
    assert entries and entries[0].msgid == "", "the catalog has no header"
    return entries


def _messages(entries: list[Entry]) -> list[Entry]:
    return [entry for entry in entries[1:] if not entry.obsolete]


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


def _customer(first="Ivan", last="Petrov", phone=PHONE):
    customer = factories.CustomerFactory(first_name=first, last_name=last)
    factories.PhoneFactory(content_object=customer, number=phone)
    return customer


# --- The admin in the browser's language ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected", "absent"),
    [
        ("ru", ['lang="ru"', "Клиенты", "Компании", "Лиды", "Сделки", "Заказы", "Воронки", "Контроль дублей",
                "Группы дублей", "Уведомления"], ["Customers", "Duplicate control"]),
        ("en", ['lang="en"', "Customers", "Companies", "Leads", "Deals", "Orders", "Pipelines", "Duplicate control",
                "Duplicate groups", "Notifications"], ["Клиенты", "Контроль дублей"]),
    ],
)
def test_admin_index_follows_accept_language(admin_client, language, expected, absent):
    # Given a browser that asks for one language
    # When the admin's home page opens
    response = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE=language)

    # Then the apps and models are named in that language
    html = response.content.decode()
    assert response.status_code == 200
    for text in expected:
        assert text in html
    for text in absent:
        assert text not in html


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ru", ["Выберите клиент для изменения", ">Имя<", ">Ответственный<", ">Дубли<", "Есть дубли", "Нет дублей",
                "Активные", "В архиве", "Имя, компания, телефон (в любом формате), email, мессенджер или внешний ID."]),
        ("en", ["Select customer to change", ">Name<", ">Responsible manager<", ">Duplicates<", "Has duplicates",
                "No duplicates", "Active", "Archived", "Name, company, phone (any format), email, messenger or external ID."]),
    ],
)
def test_customer_changelist_follows_accept_language(admin_client, db, language, expected):
    # Given two customers sharing a phone
    _customer()
    _customer()

    # When the customer list opens in the browser's language
    response = admin_client.get(reverse("admin:crm_customer_changelist"), HTTP_ACCEPT_LANGUAGE=language)

    # Then its title, columns, filters and search help are in that language
    html = response.content.decode()
    assert response.status_code == 200
    for text in expected:
        assert text in html


@pytest.mark.parametrize(
    ("language", "expected", "loading"),
    [
        ("ru", ["Изменить клиент", "Дубли: 1", "Показать записи, похожие на эту", "Продажи", "Отчество",
                "Должность", "Пользовательские поля", "Исключить из повторных продаж", "Закреплена",
                'data-label-open="Открыть"', 'data-label-dismiss="Закрыть"', 'class="deletelink">Удалить<'],
         "Загрузка дублей…"),
        ("en", ["Change customer", "Duplicates: 1", "Show the records that look like this one", "Sales",
                "Middle name", "Position", "Custom fields", "Exclude from repeat sales", "Pinned",
                'data-label-open="Open"', 'data-label-dismiss="Dismiss"', 'class="deletelink">Delete<'],
         "Loading the duplicates…"),
    ],
)
def test_customer_change_page_follows_accept_language(admin_client, db, language, expected, loading):
    # Given a customer with one duplicate
    current = _customer()
    _customer(phone="8 (912) 345-67-89")

    # When its card opens in the browser's language
    response = admin_client.get(
        reverse("admin:crm_customer_change", args=[current.pk]), HTTP_ACCEPT_LANGUAGE=language
    )

    # Then the fields, the duplicate badge and the labels handed to the scripts are in that language
    html = response.content.decode()
    assert response.status_code == 200
    for text in expected:
        assert text in html
    config = re.search(r'<script id="dedup-card-config" type="application/json">(.*?)</script>', html, re.S)
    assert json.loads(config.group(1))["labels"]["loading"] == loading


def test_duplicates_list_in_russian_uses_russian_plurals(admin_client, db):
    # Given a customer with two duplicates
    current = _customer()
    _customer()
    _customer(phone="8 (912) 345-67-89")

    # When the list behind the badge opens in Russian
    response = admin_client.get(reverse("admin:crm_customer_duplicates", args=[current.pk]), HTTP_ACCEPT_LANGUAGE="ru")

    # Then its heading counts them with the Russian plural and its buttons are Russian
    html = response.content.decode()
    assert response.status_code == 200
    assert f"2 возможных дубля записи Клиент №{current.pk}" in html
    assert "Сравнить и объединить" in html
    assert "Почему совпало" in html
    assert "тот же" in html or "то же значение" in html


@pytest.mark.parametrize(("count", "expected"), [(1, "1 запись"), (3, "3 записи"), (5, "5 записей"),
                                                 (11, "11 записей"), (21, "21 запись"), (22, "22 записи")])
def test_russian_plurals_pick_the_right_form(count, expected):
    # Given the Russian catalog
    with translation.override("ru"):
        # When a count is spelt out
        text = ngettext("%(count)d record", "%(count)d records", count) % {"count": count}

    # Then the noun takes Russian's form for that number
    assert text == expected


def test_key_messages_are_russian_in_the_compiled_catalog():
    # Given the compiled Russian catalog, as Django loads it
    with translation.override("ru"):
        # When key product words are looked up
        texts = {
            "Duplicate control": _("Duplicate control"),
            "Duplicates: %(count)s": _("Duplicates: %(count)s"),
            "Priority record": _("Priority record"),
            "not a duplicate": _("not a duplicate"),
            "Repeat inquiry": _("Repeat inquiry"),
            "responsible manager": _("responsible manager"),
            "custom fields": _("custom fields"),
            "won": _("won"),
            "lost": _("lost"),
            "Compare and merge": _("Compare and merge"),
        }
        order = translation.pgettext("sales order", "order")
        sort_order = _("order")

    # Then they read as a Russian CRM user expects
    assert texts == {
        "Duplicate control": "Контроль дублей",
        "Duplicates: %(count)s": "Дубли: %(count)s",
        "Priority record": "Приоритетная запись",
        "not a duplicate": "не дубль",
        "Repeat inquiry": "Повторное обращение",
        "responsible manager": "ответственный",
        "custom fields": "пользовательские поля",
        "won": "успешно",
        "lost": "провалено",
        "Compare and merge": "Сравнить и объединить",
    }
    # and an order (a sale) is not confused with an order (a position in a list)
    assert (order, sort_order) == ("заказ", "порядок")


# --- The catalog itself ------------------------------------------------------------------------------------------


def test_catalog_header_declares_russian_plural_forms(catalog):
    # Given the catalog's header
    header = dict(
        line.split(": ", 1) for line in catalog[0].msgstr[0].splitlines() if ": " in line
    )

    # Then it is Russian, UTF-8, not fuzzy, with Russian's three plural forms
    assert header["Language"] == "ru"
    assert "charset=UTF-8" in header["Content-Type"]
    assert header["Plural-Forms"] == RUSSIAN_PLURAL_FORMS
    assert "fuzzy" not in catalog[0].flags


def test_catalog_every_message_translated_and_none_fuzzy(catalog):
    # Given every message of the catalog
    messages = _messages(catalog)

    # Then each has a translation, in all three plural forms where it has a plural, and none is fuzzy
    untranslated = [entry.msgid for entry in messages if not all(entry.msgstr.values())]
    wrong_plurals = [entry.msgid for entry in messages if entry.msgid_plural and sorted(entry.msgstr) != [0, 1, 2]]
    fuzzy = [entry.msgid for entry in messages if "fuzzy" in entry.flags]
    assert len(messages) > 700
    assert untranslated == []
    assert wrong_plurals == []
    assert fuzzy == []


def test_catalog_translations_keep_every_placeholder(catalog):
    # Given every translated message
    # Then the translation keeps the msgid's placeholders and HTML, so formatting it never raises in Russian
    broken = []
    for entry in _messages(catalog):
        for index, text in entry.msgstr.items():
            source = entry.msgid_plural if entry.msgid_plural and index > 0 else entry.msgid
            if entry.msgid_plural and index == 0 and _placeholders(text) != _placeholders(source):
                source = entry.msgid_plural  # e.g. "one" spelt out in English, "%(count)d" in Russian
            if _placeholders(text) != _placeholders(source):
                broken.append((entry.msgid, index, _placeholders(source), _placeholders(text)))
    assert broken == []


def test_catalog_msgids_carry_no_python_escapes(catalog):
    # Given every msgid
    # Then none holds a \u escape: xgettext keeps it verbatim, so the string Python builds would never match it
    escaped = [entry.msgid for entry in _messages(catalog) if re.search(r"\\[uUN]", entry.msgid + entry.msgid_plural)]
    assert escaped == []


def test_compiled_catalog_matches_the_po_file(catalog):
    # Given the compiled catalog shipped in git (so a machine without gettext needs no msgfmt)
    with MO_PATH.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)

    # Then it holds every translation of the .po file, as written there
    stale = []
    for entry in _messages(catalog):
        if entry.msgid_plural:
            for count, index in ((1, 0), (3, 1), (5, 2)):
                if entry.msgctxt is not None:
                    got = compiled.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, count)
                else:
                    got = compiled.ngettext(entry.msgid, entry.msgid_plural, count)
                if got != entry.msgstr[index]:
                    stale.append(entry.msgid)
        else:
            if entry.msgctxt is not None:
                got = compiled.pgettext(entry.msgctxt, entry.msgid)
            else:
                got = compiled.gettext(entry.msgid)
            if got != entry.msgstr[0]:
                stale.append(entry.msgid)
    assert stale == []


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext's msgfmt is not installed")
def test_catalog_passes_msgfmt_check():
    # Given GNU gettext's own checker
    # When it checks the catalog (format strings, plural header, every entry)
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(PO_PATH)],
        capture_output=True, text=True, check=False,
    )

    # Then it finds no error, no fuzzy and no untranslated message
    assert result.returncode == 0, result.stderr
    assert "translated message" in result.stderr
    assert "fuzzy" not in result.stderr
    assert "untranslated" not in result.stderr


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext's xgettext is not installed")
def test_catalog_covers_every_marked_string(catalog, tmp_path):
    # Given a copy of the code, so the shipped catalog is left alone
    base = Path(settings.BASE_DIR)
    for name in ("config", "crm", "dedup", "templates", "static", "locale"):
        shutil.copytree(base / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(base / "manage.py", tmp_path / "manage.py")

    # When makemessages collects the strings marked for translation in it today
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "ru", "--no-obsolete"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )
    assert result.returncode == 0, result.stderr
    fresh = _messages(read_po(tmp_path / "locale" / "ru" / "LC_MESSAGES" / "django.po"))

    # Then each of them is in the shipped catalog, translated (run makemessages and translate when this fails)
    shipped = {(entry.msgctxt, entry.msgid) for entry in _messages(catalog)}
    missing = [entry.msgid for entry in fresh if (entry.msgctxt, entry.msgid) not in shipped]
    untranslated = [entry.msgid for entry in fresh if not all(entry.msgstr.values()) or "fuzzy" in entry.flags]
    assert missing == []
    assert untranslated == []
