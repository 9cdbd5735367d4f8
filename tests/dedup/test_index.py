"""The match-key index stays current through creates, updates, deletes, bulk writes and rule changes."""
import pytest
from django.contrib.contenttypes.models import ContentType

from crm.models import Customer, Email, Lead, Phone, Stage
from dedup import registry
from dedup.engine import index
from dedup.engine.not_duplicates import not_duplicate_mark
from dedup.models import IndexedKind, MatchKey, NotDuplicate
from dedup.signals import records_bulk_saved
from tests import factories
from tests.dedup.engine_helpers import customer_with, ensure_default_rules, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rules():
    ensure_default_rules()


def keys_of(record, kind=None):
    spec = registry.for_model(type(record))
    rows = MatchKey.objects.filter(entity=spec.key, record_id=record.pk)
    if kind:
        rows = rows.filter(kind=kind)
    return set(rows.values_list("kind", "key"))


def test_index_customer_create_writes_its_keys():
    # Given a new customer with a company, a phone, an email and a Telegram handle
    company = factories.CompanyFactory(name="ООО «Ромашка»")
    customer = customer_with(
        "Ivan", "Petrov", company=company, phones=["8 912 345-67-89"], emails=["Ivan@Example.com"], handles=["Ivan_P"]
    )

    # When the index is read
    # Then it holds each key the default rules need, normalised, and the scored matcher's blocking keys (the
    # name's sounds, a word of the name at the company: dedup/engine/score_keys.py)
    assert keys_of(customer) == {
        ("full_name", "ivan petrov"),
        ("company_name", "romashka"),
        ("phone", "+79123456789"),
        ("email", "ivan@example.com"),
        ("messenger", "telegram:ivan_p"),
        ("_score", "n:IFN PTRF"),
        ("_score", "nc:pIFN|p|romashka"),
        ("_score", "nc:pPTRF|i|romashka"),
        ("_score", "nc:g57|p|romashka"),
    }


def test_index_customer_update_rewrites_its_keys():
    # Given an indexed customer
    customer = customer_with("Ivan", "Petrov")

    # When the name is changed and saved
    customer.first_name, customer.last_name = "Maria", "Sidorova"
    customer.save()

    # Then the index has the new name only
    assert keys_of(customer, "full_name") == {("full_name", "maria sidorova")}


def test_index_save_with_update_fields_rewrites_only_the_kinds_read_from_them(django_assert_max_num_queries):
    # Given an indexed customer with a company, a phone and an email
    company = factories.CompanyFactory(name="Acme LLC")
    customer = customer_with("Ivan", "Petrov", company=company, phones=["+79123456789"], emails=["ivan@example.com"])
    before = keys_of(customer)

    # When only the name is saved
    customer.first_name = "Pavel"
    # the update, kinds, the name columns, the rewrite of the name keys (delete and insert; one statement on
    # PostgreSQL); no phones, emails or messengers are read
    with django_assert_max_num_queries(5):
        customer.save(update_fields=["first_name"])

    # Then only the name keys changed (the scoring keys read the name too), and the index is what a full rebuild
    # would make
    after = keys_of(customer)
    assert {row for row in after - before if row[0] != "_score"} == {("full_name", "pavel petrov")}
    assert {row for row in before - after if row[0] != "_score"} == {("full_name", "ivan petrov")}
    assert ("_score", "n:PFL PTRF") in after and ("_score", "nc:pPTRF|p|akme") in after
    index.rebuild(registry.get("customer"))
    assert keys_of(customer) == after


def test_index_save_of_a_field_no_rule_reads_writes_no_keys(django_assert_num_queries):
    # Given an indexed customer
    customer = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    before = keys_of(customer)

    # When a field no rule reads is saved alone
    customer.position = "CTO"
    with django_assert_num_queries(2):  # the update, and the kinds the index keeps
        customer.save(update_fields=["position"])

    # Then the keys are untouched
    assert keys_of(customer) == before


def test_index_save_of_the_archive_flag_with_update_fields_drops_every_key():
    # Given an indexed customer
    customer = customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["ivan@example.com"])

    # When it is archived through a save naming only that field
    customer.is_archived = True
    customer.save(update_fields=["is_archived"])

    # Then it has no keys at all
    assert keys_of(customer) == set()


def test_index_customer_delete_drops_keys_and_pairs():
    # Given two customers marked as not duplicates
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    second = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    not_duplicate_mark(entity="customer", pair=(first.pk, second.pk), user=None)
    pk = first.pk

    # When one is deleted
    first.delete()

    # Then its keys and its pairs are gone
    assert not MatchKey.objects.filter(entity="customer", record_id=pk).exists()
    assert not NotDuplicate.objects.exists()
    assert keys_of(second, "phone") == {("phone", "+79123456789")}


def test_index_phone_row_create_update_delete_follow_the_owner():
    # Given a customer without phones
    customer = customer_with("Ivan", "Petrov")
    assert keys_of(customer, "phone") == set()

    # When a phone row is added, then changed, then deleted
    phone = factories.PhoneFactory(content_object=customer, number="8 912 345-67-89")
    after_create = keys_of(customer, "phone")
    phone.number = "+1 (415) 555-0100"
    phone.save()
    after_update = keys_of(customer, "phone")
    phone.delete()
    after_delete = keys_of(customer, "phone")

    # Then the owner's keys follow each step
    assert after_create == {("phone", "+79123456789")}
    assert after_update == {("phone", "+14155550100")}
    assert after_delete == set()


def test_index_upkeep_once_keeps_a_records_keys_at_the_end_of_the_block():
    # Given a customer with a phone
    customer = customer_with("Ivan", "Petrov", phones=["8 912 345-67-89"])
    phone = customer.phones.get()
    # When, in one block, it is renamed, its phone changed, a phone added and an email deleted... the keys wait
    with index.upkeep_once():
        customer.first_name = "Oleg"
        customer.save()
        phone.number = "+1 (415) 555-0100"
        phone.save()
        factories.PhoneFactory(content_object=customer, number="8 903 111-22-33")
        held = keys_of(customer, "phone")
    # Then inside the block nothing was rewritten, and at its end the keys are the record's as it is
    assert held == {("phone", "+79123456789")}
    assert keys_of(customer, "phone") == {("phone", "+14155550100"), ("phone", "+79031112233")}
    kept = keys_of(customer)
    index.reindex(registry.get("customer"), [customer.pk])
    assert keys_of(customer) == kept


def test_index_upkeep_once_failing_block_holds_nothing_after_it():
    # Given a block that fails after a phone was added (its transaction rolled back)
    customer = customer_with("Ivan", "Petrov")
    with pytest.raises(RuntimeError), index.upkeep_once():
        factories.PhoneFactory(content_object=customer, number="8 912 345-67-89")
        raise RuntimeError("the save failed")
    assert not customer.phones.exists()
    # When a phone is added after it, then its keys are written at once, as outside any block
    factories.PhoneFactory(content_object=customer, number="8 903 111-22-33")
    assert keys_of(customer, "phone") == {("phone", "+79031112233")}


def test_index_email_row_of_another_entity_does_not_touch_customers():
    # Given a customer and a company with the same id and an email added to the company
    customer = customer_with("Ivan", "Petrov")
    company = factories.CompanyFactory(name="Acme LLC")
    Email.objects.create(
        content_type=ContentType.objects.get_for_model(company), object_id=customer.pk, address="office@acme.com"
    )

    # When the index is read
    # Then only the company whose content type the row names got the key
    assert keys_of(customer, "email") == set()
    if company.pk == customer.pk:
        assert keys_of(company, "email") == {("email", "office@acme.com")}


def test_index_company_rename_reindexes_its_customers():
    # Given two customers of one company
    company = factories.CompanyFactory(name="Acme LLC")
    first = customer_with("Ivan", "Petrov", company=company)
    second = customer_with("Maria", "Sidorova", company=company)

    # When the company is renamed
    company.name = "Globex Inc."
    company.save()

    # Then both customers' company keys follow
    assert keys_of(first, "company_name") == keys_of(second, "company_name") == {("company_name", "globex")}


def test_index_bulk_signal_reindexes_exactly_those_records():
    # Given customers and phones written in bulk, which sends no post_save
    people = Customer.objects.bulk_create([Customer(first_name=f"Name{i}", last_name="Bulk") for i in range(3)])
    content_type = ContentType.objects.get_for_model(Customer)
    Phone.objects.bulk_create(
        [Phone(content_type=content_type, object_id=person.pk, number=f"+7912000000{i}", e164=f"+7912000000{i}")
         for i, person in enumerate(people)]
    )
    assert not MatchKey.objects.filter(record_id__in=[p.pk for p in people]).exists()

    # When the import announces two of them
    records_bulk_saved.send(sender=Customer, model=Customer, pks=[people[0].pk, people[1].pk])

    # Then exactly those two are indexed
    assert keys_of(people[0], "phone") == {("phone", "+79120000000")}
    assert keys_of(people[1], "phone") == {("phone", "+79120000001")}
    assert keys_of(people[2]) == set()


def test_index_bulk_reindex_constant_queries(django_assert_max_num_queries):
    # Given 60 customers with phones and emails
    people = [customer_with(f"N{i}", "Person", phones=[f"+7912100{i:04d}"], emails=[f"p{i}@x.com"]) for i in range(60)]
    spec = registry.get("customer")

    # When 10 and then all 60 are reindexed in one batch
    # Then both take the same handful of queries (kinds, record load, one per prefetch, delete, insert)
    with django_assert_max_num_queries(8):
        index.reindex(spec, [p.pk for p in people[:10]])
    with django_assert_max_num_queries(8):
        written = index.reindex(spec, [p.pk for p in people])
    assert written == 60 * 4  # name, phone, email and the name's scoring key


def test_index_archived_record_loses_its_keys():
    # Given an indexed customer
    customer = customer_with("Ivan", "Petrov", phones=["+79123456789"])

    # When it is archived by a merge (a bulk update, announced by the merge engine)
    Customer.objects.filter(pk=customer.pk).update(is_archived=True)
    records_bulk_saved.send(sender=Customer, model=Customer, pks=[customer.pk])

    # Then it has no keys: it can never be a match
    assert keys_of(customer) == set()


def test_index_fuzzy_rule_backfills_blocking_keys_and_drops_them_with_the_rule():
    # Given an indexed customer and no fuzzy rule
    customer = customer_with("Ivan", "Petrov")
    assert keys_of(customer, "full_name:block") == set()

    # When a rule with a fuzzy name condition is added
    rule = make_rule("customer", "Similar name", [("full_name", "fuzzy", 90)])

    # Then the existing customer's blocking keys are written
    assert keys_of(customer, "full_name:block")
    assert IndexedKind.objects.filter(entity="customer", kind="full_name:block").exists()

    # And when the rule is deleted they are dropped
    rule.delete()
    assert keys_of(customer, "full_name:block") == set()


def test_index_big_base_backfills_in_a_task_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    # Given a base larger than what a request may backfill (the limit lowered to 1 record)
    monkeypatch.setattr(index.services, "BACKFILL_INLINE_LIMIT", 1)
    first, second = customer_with("Ivan", "Petrov"), customer_with("Maria", "Sidorova")

    # When a fuzzy rule is added and its transaction commits
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        make_rule("customer", "Similar name", [("full_name", "fuzzy", 90)])
    pending = keys_of(first, "full_name:block")
    third = customer_with("Oleg", "Smirnov")
    for callback in callbacks:
        callback()

    # Then nothing waited in the request, a record saved meanwhile got the new keys at once,
    # and the task (eager here) filled in the records already there
    assert pending == set()
    assert keys_of(third, "full_name:block")
    assert keys_of(first, "full_name:block") and keys_of(second, "full_name:block")


def test_index_stage_meaning_change_reindexes_its_leads(lead_pipeline):
    # Given a lead in an open stage
    stage = lead_pipeline.stages.get(name="In progress")
    lead = factories.LeadFactory(stage=stage, pipeline=lead_pipeline)
    assert MatchKey.objects.get(entity="lead", record_id=lead.pk, kind="_stage").value == "open"

    # When the admin makes that stage a won stage
    stage.semantic = Stage.Semantic.WON
    stage.save()

    # Then the lead's scope key says closed
    assert MatchKey.objects.get(entity="lead", record_id=lead.pk, kind="_stage").value == "closed"
    assert Lead.objects.filter(pk=lead.pk).exists()


def test_rebuild_restores_a_wiped_index():
    # Given indexed customers whose index was wiped
    first = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    second = customer_with("Maria", "Sidorova", emails=["maria@example.com"])
    before = keys_of(first) | keys_of(second)
    MatchKey.objects.all().delete()

    # When the index is rebuilt
    written = index.rebuild(registry.get("customer"))

    # Then every key is back
    assert keys_of(first) | keys_of(second) == before
    assert written == len(before)


def test_index_phone_save_rewrites_only_the_owners_phone_keys(django_assert_max_num_queries):
    # Given an indexed customer with a company, a phone and an email
    company = factories.CompanyFactory(name="Acme LLC")
    customer = customer_with("Ivan", "Petrov", company=company, phones=["+79123456789"], emails=["ivan@example.com"])
    before = keys_of(customer)

    # When the phone is changed
    phone = customer.phones.get()
    phone.number = "+1 415 555 0100"
    # the update; the owner with its phones (one query), the phone keys rewritten (PostgreSQL: one statement checking
    # the kinds; SQLite: the kinds read, a DELETE and an INSERT)
    with django_assert_max_num_queries({"postgresql": 3, "sqlite": 5}[_vendor()]):
        phone.save()

    # Then only the phone key changed, and the index is what a full rebuild would make
    after = keys_of(customer)
    assert after - before == {("phone", "+14155550100")}
    assert before - after == {("phone", "+79123456789")}
    index.rebuild(registry.get("customer"))
    assert keys_of(customer) == after


# The queries of a whole save once this process has read the kinds and a refresh of the figures waits on its queue:
# the save's UPDATE; the index upkeep (PostgreSQL: the record with its company and contact rows in one query, the
# keys in one statement that checks the kinds; SQLite: the kinds, that read, a DELETE and an INSERT); after the
# commit, the record marked as waiting for its figures and the check that a refresh message waits
# (dedup.engine.counts). bench/bench_save.py times them at 1,000,000 customers.
SAVE_QUERIES = {"postgresql": 5, "sqlite": 7}


def _vendor():
    from django.db import connection

    return connection.vendor


def _settled(django_capture_on_commit_callbacks, make):
    """Make records as a committed request would (their figures' refresh run), then leave a refresh message waiting,
    as it does under load: a save then only marks its record."""
    from django.utils import timezone

    from dedup.engine.figures_messages import refresh_queue
    from dedup.models import FiguresRefreshQueued

    with django_capture_on_commit_callbacks(execute=True):
        made = make()
    FiguresRefreshQueued.objects.create(entity="customer", queue=refresh_queue(bulk=False), sent_at=timezone.now())
    return made


def test_index_customer_save_takes_pinned_queries_and_keeps_every_key(
    django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    # Given a customer with a company, two phones, an email and a Telegram handle, saved once in this process
    from dedup.models import FiguresPending

    company = factories.CompanyFactory(name="ООО «Ромашка»")
    customer = _settled(django_capture_on_commit_callbacks, lambda: customer_with(
        "Ivan", "Petrov", company=company, phones=["8 912 345-67-89", "+1 415 555 0100"],
        emails=["Ivan@Example.com"], handles=["Ivan_P"],
    ))
    customer.save()
    before = keys_of(customer)

    # When the customer's name is changed and saved, the transaction committed
    customer.first_name = "Pavel"
    with django_assert_max_num_queries(SAVE_QUERIES[_vendor()]), django_capture_on_commit_callbacks(execute=True):
        customer.save()

    # Then the name's keys changed, the phones', email's, handle's and company's stayed, the index is what a
    # rebuild makes, and the customer waits for its figures
    after = keys_of(customer)
    assert ("full_name", "pavel petrov") in after and ("full_name", "ivan petrov") in before - after
    kept = {row for row in before if row[0] in {"phone", "email", "messenger", "company_name"}}
    assert {kind for kind, _key in kept} >= {"phone", "email", "messenger"} and kept <= after
    assert {key for kind, key in after if kind == "phone"} == {"+79123456789", "+14155550100"}
    index.rebuild(registry.get("customer"))
    assert keys_of(customer) == after
    assert FiguresPending.objects.filter(entity="customer", record_id=customer.pk).exists()


def test_index_phone_save_takes_pinned_queries(django_assert_max_num_queries, django_capture_on_commit_callbacks):
    # Given a customer with a phone and an email, saved once in this process
    from dedup.models import FiguresPending

    customer = _settled(
        django_capture_on_commit_callbacks,
        lambda: customer_with("Ivan", "Petrov", phones=["+79123456789"], emails=["ivan@example.com"]),
    )
    customer.save()
    before = keys_of(customer)

    # When the phone's number is changed and saved, the transaction committed
    phone = customer.phones.get()
    phone.number = "+1 415 555 0100"
    with django_assert_max_num_queries(SAVE_QUERIES[_vendor()]), django_capture_on_commit_callbacks(execute=True):
        phone.save()

    # Then only the phone key changed, the index is what a rebuild makes, and the owner waits for its figures
    after = keys_of(customer)
    assert after - before == {("phone", "+14155550100")} and before - after == {("phone", "+79123456789")}
    index.rebuild(registry.get("customer"))
    assert keys_of(customer) == after
    assert FiguresPending.objects.filter(entity="customer", record_id=customer.pk).exists()


def test_index_phone_save_of_an_archived_owner_writes_no_keys(django_assert_max_num_queries):
    # Given an archived customer (no keys) with a phone
    customer = customer_with("Ivan", "Petrov", phones=["+79123456789"])
    Customer.objects.filter(pk=customer.pk).update(is_archived=True)
    index.reindex(registry.get("customer"), [customer.pk])
    assert keys_of(customer) == set()

    # When the phone is changed
    phone = customer.phones.get()
    phone.number = "+1 415 555 0100"
    phone.save()

    # Then the archived owner still has no keys
    assert keys_of(customer) == set()


def test_index_new_records_from_instances_match_a_rebuild():
    # Given a lead created in bulk with its contacts, as the intake creates one, and announced with the
    # instances (the signal's records argument) instead of ids to read back
    lead = factories.LeadFactory(first_name="Anna", last_name="Smirnova", company_name="Globex Inc.")
    MatchKey.objects.filter(entity="lead", record_id=lead.pk).delete()
    phone = factories.PhoneFactory(content_object=lead, number="8 912 000-11-22")
    MatchKey.objects.filter(entity="lead", record_id=lead.pk).delete()

    # When the index hears of it, with the contacts just made (the signal's related argument)
    records_bulk_saved.send(
        sender=Lead, model=Lead, pks=[lead.pk], created=True, records=[lead],
        related={lead.pk: {"phones": [phone], "emails": [], "messengers": []}},
    )

    # Then its keys are those a rebuild computes from the database
    written = keys_of(lead)
    assert ("phone", "+79120001122") in written and ("company_name", "globex") in written
    index.rebuild(registry.get("lead"))
    assert keys_of(lead) == written


def test_index_lead_batch_reads_a_constant_number_of_queries(lead_pipeline, django_assert_max_num_queries):
    # Given leads in several stages, with phones (the stage's meaning and the phones are read for their keys)
    stages = list(lead_pipeline.stages.all())
    leads = []
    for i in range(24):
        lead = factories.LeadFactory(stage=stages[i % len(stages)], pipeline=lead_pipeline, first_name=f"L{i}")
        factories.PhoneFactory(content_object=lead, number=f"+7912300{i:04d}")
        leads.append(lead)
    spec = registry.get("lead")

    # When 4 and then all 24 are reindexed in one batch
    # Then both take the same handful of queries: no stage or field is read record by record
    with django_assert_max_num_queries(8):
        index.reindex(spec, [lead.pk for lead in leads[:4]])
    with django_assert_max_num_queries(8):
        index.reindex(spec, [lead.pk for lead in leads])
    closed = {lead.pk for lead in leads if lead.stage.semantic != Stage.Semantic.OPEN}
    values = dict(MatchKey.objects.filter(entity="lead", kind="_stage").values_list("record_id", "value"))
    assert {pk for pk, value in values.items() if value == "closed"} == closed


def test_index_kind_added_by_another_process_is_written_by_the_next_save():
    # given a process that has written keys (and so knows the customer's kinds)
    customer_with("Ivan", "Petrov", phones=["+79123456789"])
    # when another process adds a kind (its rule change stores it; this process hears nothing)
    IndexedKind.objects.bulk_create([IndexedKind(entity="customer", kind="first_name")])
    # then the next new record and the next save here write that kind's keys too
    other = customer_with("Olga", "Sidorova", phones=["+79123450000"])
    assert keys_of(other, "first_name") == {("first_name", "olga")}
    other.first_name = "Pavel"
    other.save(update_fields=["first_name"])
    assert keys_of(other, "first_name") == {("first_name", "pavel")}


def test_index_kind_dropped_by_another_process_is_not_written_again():
    # given a process that has written phone keys
    customer_with("Ivan", "Petrov", phones=["+79123456789"])
    # when another process drops the phone kind (no rule reads phones any more) and its keys
    IndexedKind.objects.filter(entity="customer", kind="phone").delete()
    MatchKey.objects.filter(entity="customer", kind="phone").delete()
    # then records created or saved here afterwards get no phone keys
    other = customer_with("Olga", "Sidorova", phones=["+79123450000"])
    assert keys_of(other, "phone") == set()
    other.last_name = "Ivanova"
    other.save()
    assert keys_of(other, "phone") == set()
    assert keys_of(other, "full_name") == {("full_name", "ivanova olga")}


@pytest.mark.skipif(
    __import__("django.db").db.connection.vendor != "postgresql",
    reason="the checked write is PostgreSQL's; SQLite reads the kinds before writing",
)
def test_index_new_record_keys_cost_one_query_once_the_kinds_are_known(django_assert_num_queries):
    # given a process that has written keys
    customer_with("Ivan", "Petrov", phones=["+79123456789"])
    [customer] = Customer.objects.bulk_create([Customer(first_name="Olga", last_name="Sidorova")])  # no signal
    registry.attach_related(customer, {"phones": [], "emails": [], "messengers": []})
    # when a new record's keys are written from the instance (with its contacts, none, attached)
    with django_assert_num_queries(1):  # the check of the kinds and the insert, in one statement
        index.index_new_records(registry.get("customer"), [customer])
    # then they are there
    assert keys_of(customer, "full_name") == {("full_name", "olga sidorova")}
