"""Comparison levels of scored matching per field type, placeholders and garbage (pure functions, no database)."""
from datetime import date

import pytest

from dedup.engine import normalize
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.names import are_variants, phonetic_key


def level(field_type, left, right, *, left_region=None, right_region=None):
    index = c.compare(field_type, c.prepare(field_type, left, region=left_region),
                      c.prepare(field_type, right, region=right_region))
    return "missing" if index == c.MISSING else c.LEVELS[field_type][index]


@pytest.mark.parametrize(
    ("field_type", "left", "right", "expected"),
    [
        # text
        (c.TEXT, "Moscow ", "moscow", "exact"),
        (c.TEXT, "Saint Petersburg", "Saint Petersberg", "fuzzy_high"),
        (c.TEXT, "Ekaterinburg", "Ekaterinograd", "fuzzy_mid"),
        (c.TEXT, "Moscow", "Kazan", "different"),
        # person names
        (c.PERSON_NAME, "Иван Петров", "PETROV Ivan", "exact"),
        (c.PERSON_NAME, "Michael Smith", "Micheal Smith", "variant"),
        (c.PERSON_NAME, "Mike Smith", "Smith Michael", "variant"),
        (c.PERSON_NAME, "Geoffrey Brown", "Jeffrey Brown", "variant"),
        (c.PERSON_NAME, "Stephen King", "Steven King", "variant"),
        (c.PERSON_NAME, "Jonathan Lee", "Jonathon Lee", "variant"),
        (c.PERSON_NAME, "Elizabeth Taylor", "Elisabeth Taylor", "variant"),
        (c.PERSON_NAME, "Александр Смирнов", "Саша Смирнов", "variant"),
        (c.PERSON_NAME, "Alexander Smirnov", "Саша Смирнов", "variant"),
        (c.PERSON_NAME, "Olga Smirnova", "Olga Smirnvoa", "fuzzy_high"),
        # a typo is one edit in a word, in the folded or in the typed spelling (folding turns "sch" into "sh")
        (c.PERSON_NAME, "Roger Henschel", "Roger Henkchel", "fuzzy_high"),
        (c.PERSON_NAME, "Дарья Князева", "Дарья Кнгзева", "fuzzy_high"),
        (c.PERSON_NAME, "Ivan Petrov", "Ivan Sergeevich Petrov", "fuzzy_high"),
        # relatives: one surname, two first names, however alike the whole names look
        (c.PERSON_NAME, "Мир Исаков", "Максим Исаков", "fuzzy_mid"),
        (c.PERSON_NAME, "Ivan Petrov", "Ivan", "fuzzy_mid"),
        (c.PERSON_NAME, "Petrov I.", "Ivan Petrov", "initials"),
        (c.PERSON_NAME, "Anna Knight", "Anna Nite", "phonetic"),
        (c.PERSON_NAME, "Olga Smirnova", "Olga Smirnitskaya", "fuzzy_mid"),
        (c.PERSON_NAME, "Ivan Petrov", "Anna Sidorova", "different"),
        (c.PERSON_NAME, "Ivan Petrov", "Ivanna Petrova", "different"),
        (c.PERSON_NAME, "Petrov Ivan", "Петрова Ivan", "different"),
        # a typo of the last letter that folds like a feminine ending ("smith" / "smita" fold to "smit" / "smita"):
        # the typed words have one length, a feminine ending adds letters
        (c.PERSON_NAME, "Steven Smith", "Steven Smita", "fuzzy_high"),
        (c.PERSON_NAME, "Юлия Шилова", "Юлия Шиловв", "fuzzy_high"),
        (c.PERSON_NAME, "John Ball", "John Bala", "fuzzy_high"),
        # a three-letter word one letter apart past the first is a typo too; the first letter is not
        (c.PERSON_NAME, "Mary Cox", "Mary Cok", "fuzzy_high"),
        (c.PERSON_NAME, "Lisa Lee", "Lisa Lke", "fuzzy_high"),
        (c.PERSON_NAME, "Mary Cox", "Mary Fox", "fuzzy_mid"),
        # transliterations of one Russian name are one name, whichever system spelled it
        (c.PERSON_NAME, "Юлия Суханова", "Yuliya Sukhanova", "exact"),
        (c.PERSON_NAME, "Юлия Суханова", "Iuliia Sukhanova", "exact"),
        (c.PERSON_NAME, "Алексей Хохлов", "Alexey Hohlov", "exact"),
        (c.PERSON_NAME, "Наталья Соловьёва", "Natalia Solovyova", "exact"),
        # a surname that folds like a title ("Dyer" -> "dr") is kept: its typo is a typo, not a different name
        (c.PERSON_NAME, "Ashley Dyer", "Ashley Dyep", "fuzzy_high"),
        (c.PERSON_NAME, "Ashley Dyer", "Ashley", "fuzzy_mid"),
        # the words pair off by search: Daniel is also a variant of Danny, but the typo needs it
        (c.PERSON_NAME, "Danny Daniel", "Danny Dbniel", "fuzzy_high"),
        # a typo in a word with ß is one letter in the typed spelling
        (c.PERSON_NAME, "Klemens Heß", "Klemens Heh", "fuzzy_high"),
        # two first names of the variants table one letter apart are two names: two sisters, not a typo
        (c.PERSON_NAME, "Мария Елисеева", "Дарья Елисеева", "different"),
        (c.PERSON_NAME, "Maria Smirnova", "Daria Smirnova", "fuzzy_mid"),
        # ... as typed: "Bien" / "Biet" fold like Ben / Beth, but neither is a name of the table: a surname's typo
        (c.PERSON_NAME, "Ada Bien", "Ada Biet", "fuzzy_high"),
        # Jaro-Winkler alike but a syllable longer: another name, not a typo
        (c.PERSON_NAME, "Anthony Martinez", "Anthony Martin", "fuzzy_mid"),
        (c.PERSON_NAME, "Jon Williamson", "Jon Williams", "fuzzy_mid"),
        (c.PERSON_NAME, "Алексей Комаров", "Алексей Комиссаров", "fuzzy_mid"),
        # company names: legal forms go, digits stay
        (c.COMPANY_NAME, "ООО «Ромашка»", "Romashka LLC", "exact"),
        (c.COMPANY_NAME, "Altas Retail JSC", "Altas Retail", "exact"),
        (c.COMPANY_NAME, "Atlas Retail LLC", "Altas Retail Inc.", "fuzzy_high"),
        (c.COMPANY_NAME, "Cedar Limited", "Cdear PLC", "fuzzy_high"),
        (c.COMPANY_NAME, "ООО «Север»", "Свеер JSC", "fuzzy_high"),
        # a typo is one edit, in the whole name or in each word; a long common prefix is another company
        (c.COMPANY_NAME, "Cedar Supply Corp.", "Cdear Suply LLC", "fuzzy_high"),
        (c.COMPANY_NAME, "Starlight LLC", "Starlightredwood Inc.", "fuzzy_mid"),
        (c.COMPANY_NAME, "Rheintal Bau GmbH", "Rheintal AG", "fuzzy_mid"),
        (c.COMPANY_NAME, "Keystonesummit Ltd", "Keystone Limited", "fuzzy_mid"),
        (c.COMPANY_NAME, "Vector 1552", "Vector 1522", "different"),
        (c.COMPANY_NAME, "Sibir Telecom 773 LLC", "Sibir Telecom 73, Inc.", "different"),
        (c.COMPANY_NAME, "Romashka", "Gvozdika", "different"),
        # dates
        (c.DATE, "1980-04-09", date(1980, 4, 9), "exact"),
        (c.DATE, "09.04.1980", "19800409", "exact"),
        (c.DATE, "1980-04-09", "1980-09-04", "day_month_swapped"),
        (c.DATE, "1980-04-09", "1980-04-08", "one_digit"),
        (c.DATE, "1980-04-09", "1908-04-09", "one_digit"),
        (c.DATE, "1980-04-09", "1975-12-30", "different"),
        # numbers
        (c.NUMBER, "12", 12, "exact"),
        (c.NUMBER, "1 200,50", "1200.5", "exact"),
        (c.NUMBER, "12", "13", "one_digit"),
        (c.NUMBER, "12", "40", "different"),
        # identifiers
        (c.IDENTIFIER, "77-12 345678", "7712345678", "exact"),
        (c.IDENTIFIER, "7712345678", "7712345679", "one_char"),
        (c.IDENTIFIER, "7712345678", "1234567890", "different"),
        # emails
        (c.EMAIL, "Ivan.Petrov@Mail.RU", "ivan.petrov@mail.ru", "exact"),
        (c.EMAIL, "ivan.petrov@gmail.com", "ivanpetrov+crm@googlemail.com", "provider_folded"),
        (c.EMAIL, "ivan.petrov@mail.ru", "ivan.petrov@bk.ru", "different"),
        (c.EMAIL, "ivan.petrov@mail.ru", "ivan.petorv@mail.ru", "different"),
        (c.EMAIL, "ivan@mail.ru", "olga@yandex.ru", "different"),
        # addresses
        (c.ADDRESS, "12 Miller Street", "12 miller street", "exact"),
        (c.ADDRESS, "12 Miller Street", "12 Millar Street", "fuzzy_high"),
        (c.ADDRESS, "12 Miller Street, Sydney", "Miller Street", "fuzzy_high"),
        (c.ADDRESS, "12 Miller Street", "40 Harbour Road", "different"),
    ],
)
def test_compare_levels_by_type(field_type, left, right, expected):
    assert level(field_type, left, right) == expected


def test_compare_phone_levels():
    # The same number as E.164 and as typed in the record's own country (a US number written the US way).
    assert level(c.PHONE, "+1 212 555 0123", "(212) 555-0123", right_region="US") == "exact"
    assert level(c.PHONE, "8 (912) 345-67-89", "+7 912 345 67 89") == "exact"
    assert level(c.PHONE, "+7 912 345-67-89", "+7 912 345-67-88") == "one_digit"
    assert level(c.PHONE, "+7 912 345-67-89", "+7 903 111-22-33") == "different"
    # Without the record's country the US national form is not read as that number.
    assert level(c.PHONE, "+1 212 555 0123", "(212) 555-0123") != "exact"


def test_compare_phone_same_national_number_in_two_countries():
    # One national number under two country codes (a number typed without its code, read in another region).
    left, right = c.Phone("+447400123456", "7400123456"), c.Phone("+497400123456", "7400123456")
    assert c.LEVELS[c.PHONE][c.compare(c.PHONE, (left,), (right,))] == "same_national_number"


def test_compare_several_values_takes_the_best_pair():
    assert level(c.PHONE, ["+7 903 111-22-33", "+7 912 345-67-89"], ["89123456789"]) == "exact"


@pytest.mark.parametrize("placeholder", ["nan", "NaN", "unknown", "-", "n/a", "N/A", "0000000", "1111111", "нет",
                                         "  ", "", None, float("nan")])
def test_prepare_placeholders_are_missing(placeholder):
    for field_type in c.FIELD_TYPES:
        assert c.prepare(field_type, placeholder) is None
    assert level(c.TEXT, placeholder, placeholder) == "missing"


def test_prepare_placeholders_editable_list():
    assert c.prepare(c.TEXT, "Test") is None  # default list
    assert c.prepare(c.TEXT, "Test", placeholders=frozenset({"none"})) == ("test",)


@pytest.mark.parametrize(
    ("field_type", "garbage"),
    [
        (c.PHONE, "abc"),
        (c.PHONE, "12"),
        (c.DATE, "31/31/2020"),
        (c.DATE, "2020-02-30"),
        (c.DATE, "not a date"),
        (c.DATE, "0001-01-01"),
        (c.PERSON_NAME, "x" * 10_000),
        (c.PERSON_NAME, "🙂🙂"),
        (c.EMAIL, "ivan@"),
        (c.NUMBER, "twelve"),
        (c.NUMBER, float("inf")),
        (c.COMPANY_NAME, "LLC"),
        (c.IDENTIFIER, 3.5),
        (c.TEXT, object()),
        (c.ADDRESS, 42),
    ],
)
def test_prepare_garbage_is_missing_never_a_crash(field_type, garbage):
    assert c.prepare(field_type, garbage) is None
    assert c.compare(field_type, c.prepare(field_type, garbage), c.prepare(field_type, garbage)) == c.MISSING


def test_name_variants_table_is_symmetric_and_scripts_meet():
    fold = normalize.fold_token
    assert are_variants(fold("Michael"), fold("Mike"))
    assert are_variants(fold("Mike"), fold("Michael"))
    assert are_variants(fold("Саша"), fold("Alexander"))
    assert not are_variants(fold("Michael"), fold("Alexander"))


def test_phonetic_key_joins_sound_alikes():
    assert phonetic_key("smith") == phonetic_key("smyth")
    assert phonetic_key("smith") != phonetic_key("jones")


def test_company_name_key_keeps_digits_and_drops_jsc():
    assert normalize.company_name_key("Sibir Telecom 773 LLC") != normalize.company_name_key("Sibir Telecom 73, Inc.")
    assert normalize.company_name_key("Vector 1552") != normalize.company_name_key("Vector 1522")
    assert normalize.company_name_key("Altas Retail JSC") == normalize.company_name_key("Altas Retail Llc")
    # Repeated letters still fold (Philipp / Filip), digits do not.
    assert normalize.fold_token("Philipp") == normalize.fold_token("Filip")
    assert normalize.fold_token("1552") == "1552"


def test_compare_never_grades_different_shared_itself():
    # "different_shared" needs the base's shared values: the matcher sets it (matcher.split_shared).
    assert level(c.PHONE, "+7 903 111-22-33", "+7 912 345-67-89") == "different"
    assert level(c.EMAIL, "ivan@mail.ru", "petr@mail.ru") == "different"
    assert c.LEVELS[c.PHONE][-1] == c.LEVELS[c.EMAIL][-1] == "different"
    assert c.DIFFERENT_SHARED in c.LEVELS[c.PHONE] and c.DIFFERENT_SHARED in c.LEVELS[c.EMAIL]
