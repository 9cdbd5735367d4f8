"""The browser tests' database: each one marked `serialized_rollback` starts from what the migrations wrote, even
after another transactional test flushed it (tests/browser/conftest.py, _migrated_data_restored)."""
import pytest
from django.contrib.auth.models import Permission
from django_celery_beat.models import PeriodicTask

from dedup.models import Rule
from tests import factories

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True)
def test_database_a_transactional_test_leaves_it_flushed():
    # Given a transactional test that writes a customer: its database is flushed when it ends
    customer = factories.CustomerFactory(first_name="Ivan", last_name="Petrov")
    assert customer.pk


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_database_a_browser_test_after_it_starts_from_the_migrations_data(chromium_browser):
    # Given the browser open (Playwright's loop running in this thread) after the flush of the test before,
    # then the database holds what the migrations wrote and nothing the test before wrote
    assert Rule.objects.filter(entity="customer").exists() and Rule.objects.filter(entity="order").exists()
    assert PeriodicTask.objects.filter(task="dedup.jobs_sweep").exists()
    assert Permission.objects.filter(content_type__app_label="dedup", codename="merge_records").exists()
    assert not factories.CustomerFactory._meta.model.objects.exists()
    # and records made by the test work with the restored content types
    customer = factories.CustomerFactory()
    factories.PhoneFactory(content_object=customer, number="+7 912 345-67-89")
