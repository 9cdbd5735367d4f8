"""Orders: replace the default "same phone" and "same email" rules, which grouped a customer's repeat purchases
as duplicates, with RetailCRM's notion: the same customer or contact with the same items (or the same total),
placed within the window (the entity's default, 24 hours, while a rule's own window is empty).

Only untouched default rules are replaced (their default name and single condition); a rule an admin edited
stays as it is. Reversing puts the two old rules back. A migration sends no signals, so the orders' index plan
and stored duplicate figures are dropped here: the next save syncs the plan with the new rules (backfilling, in
the background on a large base) and `manage.py dedup_rebuild_index order` (or the next daily scan) stores the
figures afresh.
"""
from django.db import migrations

OLD_ORDER_RULES = [("Same phone", "phone"), ("Same email", "email")]
# (rule name, [fields compared normalised]). Names stay English here; dedup.messages.rule_name shows them in the
# reader's language while they are untouched.
ORDER_RULES = [
    ("Same customer and items", ["customer", "items"]),
    ("Same customer and total", ["customer", "total"]),
    ("Same phone and items", ["phone", "items"]),
    ("Same phone and total", ["phone", "total"]),
    ("Same email and items", ["email", "items"]),
    ("Same email and total", ["email", "total"]),
]


def replace_order_rules(apps, schema_editor):
    Rule = apps.get_model("dedup", "Rule")
    Condition = apps.get_model("dedup", "Condition")
    position = 0
    for name, field in OLD_ORDER_RULES:
        for rule in Rule.objects.filter(entity="order", name=name):
            conditions = list(Condition.objects.filter(rule=rule).values_list("field", "method"))
            if conditions == [(field, "normalized")] and not rule.must_equal:
                position = max(position, rule.position)
                rule.delete()
    for offset, (name, fields) in enumerate(ORDER_RULES):
        if Rule.objects.filter(entity="order", name=name).exists():
            continue
        rule = Rule.objects.create(entity="order", name=name, position=position + offset)
        Condition.objects.bulk_create(
            Condition(rule=rule, field=field, method="normalized", position=index) for index, field in enumerate(fields)
        )
    _forget_order_index(apps)


def _forget_order_index(apps):
    apps.get_model("dedup", "IndexedKind").objects.filter(entity="order").delete()
    apps.get_model("dedup", "DuplicatePair").objects.filter(entity="order").delete()


def restore_order_rules(apps, schema_editor):
    Rule = apps.get_model("dedup", "Rule")
    Condition = apps.get_model("dedup", "Condition")
    Rule.objects.filter(entity="order", name__in=[name for name, _fields in ORDER_RULES]).delete()
    for position, (name, field) in enumerate(OLD_ORDER_RULES):
        if not Rule.objects.filter(entity="order", name=name).exists():
            rule = Rule.objects.create(entity="order", name=name, position=position)
            Condition.objects.create(rule=rule, field=field, method="normalized", position=0)
    _forget_order_index(apps)


class Migration(migrations.Migration):
    dependencies = [("dedup", "0012_rule_time_window")]

    operations = [migrations.RunPython(replace_order_rules, restore_order_rules)]
