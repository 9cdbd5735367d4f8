"""The default duplicate rules: phone; email; full name + company name; messenger handle (and their kin for
companies, orders and deals). Leads and deals take part in their open stages only (stage_ids empty)."""
from django.db import migrations

# (entity, rule name, [(field, method)], must_equal). Names stay English here and are plain data an admin can
# rename; while a rule keeps its default name it is shown in the reader's language (dedup.messages.rule_name).
DEFAULT_RULES = [
    ("customer", "Same phone", [("phone", "normalized")], ""),
    ("customer", "Same email", [("email", "normalized")], ""),
    ("customer", "Same full name and company", [("full_name", "normalized"), ("company_name", "normalized")], ""),
    ("customer", "Same messenger", [("messenger", "normalized")], ""),
    ("lead", "Same phone", [("phone", "normalized")], ""),
    ("lead", "Same email", [("email", "normalized")], ""),
    ("lead", "Same full name and company", [("full_name", "normalized"), ("company_name", "normalized")], ""),
    ("lead", "Same messenger", [("messenger", "normalized")], ""),
    ("company", "Same name", [("company_name", "normalized")], ""),
    ("company", "Same tax ID", [("tax_id", "normalized")], ""),
    ("company", "Same phone", [("phone", "normalized")], ""),
    ("company", "Same email", [("email", "normalized")], ""),
    ("order", "Same phone", [("phone", "normalized")], ""),
    ("order", "Same email", [("email", "normalized")], ""),
    # Deals of one customer are the same deal only for the same service (different interests stay apart).
    ("deal", "Same customer and service", [("customer", "normalized")], "service"),
]


def create_default_rules(apps, schema_editor):
    Rule = apps.get_model("dedup", "Rule")
    Condition = apps.get_model("dedup", "Condition")
    for position, (entity, name, conditions, must_equal) in enumerate(DEFAULT_RULES):
        rule = Rule.objects.create(entity=entity, name=name, position=position, must_equal=must_equal)
        Condition.objects.bulk_create(
            Condition(rule=rule, field=field, method=method, position=index)
            for index, (field, method) in enumerate(conditions)
        )


def delete_default_rules(apps, schema_editor):
    Rule = apps.get_model("dedup", "Rule")
    for entity, name, _conditions, _must_equal in DEFAULT_RULES:
        Rule.objects.filter(entity=entity, name=name).delete()


class Migration(migrations.Migration):
    dependencies = [("dedup", "0001_rules")]

    operations = [migrations.RunPython(create_default_rules, delete_default_rules)]
