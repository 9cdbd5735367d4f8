"""Helpers for the duplicate engine's tests: rules as an admin would configure them, records with contacts."""
from __future__ import annotations

import importlib

from dedup import registry
from dedup.engine import index as dedup_index
from dedup.models import Condition, Rule
from tests import factories

_defaults = importlib.import_module("dedup.migrations.0002_default_rules")
_order_defaults = importlib.import_module("dedup.migrations.0013_order_rules_in_window")
# The default rules as the migrations leave them: 0012 replaced the orders' phone and email rules.
DEFAULT_RULES = [rule for rule in _defaults.DEFAULT_RULES if rule[0] != "order"] + [
    ("order", name, [(field, "normalized") for field in fields], "") for name, fields in _order_defaults.ORDER_RULES
]


def ensure_default_rules() -> None:
    """Make sure the default rules exist (a transactional test before this one may have flushed them) and that
    the index keeps the kinds they need."""
    for position, (entity, name, conditions, must_equal) in enumerate(DEFAULT_RULES):
        if Rule.objects.filter(entity=entity, name=name).exists():
            continue
        rule = Rule.objects.create(entity=entity, name=name, position=position, must_equal=must_equal)
        for index, (field, method) in enumerate(conditions):
            Condition.objects.create(rule=rule, field=field, method=method, position=index)
    for spec in registry.all_specs():
        dedup_index.indexed_kinds(spec)


def only_rules(entity: str, *specs) -> list[Rule]:
    """Replace the entity's rules by these: each spec is (name, [(field, method[, threshold])], options dict)."""
    Rule.objects.filter(entity=entity).delete()
    created = []
    for position, spec in enumerate(specs):
        name, conditions, *rest = spec
        options = rest[0] if rest else {}
        created.append(make_rule(entity, name, conditions, position=position, **options))
    return created


def make_rule(entity: str, name: str, conditions, *, position: int = 0, **options) -> Rule:
    rule = Rule.objects.create(entity=entity, name=name, position=position, **options)
    for index, condition in enumerate(conditions):
        field, method, *rest = condition
        extra = {}
        if rest:
            if isinstance(rest[0], dict):
                extra = rest[0]
            else:
                extra = {"threshold": rest[0]}
        Condition.objects.create(rule=rule, field=field, method=method, position=index, **extra)
    return rule


def customer_with(first="", last="", *, phones=(), emails=(), handles=(), company=None, **fields):
    customer = factories.CustomerFactory(first_name=first, last_name=last, company=company, **fields)
    for number in phones:
        factories.PhoneFactory(content_object=customer, number=number)
    for address in emails:
        factories.EmailFactory(content_object=customer, address=address)
    for username in handles:
        factories.MessengerFactory(content_object=customer, username=username)
    return customer


def lead_with(stage, *, first="", last="", phones=(), emails=(), company_name="", **fields):
    lead = factories.LeadFactory(
        stage=stage, pipeline=stage.pipeline, first_name=first, last_name=last, company_name=company_name, **fields
    )
    for number in phones:
        factories.PhoneFactory(content_object=lead, number=number)
    for address in emails:
        factories.EmailFactory(content_object=lead, address=address)
    return lead


def pks(matches) -> set[int]:
    return {match.record.pk for match in matches}
