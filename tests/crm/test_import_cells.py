"""What one cell means: the rules both importers share (crm/importing/cells.py), table-driven plus properties."""
import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm.importing import cells
from crm.importing.engine import HANDLE_CHANNELS

H = cells.Handle


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True), ("yes", True), ("Y", True), ("x", True), ("+", True), ("да", True), ("Д", True), ("TRUE", True),
        ("0", False), ("no", False), ("N", False), ("-", False), ("нет", False), ("н", False), ("False", False),
        (True, True), (False, False), (1, True), (0.0, False),
    ],
)
def test_parse_bool_reads_yes_and_no_in_both_languages(raw, expected):
    assert cells.parse_bool(raw) is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "ja", "oui", "++"])
def test_parse_bool_refuses_anything_else(raw):
    with pytest.raises(cells.CellError, match="neither yes nor no"):
        cells.parse_bool(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1234.50", "1234.50"), ("1234,50", "1234.50"), ("1 234,50", "1234.50"), ("1\u00a0234,50", "1234.50"),
        ("1.234,50", "1234.50"), ("1,234.50", "1234.50"), ("1'234.50", "1234.50"), ("12,5", "12.5"),
        ("1.234.567,89", "1234567.89"), ("1,234,567.89", "1234567.89"), ("0", "0"), (1234, "1234"),
        (12.5, "12.5"), (Decimal("7.10"), "7.10"),
    ],
)
def test_parse_decimal_reads_both_decimal_styles(raw, expected):
    assert cells.parse_decimal(raw, max_digits=12, decimal_places=2) == Decimal(expected)


@pytest.mark.parametrize(
    ("raw", "message"),
    [("abc", "not a number"), ("NaN", "not a number"), ("Infinity", "not a number"), ("-5", "negative"),
     ("1.005", "more than 2 decimal places"), ("10000000000", "too large"), (True, "not a number")],
)
def test_parse_decimal_refuses_what_is_no_amount(raw, message):
    with pytest.raises(cells.CellError, match=message):
        cells.parse_decimal(raw, max_digits=12, decimal_places=2)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-01", datetime.date(2024, 3, 1)), ("01.03.2024", datetime.date(2024, 3, 1)),
        ("1/3/2024", datetime.date(2024, 3, 1)), ("2024-3-1", datetime.date(2024, 3, 1)),
        (datetime.datetime(2024, 3, 1, 12, 0), datetime.date(2024, 3, 1)),
        (datetime.date(2024, 3, 1), datetime.date(2024, 3, 1)),
    ],
)
def test_parse_date_reads_iso_and_day_first(raw, expected):
    assert cells.parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["31.02.1990", "2024-13-01", "03/01/24", "yesterday", "1.3.2024.5"])
def test_parse_date_refuses_impossible_or_ambiguous_dates(raw):
    with pytest.raises(cells.CellError, match="not a date"):
        cells.parse_date(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("@ivan", H("telegram", "ivan")),
        ("ivan", H("telegram", "ivan")),
        ("123456", H("telegram", chat_id="123456")),
        ("-100123", H("telegram", chat_id="-100123")),
        ("tg:@ivan", H("telegram", "ivan")),
        ("TG: ivan", H("telegram", "ivan")),
        ("telegram:#555", H("telegram", chat_id="555")),
        ("telegram:@ivan#555", H("telegram", "ivan", "555")),
        ("https://t.me/ivan_p", H("telegram", "ivan_p")),
        ("t.me/@ivan_p/", H("telegram", "ivan_p")),
        ("whatsapp:+79990001122", H("whatsapp", chat_id="+79990001122")),
        ("wa:79990001122", H("whatsapp", chat_id="79990001122")),
        ("WhatsApp:@shop", H("whatsapp", "shop")),
        ("viber:@shop", H("viber", "shop")),
        ("skype:ivan", H("telegram", "skype:ivan")),  # not a messenger this CRM knows: kept as typed
    ],
)
def test_parse_handle_reads_every_form_people_and_the_export_write(raw, expected):
    assert cells.parse_handle(raw, channels=HANDLE_CHANNELS, default_channel="telegram") == expected


def test_parse_handles_counts_one_handle_written_twice_once():
    handles = cells.parse_handles(
        "@Ivan; tg:ivan, https://t.me/IVAN; 555", channels=HANDLE_CHANNELS, default_channel="telegram"
    )
    assert handles == [H("telegram", "Ivan"), H("telegram", chat_id="555")]


def test_parse_handle_refuses_a_handle_with_nothing_in_it():
    with pytest.raises(cells.CellError, match="neither a username nor a chat ID"):
        cells.parse_handle("tg:@", channels=HANDLE_CHANNELS, default_channel="telegram")


def test_parse_phones_keeps_the_typed_form_and_counts_one_number_once():
    assert cells.parse_phones("8 (912) 345-67-89; +7 912 345 67 89, +1 415 555 0100; not a phone") == [
        ("8 (912) 345-67-89", "+79123456789"),
        ("+1 415 555 0100", "+14155550100"),
        ("not a phone", ""),
    ]


def test_parse_emails_and_tags_split_on_their_separators():
    assert cells.parse_emails("a@example.com, A@EXAMPLE.com; b@example.com") == ["a@example.com", "b@example.com"]
    assert cells.parse_tags("b2b, retail; vip;; vip") == ["b2b, retail", "vip"]


def test_check_length_names_the_limit():
    with pytest.raises(cells.CellError, match="longer than 3 characters"):
        cells.parse_emails("abcd", max_length=3)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("=1+2", "'=1+2"), ("+7 912", "'+7 912"), ("-2+3", "'-2+3"), ("@SUM(1)", "'@SUM(1)"), ("\tx", "'\tx"),
     ("\rx", "'\rx"), ("Ivan", "Ivan"), ("", ""), (-5, -5), (Decimal("-5"), Decimal("-5")), (None, None)],
)
def test_formula_escape_prefixes_formula_text_only(raw, expected):
    assert cells.formula_escape(raw) == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [(" E-mail ", "e_mail"), ("Company name", "company_name"), ("External ID", "external_id"), ("phone", "phone")],
)
def test_normalise_header(title, expected):
    assert cells.normalise_header(title) == expected


# --- Properties ----------------------------------------------------------------------------------------------


@given(st.decimals(min_value=0, max_value=Decimal("9999999999.99"), places=2, allow_nan=False, allow_infinity=False))
def test_parse_decimal_reads_a_number_back_in_every_written_style(amount):
    plain = f"{amount:.2f}"
    whole, fraction = plain.split(".")
    grouped = f"{int(whole):,}"
    for written in (plain, plain.replace(".", ","), f"{grouped}.{fraction}",
                    f"{grouped.replace(',', '.')},{fraction}", f"{grouped.replace(',', ' ')},{fraction}"):
        assert cells.parse_decimal(written, max_digits=12, decimal_places=2) == amount, written


@given(st.text(max_size=40))
def test_exported_text_reads_back_as_it_was(text):
    # What the export escapes, the import unescapes: a file exported and imported again is unchanged.
    stripped = text.strip()
    assert cells.cell_text(cells.formula_escape(stripped)) == cells.cell_text(stripped)
    escaped = cells.formula_escape(stripped)
    assert not escaped.startswith(cells.FORMULA_TRIGGERS)


@given(st.lists(st.from_regex(r"[a-z][a-z0-9_]{2,12}", fullmatch=True), min_size=1, max_size=5, unique=True))
def test_rendered_handles_parse_back(usernames):
    handles = [H("telegram", name, str(index)) for index, name in enumerate(usernames)]
    cell = cells.JOINER.join(handle.render() for handle in handles)
    assert cells.parse_handles(cell, channels=HANDLE_CHANNELS, default_channel="telegram") == handles
