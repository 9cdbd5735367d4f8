"""Which of a registered entity's fields the scored matcher compares, and as which comparison type.

Its own module, free of the index and the database, because the index's scoring keys (dedup.engine.score_keys)
read the schema too, and the whole-base read of ``entity`` uses the index's loader.
"""
from __future__ import annotations

from dedup import registry
from dedup.engine.scoring import comparisons as c
from dedup.engine.scoring import matcher

# The registry's normalisers (MatchField.kind) as scoring field types.
KIND_TYPES = {
    "phone": c.PHONE,
    "email": c.EMAIL,
    "person_name": c.PERSON_NAME,
    "company_name": c.COMPANY_NAME,
    "handle": c.IDENTIFIER,
    "website": c.TEXT,
    "text": c.TEXT,
    # Kinds of typed custom fields (dedup.models.CustomFieldType) and of fields registered so (an order's items).
    "date": c.DATE,
    "number": c.NUMBER,
    "identifier": c.IDENTIFIER,
    "address": c.ADDRESS,
}


def scored_fields(spec: registry.EntitySpec) -> list[registry.MatchField]:
    """Return the entity's registered fields and its custom fields the administrator gave a type."""
    typed = [spec.field(registry.CUSTOM_PREFIX + key) for key in sorted(registry.custom_kinds(spec.key))]
    return [*spec.fields, *typed] if spec.custom_fields_attr else list(spec.fields)


def entity_schema(spec: registry.EntitySpec) -> list[matcher.FieldSpec]:
    """Return the scoring schema of an entity: one field per registered field, a person's name once.

    When the entity registers a full name besides first and last name, only the full name is compared (the
    same evidence three times would count three times).
    """
    fields = [field for field in scored_fields(spec) if field.kind in KIND_TYPES]
    names = [field for field in fields if field.kind == "person_name"]
    if len(names) > 1 and any(field.name == "full_name" for field in names):
        fields = [field for field in fields if field.kind != "person_name" or field.name == "full_name"]
    return [matcher.FieldSpec(field.name, KIND_TYPES[field.kind], str(field.label)) for field in fields]
