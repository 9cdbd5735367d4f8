"""The administrator's value settings: placeholders treated as missing (an editable list the index and scoring
share) and typed custom fields; a change rebuilds the keys it affects."""
import pytest
from django.urls import reverse

from crm.models import Company, Customer
from dedup import registry
from dedup.engine import index, match_settings, normalize, value_settings
from dedup.engine.finder import duplicates_of
from dedup.engine.scoring import comparisons
from dedup.engine.scoring.entity import entity_schema
from dedup.models import CustomFieldType, IndexBuild, MatchKey, MatchSettings
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules, only_rules, pks

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def settings_of_this_process():
    ensure_default_rules()
    yield
    # Another test must not inherit this process's copy of what a test changed (the database rolls back).
    normalize.use_placeholders(normalize.DEFAULT_PLACEHOLDERS)
    registry.set_custom_kinds({})
    match_settings._applied_version = None


def company(tax_id, name=None):
    return factories.CompanyFactory(tax_id=tax_id, **({"name": name} if name else {}))


def tax_keys():
    return set(MatchKey.objects.filter(entity="company", kind="tax_id").values_list("key", flat=True))


def test_placeholders_seeded_by_the_migration_match_the_default_list():
    row = MatchSettings.objects.get(pk=match_settings.SETTINGS_PK)
    assert match_settings.parse_placeholders(row.placeholders) == normalize.DEFAULT_PLACEHOLDERS
    for value in ("nan", "none", "null", "unknown", "-", "n/a", "na", "0000000", "test", "noemail@*"):
        assert value in normalize.DEFAULT_PLACEHOLDERS


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("N/A", True), (" Unknown ", True), ("0000000", True), ("nan", True), ("noemail@shop.ru", True),
        ("NoEmail@Gmail.com", True), ("1111111", True), ("---", True), (None, True), (float("nan"), True),
        ("Ivan", False), ("0000001", False), ("anna@example.com", False), ("12", False), (7, False),
    ],
)
def test_placeholders_default_list(raw, expected):
    assert normalize.is_placeholder(raw) is expected
    assert comparisons.is_placeholder(raw) is expected  # scoring reads the same list


def test_placeholders_never_match_in_the_index():
    # Given two companies whose tax id is a placeholder, and two with a real one
    zero_a, zero_b = company("0000000"), company("0000000")
    real_a, real_b = company("7701234567"), company("7701234567")

    # Then the placeholder has no key and makes no duplicates
    assert "0000000" not in tax_keys()
    assert pks(duplicates_of(zero_a)) == set()
    assert pks(duplicates_of(real_a)) == {real_b.pk}
    assert zero_b.pk not in pks(duplicates_of(real_a))


def test_placeholders_emails_matching_a_prefix_entry_are_missing():
    only_rules("customer", ("Same email", [("email", "normalized")]))
    first = factories.CustomerFactory()
    second = factories.CustomerFactory()
    for customer in (first, second):
        factories.EmailFactory(content_object=customer, address="noemail@shop.ru")
    assert pks(duplicates_of(first)) == set()


def test_placeholders_edited_list_rebuilds_the_keys_it_affects():
    # Given companies sharing the tax id "unknown" (a placeholder) and companies sharing 12345 (not yet one)
    zero_a, zero_b = company("unknown"), company("Unknown")
    demo_a, demo_b = company("12345"), company("12345")
    assert pks(duplicates_of(demo_a)) == {demo_b.pk}

    # When the admin takes "unknown" off the list and adds 12345
    row = MatchSettings.objects.get(pk=match_settings.SETTINGS_PK)
    entries = (set(row.placeholders.splitlines()) - {"unknown"}) | {"12345"}
    value_settings.placeholders_update(text="\n".join(entries))

    # Then the keys were rebuilt: "unknown" matches now, 12345 no longer does; scoring reads the same list
    assert "unknown" in tax_keys() and "12345" not in tax_keys()
    assert pks(duplicates_of(zero_a)) == {zero_b.pk}
    assert pks(duplicates_of(demo_a)) == set()
    assert comparisons.is_placeholder("12345") and not comparisons.is_placeholder("unknown")


def test_placeholders_another_process_picks_up_the_change_before_it_writes_keys():
    # Given the list changed (12345 added)
    row = MatchSettings.objects.get(pk=match_settings.SETTINGS_PK)
    value_settings.placeholders_update(text=row.placeholders + "\n12345")

    # When a process that still holds the old list (as another worker would) saves a company
    normalize.use_placeholders(normalize.DEFAULT_PLACEHOLDERS)
    match_settings._applied_version = 0
    index.plan.forget_seen_kinds("company")
    company("12345")

    # Then it read the new version with the index's kinds and wrote no key for the placeholder
    assert "12345" not in tax_keys()
    assert normalize.is_placeholder("12345")


def test_placeholders_large_base_rebuilds_in_the_background_with_progress(
    monkeypatch, django_capture_on_commit_callbacks
):
    # Given a base larger than what is rebuilt during the request
    monkeypatch.setattr(index, "BACKFILL_INLINE_LIMIT", 1)
    a, b = company("12345"), company("12345")

    # When the list changes, the rebuild is queued, and a worker runs it
    with django_capture_on_commit_callbacks(execute=True):
        value_settings.placeholders_update(text="12345\nn/a")

    # Then it ran to the end with its figures, and the keys follow the new list
    # (entities with no records more than the limit are rebuilt at once)
    builds = IndexBuild.objects.filter(reason=IndexBuild.Reason.PLACEHOLDERS)
    assert set(builds.values_list("entity", flat=True)) == {"company"}
    build = builds.get()
    assert build.status == IndexBuild.Status.DONE and build.done == build.total == Company.objects.count()
    assert build.started_at and build.finished_at
    assert "12345" not in tax_keys()
    assert pks(duplicates_of(a)) == set()


def test_placeholders_admin_form(admin_client):
    url = reverse("admin:dedup_matchsettings_change", args=[match_settings.SETTINGS_PK])
    assert admin_client.get(reverse("admin:dedup_matchsettings_changelist")).url == url
    refused = admin_client.post(url, {"placeholders": "n/a\n*"})
    assert "every value a placeholder" in refused.content.decode()
    refused = admin_client.post(url, {"placeholders": "x" * 200})
    assert "too long" in refused.content.decode()
    saved = admin_client.post(url, {"placeholders": "N/A\n  Unknown  \n"})
    assert saved.status_code == 302
    assert MatchSettings.objects.get().placeholders == "n/a\nunknown"
    assert normalize.is_placeholder("UNKNOWN") and not normalize.is_placeholder("nan")


# --- Typed custom fields ---------------------------------------------------------------------------------------


def customer_with_custom(**fields):
    return factories.CustomerFactory(custom_fields=fields)


def test_custom_field_type_identifier_and_date_normalise_the_keys():
    only_rules("customer", ("Same passport", [("custom:passport", "normalized")]),
               ("Same birthday", [("custom:born", "normalized")]))
    first = customer_with_custom(passport="ab-123 45", born="09.04.1956")
    second = customer_with_custom(passport="AB12345", born="1956-04-09")
    other = customer_with_custom(passport="AB12346", born="31/31/2020")
    # As text the spellings differ
    assert pks(duplicates_of(first)) == set()

    # When the admin types them
    CustomFieldType.objects.create(entity="customer", key="passport", type="identifier")
    value_settings.custom_field_type_changed(entity="customer", key="passport")
    CustomFieldType.objects.create(entity="customer", key="born", type="date")
    value_settings.custom_field_type_changed(entity="customer", key="born")

    # Then the keys were rebuilt by the type, and a garbage date is missing
    found = duplicates_of(first)
    assert pks(found) == {second.pk}
    assert {rule.name for rule in found[0].rules} == {"Same passport", "Same birthday"}
    born = set(MatchKey.objects.filter(entity="customer", kind="custom:born").values_list("record_id", "key"))
    assert born == {(first.pk, "1956-04-09"), (second.pk, "1956-04-09")}
    assert other.pk not in pks(found)


def test_custom_field_type_in_the_scoring_schema():
    CustomFieldType.objects.create(entity="customer", key="born", type="date")
    value_settings.custom_field_type_changed(entity="customer", key="born")
    schema = {field.name: field.type for field in entity_schema(registry.get("customer"))}
    assert schema["custom:born"] == comparisons.DATE


def test_custom_field_type_admin_refuses_nonsense(admin_client):
    for colour in ("red", "green", "blue"):
        customer_with_custom(colour=colour)
    url = reverse("admin:dedup_customfieldtype_add")
    refused = admin_client.post(url, {"entity": "customer", "key": "colour", "type": "date"})
    assert refused.status_code == 200
    assert "3 of 3 recent values of colour are not a date" in refused.content.decode()
    refused = admin_client.post(url, {"entity": "customer", "key": "a:b", "type": "text"})
    assert "key of the custom field" in refused.content.decode()
    accepted = admin_client.post(url, {"entity": "customer", "key": "colour", "type": "text"})
    assert accepted.status_code == 302
    assert CustomFieldType.objects.filter(entity="customer", key="colour", type="text").exists()
    assert Customer.objects.count() == 3


def _stale_name_keys(*records):
    """The full-name keys as the release before wrote them: "Dyer" taken for "Dr." and dropped."""
    MatchKey.objects.filter(record_id__in=[record.pk for record in records], kind="full_name").update(key="ashlei")


def _name_keys(*records):
    return set(MatchKey.objects.filter(record_id__in=[record.pk for record in records], kind="full_name")
               .values_list("key", flat=True))


def test_update_rewrites_the_keys_an_older_release_wrote():
    # Given two Ashley Dyers keyed by the older reading, and a third saved by this one
    old = [customer_with("Ashley", "Dyer", phones=[f"+7 912 000-45-6{index}"]) for index in range(2)]
    _stale_name_keys(*old)
    new = customer_with("Ashley", "Dyer", phones=["+7 912 000-45-69"])
    assert _name_keys(*old) == {"ashlei"} and _name_keys(new) == {"ashlei dr"}

    # When the update's migration rewrites the keys (a small base: at once)
    value_settings.keys_rewrite_after_update()

    # Then every record carries the new reading, and nothing was queued
    assert _name_keys(*old, new) == {"ashlei dr"}
    assert not IndexBuild.objects.exists()


def test_update_rewrites_a_large_base_in_the_background_with_progress(monkeypatch, django_capture_on_commit_callbacks):
    # Given a base larger than what is rebuilt at once, keyed by the older reading
    monkeypatch.setattr(index, "BACKFILL_INLINE_LIMIT", 1)
    old = [customer_with("Ashley", "Dyer", phones=[f"+7 912 000-45-6{index}"]) for index in range(2)]
    _stale_name_keys(*old)

    # When the update's migration rewrites the keys, and a worker runs the rebuild
    with django_capture_on_commit_callbacks(execute=True):
        value_settings.keys_rewrite_after_update()

    # Then a rebuild of the customers' keys ran to the end under the update's reason (entities without records
    # have nothing to rewrite), and the keys follow the new reading
    builds = IndexBuild.objects.filter(reason=IndexBuild.Reason.UPDATE)
    assert set(builds.values_list("entity", flat=True)) == {"customer"}
    build = builds.get()
    assert build.status == IndexBuild.Status.DONE and build.done == build.total == Customer.objects.count()
    assert _name_keys(*old) == {"ashlei dr"}
