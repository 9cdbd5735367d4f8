"""The card's fieldsets and tabular inlines rendered by functions that give the admin templates' HTML.

Why: a card's fieldsets (`admin/includes/fieldset.html`) and tabular inlines (`admin/edit_inline/tabular.html`)
were half of its template time, a third of its CPU (bench/README.md, "The card's templates"): the template engine
resolves each `field.field.name` through four lookups, pushes a context per loop, and a card has a hundred
fields and cells. The functions below do what those templates do, in the same order and with the same escaping
(`config.renderers.text_value` is `{{ value }}`), with whitespace collapsed. Like the form renderer's functions
(config/renderers.py) they are used only while the template the engine would load under that name is Django
5.2's own (its SHA-256 below, checked once per engine): an upgrade or an override of either template renders
the template. tests/crm/test_card_html.py renders cards both ways and compares them.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

from django.contrib.admin.templatetags.admin_modify import cell_count
from django.contrib.admin.templatetags.admin_urls import admin_urlname
from django.contrib.admin.utils import quote
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import conditional_escape, strip_tags
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext

from config.renderers import text_value

FIELDSET_TEMPLATE = "admin/includes/fieldset.html"
TABULAR_TEMPLATE = "admin/edit_inline/tabular.html"
# SHA-256 of the templates' sources in Django 5.2 (django/contrib/admin/templates/admin/...).
STOCK_SOURCES = {
    FIELDSET_TEMPLATE: "2d7ffc5f076e04ca370e640db8668ad2da0b328567b0c74c89a64e7c6fb353a9",
    TABULAR_TEMPLATE: "ef1b0d9b50be1e24e18f44c96571af7070202de3816eeb9746318c8aa5d6f1f7",
}


@lru_cache(maxsize=16)
def is_stock(engine, name: str) -> bool:
    """Whether the template `name`, as `engine` loads it, is Django's own (the engine's loaders are cached)."""
    source = engine.get_template(name).source
    return hashlib.sha256(source.encode()).hexdigest() == STOCK_SOURCES[name]


def _part(field, name: str):
    """`field.field.<name>` of the templates: a bound field's attribute, or a read-only field's dict entry."""
    inner = field.field
    if isinstance(inner, dict):
        return inner.get(name, "")
    return getattr(inner, name, "")


def _single_line_classes(line) -> str:
    return "".join(f" field-{text_value(_part(field, 'name'))}" for field in line if _part(field, "name"))


def _fieldset_field(field, single: bool) -> str:
    parts = ["<div>\n"]
    if not single and not field.is_readonly:
        parts.append(text_value(field.errors()))
    classes = "flex-container"
    if not single:
        classes += " fieldBox"
        if _part(field, "name"):
            classes += f" field-{text_value(_part(field, 'name'))}"
        if not field.is_readonly and field.errors():
            classes += " errors"
        if _part(field, "is_hidden"):
            classes += " hidden"
    if field.is_checkbox:
        classes += " checkbox-row"
    parts.append(f'\n<div class="{classes}">\n')
    if field.is_checkbox:
        parts.append(f"{text_value(field.field)}{text_value(field.label_tag())}\n")
    else:
        parts.append(f"{text_value(field.label_tag())}\n")
        if field.is_readonly:
            parts.append(f'<div class="readonly">{text_value(field.contents())}</div>\n')
        else:
            parts.append(f"{text_value(field.field)}\n")
    parts.append("</div>\n")
    help_text = _part(field, "help_text")
    if help_text:
        hidden = " hidden" if _part(field, "is_hidden") else ""
        label_id = _part(field, "id_for_label")
        described = f' id="{text_value(label_id)}_helptext"' if label_id else ""
        parts.append(f'<div class="help{hidden}"{described}>\n<div>{mark_safe(str(help_text))}</div>\n</div>\n')
    parts.append("</div>\n")
    return "".join(parts)


def fieldset_html(fieldset, *, heading_level, prefix, id_prefix, id_suffix) -> str:
    """`admin/includes/fieldset.html` with these include parameters."""
    heading_id = f"{text_value(prefix)}-{text_value(id_prefix)}-{text_value(id_suffix)}-heading"
    parts = [f'<fieldset class="module aligned {text_value(fieldset.classes)}"']
    if fieldset.name:
        parts.append(f' aria-labelledby="{heading_id}"')
    parts.append(">\n")
    level = text_value(heading_level or 2)
    if fieldset.name:
        if fieldset.is_collapsible:
            parts.append("<details><summary>")
        parts.append(
            f'\n<h{level} id="{heading_id}" class="fieldset-heading">{text_value(fieldset.name)}</h{level}>\n'
        )
        if fieldset.is_collapsible:
            parts.append("</summary>")
        parts.append("\n")
    if fieldset.description:
        parts.append(f'\n<div class="description">{mark_safe(str(fieldset.description))}</div>\n')
    for line in fieldset:
        single = len(line.fields) == 1
        errors = line.errors() if single else ""
        classes = "form-row"
        if single and errors:
            classes += " errors"
        if not line.has_visible_field:
            classes += " hidden"
        parts.append(f'\n<div class="{classes}{_single_line_classes(line)}">\n')
        parts.append(text_value(errors) if single else '<div class="flex-container form-multiline">')
        parts.append("\n")
        parts.extend(_fieldset_field(field, single) for field in line)
        if not single:
            parts.append("</div>")
        parts.append("\n</div>\n")
    if fieldset.name and fieldset.is_collapsible:
        parts.append("</details>")
    parts.append("\n</fieldset>\n")
    return "".join(parts)


def _current_app(request):
    """The `{% url %}` tag's current app."""
    current_app = getattr(request, "current_app", None)
    if current_app is None and getattr(request, "resolver_match", None) is not None:
        current_app = request.resolver_match.namespace
    return current_app


def _header(inline_admin_formset) -> str:
    formset = inline_admin_formset.formset
    cells = ['<th class="original"></th>\n']
    for field in inline_admin_formset.fields():
        widget = field["widget"]
        hidden = widget["is_hidden"] if isinstance(widget, dict) else widget.is_hidden
        classes = f"column-{text_value(field['name'])}"
        if field["required"]:
            classes += " required"
        if hidden:
            classes += " hidden"
        help_icon = ""
        if field["help_text"]:
            tip = text_value(strip_tags(field["help_text"]))
            help_icon = (
                f'<img src="{conditional_escape(static("admin/img/icon-unknown.svg"))}" class="help help-tooltip" '
                f'width="10" height="10" alt="({tip})" title="{tip}">\n'
            )
        cells.append(f'<th class="{classes}">{text_value(capfirst(field["label"]))}\n{help_icon}</th>\n')
    delete_label = ""
    if formset.can_delete and inline_admin_formset.has_delete_permission:
        delete_label = text_value(gettext("Delete?"))
    cells.append(f"<th>{delete_label}</th>\n")
    return f"<thead><tr>\n{''.join(cells)}</tr></thead>\n"


def _original_cell(inline_admin_formset, inline_admin_form, current_app) -> str:
    parts = ['<td class="original">\n']
    original = inline_admin_form.original
    if original or inline_admin_form.show_url:
        parts.append("<p>\n")
        if original:
            parts.append(f"{text_value(original)}\n")
            model_admin = inline_admin_form.model_admin
            if model_admin.show_change_link and model_admin.has_registered_model:
                url = reverse(admin_urlname(model_admin.opts, "change"), args=[quote(original.pk)],
                              current_app=current_app)
                if inline_admin_formset.has_change_permission:
                    link_class, label = "inlinechangelink", gettext("Change")
                else:
                    link_class, label = "inlineviewlink", gettext("View")
                parts.append(f'<a href="{text_value(url)}" class="{link_class}">{text_value(label)}</a>\n')
        if inline_admin_form.show_url:
            parts.append(
                f'<a href="{text_value(inline_admin_form.absolute_url)}">{text_value(gettext("View on site"))}</a>\n'
            )
        parts.append("</p>")
    parts.append("\n")
    if inline_admin_form.needs_explicit_pk_field():
        parts.append(f"{text_value(inline_admin_form.pk_field().field)}\n")
    fk_field = inline_admin_form.fk_field()
    if fk_field:
        parts.append(f"{text_value(fk_field.field)}\n")
    parts.append("</td>\n")
    return "".join(parts)


def _row(inline_admin_formset, inline_admin_form, *, last: bool, index: int, current_app) -> str:
    formset = inline_admin_formset.formset
    parts = []
    non_field_errors = inline_admin_form.form.non_field_errors()
    if non_field_errors:
        parts.append(
            f'<tr class="row-form-errors"><td colspan="{cell_count(inline_admin_form)}">'
            f"{text_value(non_field_errors)}</td></tr>\n"
        )
    template_row = last and inline_admin_formset.has_add_permission
    has_original = "has_original" if inline_admin_form.original or inline_admin_form.show_url else ""
    empty = " empty-form" if template_row else ""
    row_id = f"{text_value(formset.prefix)}-{'empty' if template_row else index}"
    parts.append(f'<tr class="form-row {has_original}{empty}"\nid="{row_id}">\n')
    parts.append(_original_cell(inline_admin_formset, inline_admin_form, current_app))
    for fieldset in inline_admin_form:
        for line in fieldset:
            for field in line:
                name = _part(field, "name")
                classes = f"field-{text_value(name)}" if name else ""
                if _part(field, "is_hidden"):
                    classes += " hidden"
                if field.is_readonly:
                    cell = f"<p>{text_value(field.contents())}</p>"
                else:
                    cell = f"{text_value(field.field.errors.as_ul())}\n{text_value(field.field)}"
                parts.append(f'<td class="{classes}">\n{cell}\n</td>\n')
    delete = ""
    if formset.can_delete and inline_admin_formset.has_delete_permission and inline_admin_form.original:
        delete = text_value(inline_admin_form.deletion_field().field)
    parts.append(f'<td class="delete">{delete}</td>\n</tr>\n')
    return "".join(parts)


def tabular_html(inline_admin_formset, *, last_related: bool, request) -> str:
    """`admin/edit_inline/tabular.html` for one inline; `last_related` is whether it is the page's last inline."""
    formset = inline_admin_formset.formset
    prefix = text_value(formset.prefix)
    collapsible = inline_admin_formset.is_collapsible
    verbose = inline_admin_formset.opts.verbose_name if formset.max_num == 1 else \
        inline_admin_formset.opts.verbose_name_plural
    current_app = _current_app(request)
    forms = list(inline_admin_formset)
    rows = [
        _row(inline_admin_formset, form, last=index == len(forms) - 1, index=index, current_app=current_app)
        for index, form in enumerate(forms)
    ]
    return "".join([
        f'<div class="js-inline-admin-formset inline-group" id="{prefix}-group"\ndata-inline-type="tabular"\n'
        f'data-inline-formset="{text_value(inline_admin_formset.inline_formset_data())}">\n'
        f'<div class="tabular inline-related {"last-related" if last_related else ""}">\n',
        f"{text_value(formset.management_form)}\n",
        f'<fieldset class="module {text_value(inline_admin_formset.classes)}" aria-labelledby="{prefix}-heading">\n',
        "<details><summary>" if collapsible else "",
        f'\n<h2 id="{prefix}-heading" class="inline-heading">\n{text_value(capfirst(verbose))}\n</h2>\n',
        "</summary>" if collapsible else "",
        f"\n{text_value(formset.non_form_errors())}\n<table>\n",
        _header(inline_admin_formset),
        "\n<tbody>\n",
        *rows,
        "</tbody>\n</table>\n",
        "</details>" if collapsible else "",
        "\n</fieldset>\n</div>\n</div>\n",
    ])
