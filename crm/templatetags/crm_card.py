"""Template tags of the CRM's card: its fieldsets and tabular inlines by crm/admin/card_html.py's functions."""
from django import template
from django.utils.safestring import mark_safe

from crm.admin.card_html import FIELDSET_TEMPLATE, TABULAR_TEMPLATE, fieldset_html, is_stock, tabular_html

register = template.Library()


def _render_template(context, name: str, **values) -> str:
    """What `{% include name with values %}` renders."""
    included = context.template.engine.get_template(name)
    with context.push(**values):
        return included.render(context)


@register.simple_tag(takes_context=True)
def card_fieldset(context, fieldset, index):
    """`{% include "admin/includes/fieldset.html" with heading_level=2 prefix="fieldset" id_prefix=0
    id_suffix=index %}`, as the change form has it."""
    values = {"heading_level": 2, "prefix": "fieldset", "id_prefix": 0, "id_suffix": index}
    if is_stock(context.template.engine, FIELDSET_TEMPLATE):
        return mark_safe(fieldset_html(fieldset, **values))
    return _render_template(context, FIELDSET_TEMPLATE, fieldset=fieldset, **values)


@register.simple_tag(takes_context=True)
def card_inline(context, inline_admin_formset, last):
    """`{% include inline_admin_formset.opts.template %}` inside the change form's loop over the inlines."""
    name = inline_admin_formset.opts.template
    if name == TABULAR_TEMPLATE and is_stock(context.template.engine, TABULAR_TEMPLATE):
        request = getattr(context, "request", None)
        return mark_safe(tabular_html(inline_admin_formset, last_related=last, request=request))
    return _render_template(context, name)
