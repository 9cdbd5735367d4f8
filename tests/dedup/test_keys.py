"""The keys the index stores for a record: normalised, folded, blocking and scope keys."""
import pytest

from crm.models import Stage
from dedup import registry
from dedup.engine import keys
from dedup.registry import MatchField
from tests import factories
from tests.dedup.engine_helpers import customer_with


def _rows(record, kinds):
    spec = registry.for_model(type(record))
    return {(row.kind, row.key) for row in keys.record_rows(spec, record, kinds)}


@pytest.mark.django_db
def test_record_rows_phone_formats_give_one_key():
    # Given a customer with one number typed in three national and international forms
    customer = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89", "+7 (912) 345 67 89", "79123456789"])

    # When its phone keys are computed
    rows = _rows(customer, {"phone"})

    # Then the three forms are one key in E.164
    assert rows == {("phone", "+79123456789")}


@pytest.mark.django_db
def test_record_rows_names_are_script_and_order_folded():
    # Given the same person typed in Cyrillic, and in Latin with the words swapped
    cyrillic = customer_with("Иван", "Петров")
    latin = customer_with("PETROV", "ivan")

    # When their full-name keys are computed
    # Then they are the same key
    assert _rows(cyrillic, {"full_name"}) == _rows(latin, {"full_name"}) == {("full_name", "ivan petrov")}


@pytest.mark.django_db
def test_record_rows_garbage_is_kept_but_never_keyed():
    # Given a customer whose phone and email fields hold garbage
    customer = customer_with("Ivan", "Petrov", phones=["call me maybe"], emails=["not an email"])

    # When its keys are computed
    rows = _rows(customer, {"phone", "email", "full_name"})

    # Then nothing crashes, the garbage gives no key, and the name still does
    assert rows == {("full_name", "ivan petrov")}
    assert customer.phones.get().number == "call me maybe"


@pytest.mark.django_db
def test_record_rows_email_folding_kind():
    # Given a Gmail address with dots and a +tag
    customer = customer_with("Ivan", "Petrov", emails=["I.Van+Shop@Gmail.com"])

    # When its plain and provider-folded keys are computed
    rows = _rows(customer, {"email", "email:fold"})

    # Then the plain key keeps dots and tag, the folded one drops them
    assert rows == {("email", "i.van+shop@gmail.com"), ("email:fold", "ivan@gmail.com")}


@pytest.mark.django_db
def test_record_rows_archived_record_has_no_keys():
    # Given a customer merged away (archived)
    customer = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    customer.is_archived = True

    # When its keys are computed
    # Then it has none: a merged-away record is never a match
    assert _rows(customer, {"phone", "full_name"}) == set()


@pytest.mark.django_db
def test_record_rows_blocking_rows_carry_the_normalised_value():
    # Given a customer
    customer = customer_with("Ivan", "Petrov")
    spec = registry.get("customer")

    # When its blocking keys for fuzzy name matching are computed
    rows = keys.record_rows(spec, customer, {"full_name:block"})

    # Then there are blocking keys, each carrying the normalised name for scoring
    assert rows
    assert {row.kind for row in rows} == {"full_name:block"}
    assert {row.value for row in rows} == {"ivan petrov"}


@pytest.mark.django_db
def test_record_rows_stage_and_equal_scope_rows():
    # Given a deal in a won stage with a service
    won = factories.StageFactory(name="Won", semantic=Stage.Semantic.WON)
    deal = factories.DealFactory(stage=won, pipeline=won.pipeline, service="Automation ")
    spec = registry.get("deal")

    # When its scope rows are computed
    rows = {(row.kind, row.key, row.value) for row in keys.record_rows(spec, deal, {"_stage", "_eq:service"})}

    # Then the stage is recorded as closed and the service as an equality key
    assert rows == {("_stage", str(won.pk), "closed"), ("_eq:service", "automation", "Automation")}


@pytest.mark.django_db
def test_record_rows_custom_field_key():
    # Given a customer with a custom field
    customer = factories.CustomerFactory(custom_fields={"inn": " 7701234567 ", "notes": {"nested": 1}})

    # When the custom field is used as a match field
    rows = _rows(customer, {"custom:inn", "custom:notes"})

    # Then its text is keyed, and structured values are not
    assert rows == {("custom:inn", "7701234567")}


def test_display_phone_in_international_format():
    # Given a phone key in E.164
    phone = MatchField("phone", "phone", "phone", lambda record: [])

    # When it is shown in a reason
    # Then people read it in international format
    assert keys.display(phone, "+79123456789", "+79123456789") == "+7 912 345-67-89"


def test_field_of_kind_round_trip():
    # Given every kind of index row
    # When a kind is split back into field and mode
    # Then the field and mode come back
    assert keys.field_of_kind(keys.block_kind("full_name")) == ("full_name", "block")
    assert keys.field_of_kind(keys.fold_kind("email")) == ("email", "fold")
    assert keys.field_of_kind(keys.equal_kind("service")) == ("service", "equal")
    assert keys.field_of_kind(keys.STAGE_KIND) == ("", "stage")
    assert keys.field_of_kind("phone") == ("phone", "norm")


def test_normalized_never_raises_and_never_keys_garbage():
    # Given garbage of every odd type (no value, bytes, a dict, control characters and a lone surrogate, a
    # pasted document) and two plain numbers
    garbage = [None, b"bytes", {"a": 1}, "\x00\ud800", "x" * 10000]
    numbers = [12, 3.5]

    # When each is normalised as every kind
    # Then nothing raises and garbage gets no key of any kind
    for kind in ("phone", "email", "person_name", "company_name", "handle", "text", "website"):
        assert [keys.normalized(kind, value) for value in garbage] == [None] * len(garbage), kind
        # and a number is keyed only where a number can be a value (a text field: an id, a tax number)
        expected = ["12", "3.5"] if kind == "text" else [None, None]
        assert [keys.normalized(kind, value) for value in numbers] == expected, kind
