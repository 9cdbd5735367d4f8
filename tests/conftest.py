"""Shared fixtures."""
import pytest
from django.conf import settings
from django.utils import translation

from tests import factories
from tests.workers import tasks_through_the_broker, worker_threads


@pytest.fixture(autouse=True)
def _default_language():
    """Start every test in the site's language: a request with Accept-Language: ru leaves Russian active in
    the thread, and a merge job created afterwards would take it as its requester's language."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def celery_worker(transactional_db):
    """A real worker thread on the configured broker, consuming every queue; tasks are not eager while it runs."""
    with tasks_through_the_broker(), worker_threads() as worker:
        yield worker


@pytest.fixture
def manager(db):
    return factories.UserFactory(username="manager")


@pytest.fixture
def customer(db):
    return factories.CustomerFactory(first_name="Ivan", last_name="Petrov")


@pytest.fixture
def deal_pipeline(db):
    """A deal pipeline with an open, a won and a lost stage."""
    from crm.models import Pipeline

    pipeline = factories.PipelineFactory(name="Sales", kind=Pipeline.Kind.DEAL)
    for order, (name, semantic) in enumerate([("Open", "open"), ("Won", "won"), ("Lost", "lost")]):
        factories.StageFactory(pipeline=pipeline, name=name, semantic=semantic, sort_order=order)
    return pipeline


@pytest.fixture
def lead_pipeline(db):
    """A lead pipeline with two open stages, a won and a lost one (the intake's default target)."""
    from crm.models import Pipeline, Stage

    pipeline = factories.PipelineFactory(name="Incoming", kind=Pipeline.Kind.LEAD)
    for order, (name, semantic) in enumerate(
        [("New", Stage.Semantic.OPEN), ("In progress", Stage.Semantic.OPEN), ("Won", Stage.Semantic.WON),
         ("Lost", Stage.Semantic.LOST)]
    ):
        factories.StageFactory(pipeline=pipeline, name=name, semantic=semantic, sort_order=order)
    return pipeline


@pytest.fixture
def intake_token(lead_pipeline, manager):
    return factories.IntegrationTokenFactory(name="Website form", pipeline=lead_pipeline, owner=manager)


@pytest.fixture
def intake_client(intake_token):
    """A DRF test client authenticated as the website form integration."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {intake_token.raw}")
    return client


@pytest.fixture
def duplicate_rules(db):
    """The default lead and deal rules the intake relies on.

    A data migration creates them, but a test database flushed by a transactional test has none.
    """
    from dedup.models import Condition, Rule

    wanted = [
        ("lead", "Same phone", [("phone", "normalized")], ""),
        ("lead", "Same email", [("email", "normalized")], ""),
        ("lead", "Same messenger", [("messenger", "normalized")], ""),
        ("deal", "Same customer and service", [("customer", "normalized")], "service"),
        ("company", "Same name", [("company_name", "normalized")], ""),
    ]
    rules = []
    for entity, name, conditions, must_equal in wanted:
        rule, created = Rule.objects.get_or_create(entity=entity, name=name, defaults={"must_equal": must_equal})
        if created:
            for position, (field, method) in enumerate(conditions):
                # One by one, not in bulk: each save tells the match-key index which keys to keep.
                Condition.objects.create(rule=rule, field=field, method=method, position=position)
        rules.append(rule)
    return rules


@pytest.fixture
def rules_and_fresh_scorer(db):
    """The default duplicate rules, and no learned model left in this process's cache before or after."""
    from dedup.engine.scoring.learned import learned_cache_clear
    from tests.dedup.engine_helpers import ensure_default_rules

    ensure_default_rules()
    learned_cache_clear()
    yield
    learned_cache_clear()
