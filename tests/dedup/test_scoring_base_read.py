"""The whole base read as plain rows (scoring.base_read) gives what the model instances' readers give."""
import pytest

from dedup import registry
from dedup.engine.scoring import base_read, matcher
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring.entity import entity_records, entity_schema, read_entity
from tests import factories


def _through_instances(spec):
    """The reference: each record read through its model instance (entity_records' queryset path)."""
    pks, rows = [], []
    for pk, values in entity_records(spec, spec.model._default_manager.all()):
        pks.append(pk)
        rows.append(values)
    return pks, matcher.read_records(rows, entity_schema(spec))


def _columns(records):
    return [list(column) for column in records.columns]


@pytest.fixture
def customers(db):
    """Customers with several phones, a garbage phone, emails typed alike, a messenger, a company, shared names,
    no contacts at all, and an archived one."""
    company = factories.CompanyFactory(name="Vector Trade LLC")
    olga = factories.CustomerFactory(first_name="Olga", last_name="Smirnova", middle_name="Petrovna", company=company)
    factories.PhoneFactory(content_object=olga, number="+7 903 111-22-33")
    factories.PhoneFactory(content_object=olga, number="8 (903) 444-55-66")
    factories.EmailFactory(content_object=olga, address="Olga.Smirnova+crm@Gmail.com")
    factories.MessengerFactory(content_object=olga, channel="telegram", username="olga_s")
    again = factories.CustomerFactory(first_name="Olga", last_name="Smirnova", middle_name="Petrovna")
    factories.EmailFactory(content_object=again, address="olgasmirnova@gmail.com")
    garbage = factories.CustomerFactory(first_name="Ivan", last_name="Petrov", company=company)
    factories.PhoneFactory(content_object=garbage, number="abc")  # stored with an empty E.164: missing
    factories.EmailFactory(content_object=garbage, address="n/a")
    factories.CustomerFactory(first_name="", last_name="", middle_name="")
    gone = factories.CustomerFactory(first_name="Anna", last_name="Orlova", is_archived=True)
    factories.PhoneFactory(content_object=gone, number="+7 903 777-88-99")
    # A lead's contacts: the same generic tables, another owner type, never a customer's.
    lead = factories.LeadFactory(first_name="Olga", last_name="Smirnova")
    factories.PhoneFactory(content_object=lead, number="+7 903 111-22-33")
    return {"olga": olga, "again": again, "garbage": garbage, "gone": gone}


def test_read_base_gives_the_values_the_model_instances_give(customers, django_assert_max_num_queries):
    # Given the customers above
    spec = registry.get("customer")

    # When the base is read as plain rows and through the model instances
    with django_assert_max_num_queries(8):
        pks, plain = base_read.read_base(spec, entity_schema(spec))
    reference_pks, reference = _through_instances(spec)

    # Then the same records hold the same prepared values, field by field; the archived one is left out
    assert pks == reference_pks
    assert customers["gone"].pk not in pks
    assert _columns(plain) == _columns(reference)
    names = [spec.name for spec in plain.schema]
    olga, garbage = pks.index(customers["olga"].pk), pks.index(customers["garbage"].pk)
    phones = plain.columns[names.index("phone")]
    assert {item.e164 for item in phones[olga]} == {"+79031112233", "+79034445566"}
    assert phones[garbage] is None
    assert plain.columns[names.index("email")][garbage] is None
    assert plain.columns[names.index("messenger")][olga] == ("TELEGRAMOLGAS",)


def test_read_base_shares_one_prepared_value_among_records_typed_alike(customers):
    # Given two customers named alike and one unnamed
    spec = registry.get("customer")

    # When the base is read
    pks, plain = base_read.read_base(spec, entity_schema(spec))

    # Then the two names are one code (one prepared value), and the unnamed customer has none
    position = [field.name for field in plain.schema].index("full_name")
    coded = plain.coded(position)
    olga, again = pks.index(customers["olga"].pk), pks.index(customers["again"].pk)
    assert coded.codes[olga] == coded.codes[again] >= 0
    assert plain.columns[position][olga] is plain.columns[position][again]
    assert list(coded.codes).count(-1) == 1


@pytest.mark.django_db
def test_read_base_reads_leads_as_their_instances_do(django_assert_max_num_queries):
    # Given leads with their own company name, a visitor id and contacts
    first = factories.LeadFactory(first_name="Ivan", last_name="Petrov", company_name="Romashka LLC",
                                  visitor_id="v-123456")
    factories.PhoneFactory(content_object=first, number="+7 903 555-00-11")
    factories.EmailFactory(content_object=first, address="ivan@mail.ru")
    factories.LeadFactory(first_name="Ivan", last_name="Petrov", company_name="ООО Ромашка")
    spec = registry.get("lead")

    # When the leads are read as plain rows
    with django_assert_max_num_queries(8):
        pks, plain = base_read.read_base(spec, entity_schema(spec))

    # Then they hold what their model instances' readers give
    reference_pks, reference = _through_instances(spec)
    assert pks == reference_pks and _columns(plain) == _columns(reference)


@pytest.mark.django_db
def test_read_entity_reads_a_typed_custom_field_through_the_instances():
    # Given a customer custom field the administrator typed as a date
    first = factories.CustomerFactory(first_name="Olga", last_name="Smirnova", custom_fields={"born": "1980-04-09"})
    factories.CustomerFactory(first_name="Ivan", last_name="Petrov", custom_fields={})
    spec = registry.get("customer")
    registry.set_custom_kinds({("customer", "born"): "date"})
    try:
        schema = entity_schema(spec)

        # When the whole base is read
        plain = base_read.read_base(spec, schema)
        pks, read = read_entity(spec, schema)
    finally:
        registry.set_custom_kinds({})

    # Then the plain reader declines (the JSON's values are read by the instances) and the field is read
    assert plain is None
    born = read.columns[[field.name for field in schema].index("custom:born")]
    assert born[pks.index(first.pk)] == ((1980, 4, 9),)
    assert born[1 - pks.index(first.pk)] is None


@pytest.mark.parametrize("e164", ["+79031112233", "+14155552671", "+442079460018", "+390212345678", "+77011234567"])
def test_prepare_stored_phone_reads_the_key_as_parsing_it_does(e164):
    # A stored E.164 key is read from its own digits (Italy's leading zero included) as libphonenumber reads it
    assert c.prepare(c.PHONE, [e164], stored=True) == c.prepare(c.PHONE, [e164])


def test_prepare_stored_phone_falls_back_to_parsing_a_key_of_another_form():
    assert c.prepare(c.PHONE, ["8 903 111-22-33"], stored=True) == c.prepare(c.PHONE, ["8 903 111-22-33"])
    assert c.prepare(c.PHONE, ["0000000"], stored=True) is None


@pytest.mark.parametrize("address", ["Ivan.Petrov+news@GoogleMail.com", "ivan.petrov@ya.ru", "a+b@mail.ru",
                                     "Ivan <ivan@Mail.RU>", "mailto:x.y@yandex.com", "plain@example.com"])
def test_prepare_email_folds_as_email_key_folds_the_raw_address(address):
    from dedup.engine import normalize

    (item,) = c.prepare(c.EMAIL, address)
    assert item.exact == normalize.email_key(address)
    assert item.folded == normalize.email_key(address, fold_provider=True)
