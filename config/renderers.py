"""The form renderer: Django's own, with its commonest templates (inputs, selects, labels, empty error lists, date
and time pairs, forms of hidden fields) rendered by plain functions that give the same HTML.

Why: an admin card renders 150 to 300 widgets, labels and error lists, and each goes through the template engine
(input.html including attrs.html, a context pushed and popped per include): at 1,000,000 customers this was a
third of a card's time (bench/README.md, "The card"). A function here is used only for a template whose source,
as the renderer's engine loads it, is exactly Django 5.2's (checked once per process, with the templates it
includes): an upgrade that changes a template or an override of one falls back to the template, never to stale
HTML. tests/test_renderers.py renders every widget kind and whole admin pages both ways and compares them.
"""
from __future__ import annotations

import html
from collections.abc import Callable

from django.forms.renderers import DjangoTemplates
from django.template import TemplateDoesNotExist
from django.templatetags.static import static
from django.utils.formats import localize
from django.utils.functional import cached_property
from django.utils.html import conditional_escape, strip_spaces_between_tags
from django.utils.safestring import SafeData, SafeString, mark_safe
from django.utils.timezone import template_localtime
from django.utils.translation import gettext

# The stock sources the functions below reproduce (Django 5.2, django/forms/templates/django/forms/).
ATTRS = (
    "{% for name, value in widget.attrs.items %}{% if value is not False %} {{ name }}{% if value is not True %}"
    "=\"{{ value|stringformat:'s' }}\"{% endif %}{% endif %}{% endfor %}"
)
FORM_ATTRS = ATTRS.replace("widget.attrs.items", "attrs.items")
INPUT = (
    '<input type="{{ widget.type }}" name="{{ widget.name }}"{% if widget.value != None %} '
    "value=\"{{ widget.value|stringformat:'s' }}\"{% endif %}{% include \"django/forms/widgets/attrs.html\" %}>\n"
)
INCLUDE_INPUT = '{% include "django/forms/widgets/input.html" %}\n'
SELECT = (
    '<select name="{{ widget.name }}"{% include "django/forms/widgets/attrs.html" %}>{% for group_name, '
    "group_choices, group_index in widget.optgroups %}{% if group_name %}\n"
    '  <optgroup label="{{ group_name }}">{% endif %}{% for option in group_choices %}\n'
    "  {% include option.template_name with widget=option %}{% endfor %}{% if group_name %}\n"
    "  </optgroup>{% endif %}{% endfor %}\n"
    "</select>\n"
)
SELECT_OPTION = (
    "<option value=\"{{ widget.value|stringformat:'s' }}\"{% include \"django/forms/widgets/attrs.html\" %}>"
    "{{ widget.label }}</option>\n"
)
TEXTAREA = (
    '<textarea name="{{ widget.name }}"{% include "django/forms/widgets/attrs.html" %}>\n'
    "{% if widget.value %}{{ widget.value }}{% endif %}</textarea>\n"
)
LABEL = (
    "{% if use_tag %}<{{ tag }}{% include 'django/forms/attrs.html' %}>{{ label }}</{{ tag }}>{% else %}"
    "{{ label }}{% endif %}\n"
)
ERRORS_UL = (
    '{% if errors %}<ul class="{{ error_class }}"{% if errors.field_id %} id="{{ errors.field_id }}_error"'
    "{% endif %}>{% for error in errors %}<li>{{ error }}</li>{% endfor %}</ul>{% endif %}"
)
ERRORS_DEFAULT = '{% include "django/forms/errors/list/ul.html" %}'
SPLIT_DATETIME = """\
<p class="datetime">
  {{ date_label }} {% with widget=widget.subwidgets.0 %}{% include widget.template_name %}{% endwith %}<br>
  {{ time_label }} {% with widget=widget.subwidgets.1 %}{% include widget.template_name %}{% endwith %}
</p>
"""
MULTIWIDGET = """\
{% spaceless %}{% for widget in widget.subwidgets %}{% include widget.template_name %}{% endfor %}{% endspaceless %}
"""
SPLIT_HIDDEN_DATETIME = "{% include 'django/forms/widgets/multiwidget.html' %}\n"
RELATED_WIDGET_WRAPPER = """\
{% load i18n static %}
<div class="related-widget-wrapper" {% if not model_has_limit_choices_to %}data-model-ref="{{ model_name }}"{% endif %}>
    {{ rendered_widget }}
    {% block links %}
        {% spaceless %}
        {% if not is_hidden %}
        {% if can_change_related %}
        <a class="related-widget-wrapper-link change-related" id="change_id_{{ name }}"
            data-href-template="{{ change_related_template_url }}?{{ url_params }}"
            data-popup="yes"
            title="{% blocktranslate %}Change selected {{ model }}{% endblocktranslate %}">
            <img src="{% static 'admin/img/icon-changelink.svg' %}" alt="" width="24" height="24">
        </a>
        {% endif %}
        {% if can_add_related %}
        <a class="related-widget-wrapper-link add-related" id="add_id_{{ name }}"
            data-popup="yes"
            href="{{ add_related_url }}?{{ url_params }}"
            title="{% blocktranslate %}Add another {{ model }}{% endblocktranslate %}">
            <img src="{% static 'admin/img/icon-addlink.svg' %}" alt="" width="24" height="24">
        </a>
        {% endif %}
        {% if can_delete_related %}
        <a class="related-widget-wrapper-link delete-related" id="delete_id_{{ name }}"
            data-href-template="{{ delete_related_template_url }}?{{ url_params }}"
            data-popup="yes"
            title="{% blocktranslate %}Delete selected {{ model }}{% endblocktranslate %}">
            <img src="{% static 'admin/img/icon-deletelink.svg' %}" alt="" width="24" height="24">
        </a>
        {% endif %}
        {% if can_view_related %}
          <a class="related-widget-wrapper-link view-related" id="view_id_{{ name }}"
             data-href-template="{{ change_related_template_url }}?{{ view_related_url_params }}"
             title="{% blocktranslate %}View selected {{ model }}{% endblocktranslate %}">
            <img src="{% static 'admin/img/icon-viewlink.svg' %}" alt="" width="24" height="24">
          </a>
        {% endif %}
        {% endif %}
        {% endspaceless %}
    {% endblock %}
</div>
"""
FORM_DIV = """\
{{ errors }}
{% if errors and not fields %}
  <div>{% for field in hidden_fields %}{{ field }}{% endfor %}</div>
{% endif %}
{% for field, errors in fields %}
  <div{% with classes=field.css_classes %}{% if classes %} class="{{ classes }}"{% endif %}{% endwith %}>
    {{ field.as_field_group }}
    {% if forloop.last %}
      {% for field in hidden_fields %}{{ field }}{% endfor %}
    {% endif %}
</div>
{% endfor %}
{% if not fields and not errors %}
  {% for field in hidden_fields %}{{ field }}{% endfor %}
{% endif %}
"""

WIDGETS = "django/forms/widgets/"
# The input types whose template is only the include of input.html.
INPUT_KINDS = ["input", "text", "hidden", "number", "email", "url", "password", "tel", "search", "date",
               "datetime", "time", "color", "checkbox"]


def text_value(value) -> str:
    """{{ value }} in an autoescaped template."""
    # The commonest values first, as Django would end up treating them: a card renders a thousand (localize and
    # template_localtime give a string back unchanged; escape() is SafeString(html.escape(str)) behind a lazy check).
    kind = type(value)
    if kind is SafeString:
        return value
    if kind is str:
        return SafeString(html.escape(value))
    value = localize(template_localtime(value))
    if not issubclass(type(value), str):
        value = str(value)
    return conditional_escape(value)


def _string(value) -> str:
    """{{ value|stringformat:'s' }} in an autoescaped template (the filter keeps a safe value safe)."""
    try:
        formatted = "%s" % (str(value) if isinstance(value, tuple) else value)
    except (ValueError, TypeError):
        formatted = ""
    if isinstance(value, SafeData):
        return formatted
    return SafeString(html.escape(formatted))  # escape(): formatted is a plain string


def _attrs(attrs: dict) -> str:
    return "".join(
        f" {text_value(name)}" if value is True else f' {text_value(name)}="{_string(value)}"'
        for name, value in attrs.items()
        if value is not False
    )


def _input(context: dict) -> str:
    widget = context["widget"]
    value = widget["value"]
    shown = f' value="{_string(value)}"' if value != None else ""  # noqa: E711  (the template's != None)
    name = text_value(widget["name"])
    return f'<input type="{text_value(widget["type"])}" name="{name}"{shown}{_attrs(widget["attrs"])}>'


def _included_input(widget: dict) -> str | None:
    """`{% include widget.template_name %}` of a subwidget that is an input, or None for another template."""
    kind = widget["template_name"].removeprefix(WIDGETS).removesuffix(".html")
    if widget["template_name"] != f"{WIDGETS}{kind}.html" or kind not in INPUT_KINDS:
        return None
    # input.html ends with a newline; the other kinds' templates add theirs after the include.
    return _input({"widget": widget}) + ("\n" if kind == "input" else "\n\n")


def _split_datetime(context: dict) -> str | None:
    date, time = (_included_input(widget) for widget in context["widget"]["subwidgets"])
    if date is None or time is None:
        return None
    return (
        f'<p class="datetime">\n  {text_value(context["date_label"])} {date}<br>\n'
        f'  {text_value(context["time_label"])} {time}\n</p>'
    )


def _multiwidget(context: dict) -> str | None:
    parts = [_included_input(widget) for widget in context["widget"]["subwidgets"]]
    if None in parts:
        return None
    return strip_spaces_between_tags("".join(parts).strip())


def _related_link(context: dict, kind: str, href: str, title: str, *, view: bool = False) -> str:
    """One link of the related-widget wrapper's, its whitespace as the template's (the spaceless tag keeps what is
    inside a tag)."""
    name = text_value(context["name"])
    # {% blocktranslate %} escapes the model's name, not the translation (the Russian one has quotes).
    title = gettext(title) % {"model": text_value(context["model"])}
    icon = conditional_escape(static(f"admin/img/icon-{kind}link.svg"))
    if view:
        return (
            f'<a class="related-widget-wrapper-link view-related" id="view_id_{name}"\n'
            f'             data-href-template="{href}"\n             title="{title}">'
            f'<img src="{icon}" alt="" width="24" height="24"></a>'
        )
    popup = '\n            data-popup="yes"'
    target = f'\n            href="{href}"' if kind == "add" else f'\n            data-href-template="{href}"'
    attributes = popup + target if kind == "add" else target + popup
    return (
        f'<a class="related-widget-wrapper-link {kind}-related" id="{kind}_id_{name}"{attributes}\n'
        f'            title="{title}"><img src="{icon}" alt="" width="24" height="24"></a>'
    )


def _related_widget_wrapper(context: dict) -> str:
    links = []
    if not context["is_hidden"]:
        params = text_value(context["url_params"])
        if context["can_change_related"]:
            href = f"{text_value(context.get('change_related_template_url', ''))}?{params}"
            links.append(_related_link(context, "change", href, "Change selected %(model)s"))
        if context["can_add_related"]:
            href = f"{text_value(context.get('add_related_url', ''))}?{params}"
            links.append(_related_link(context, "add", href, "Add another %(model)s"))
        if context["can_delete_related"]:
            href = f"{text_value(context.get('delete_related_template_url', ''))}?{params}"
            links.append(_related_link(context, "delete", href, "Delete selected %(model)s"))
        if context["can_view_related"]:
            href = (f"{text_value(context.get('change_related_template_url', ''))}?"
                    f"{text_value(context.get('view_related_url_params', ''))}")
            links.append(_related_link(context, "view", href, "View selected %(model)s", view=True))
    model_ref = "" if context["model_has_limit_choices_to"] else f'data-model-ref="{text_value(context["model_name"])}"'
    return (
        f'<div class="related-widget-wrapper" {model_ref}>\n    {text_value(context["rendered_widget"])}\n    \n'
        f'        {"".join(links)}\n    \n</div>'
    )


def _option(option: dict) -> str:
    return f'<option value="{_string(option["value"])}"{_attrs(option["attrs"])}>{text_value(option["label"])}</option>'


def _select(context: dict) -> str | None:
    widget = context["widget"]
    parts = [f'<select name="{text_value(widget["name"])}"{_attrs(widget["attrs"])}>']
    for group_name, group_choices, _index in widget["optgroups"]:
        if group_name:
            parts.append(f'\n  <optgroup label="{text_value(group_name)}">')
        for option in group_choices:
            if option["template_name"] != WIDGETS + "select_option.html":
                return None  # an option of its own template: the template renders it
            parts.append(f"\n  {_option(option)}\n")
        if group_name:
            parts.append("\n  </optgroup>")
    parts.append("\n</select>")
    return "".join(parts)


def _textarea(context: dict) -> str:
    widget = context["widget"]
    value = widget["value"]
    shown = text_value(value) if value else ""
    return f'<textarea name="{text_value(widget["name"])}"{_attrs(widget["attrs"])}>\n{shown}</textarea>'


def _label(context: dict) -> str:
    label = text_value(context["label"])
    if not context["use_tag"]:
        return label
    tag = text_value(context["tag"])
    return f"<{tag}{_attrs(context['attrs'])}>{label}</{tag}>"


def _hidden_form(context: dict) -> str | None:
    """A form of hidden fields only, without errors (a formset's management form): its fields one after another."""
    if context["errors"] or context["fields"]:
        return None
    return "".join(text_value(field) for field in context["hidden_fields"])


def _errors(context: dict) -> str | None:
    return "" if not context["errors"] else None  # an error list with errors: the template


# The inputs' templates, which a multi-widget's template includes.
SUBWIDGETS = {
    **{f"{WIDGETS}{kind}.html": INPUT if kind == "input" else INCLUDE_INPUT for kind in INPUT_KINDS},
    f"{WIDGETS}attrs.html": ATTRS,
}

# Template name -> (its function, the stock sources it and its includes must have).
FAST: dict[str, tuple[Callable[[dict], str | None], dict[str, str]]] = {
    **{
        f"{WIDGETS}{kind}.html": (
            _input,
            {f"{WIDGETS}{kind}.html": INPUT if kind == "input" else INCLUDE_INPUT, f"{WIDGETS}input.html": INPUT,
             f"{WIDGETS}attrs.html": ATTRS},
        )
        for kind in INPUT_KINDS
    },
    f"{WIDGETS}select.html": (
        _select,
        {f"{WIDGETS}select.html": SELECT, f"{WIDGETS}select_option.html": SELECT_OPTION, f"{WIDGETS}attrs.html": ATTRS},
    ),
    f"{WIDGETS}textarea.html": (_textarea, {f"{WIDGETS}textarea.html": TEXTAREA, f"{WIDGETS}attrs.html": ATTRS}),
    "django/forms/label.html": (_label, {"django/forms/label.html": LABEL, "django/forms/attrs.html": FORM_ATTRS}),
    "admin/widgets/split_datetime.html": (
        _split_datetime,
        {"admin/widgets/split_datetime.html": SPLIT_DATETIME, **SUBWIDGETS},
    ),
    f"{WIDGETS}multiwidget.html": (_multiwidget, {f"{WIDGETS}multiwidget.html": MULTIWIDGET, **SUBWIDGETS}),
    f"{WIDGETS}splithiddendatetime.html": (
        _multiwidget,
        {f"{WIDGETS}splithiddendatetime.html": SPLIT_HIDDEN_DATETIME, f"{WIDGETS}multiwidget.html": MULTIWIDGET,
         **SUBWIDGETS},
    ),
    "admin/widgets/related_widget_wrapper.html": (
        _related_widget_wrapper,
        {"admin/widgets/related_widget_wrapper.html": RELATED_WIDGET_WRAPPER},
    ),
    "django/forms/div.html": (_hidden_form, {"django/forms/div.html": FORM_DIV}),
    "django/forms/errors/list/ul.html": (_errors, {"django/forms/errors/list/ul.html": ERRORS_UL}),
    "django/forms/errors/list/default.html": (
        _errors,
        {"django/forms/errors/list/default.html": ERRORS_DEFAULT, "django/forms/errors/list/ul.html": ERRORS_UL},
    ),
}


class FastTemplatesRenderer(DjangoTemplates):
    """Django's DjangoTemplates form renderer; the templates of FAST rendered by their functions."""

    @cached_property
    def fast(self) -> dict[str, Callable[[dict], str | None]]:
        """The functions whose templates are, as this renderer loads them, the stock ones."""
        sources: dict[str, str | None] = {}

        def source(name: str) -> str | None:
            if name not in sources:
                try:
                    sources[name] = self.get_template(name).template.source
                except (TemplateDoesNotExist, AttributeError):
                    sources[name] = None
            return sources[name]

        return {
            name: function
            for name, (function, stock) in FAST.items()
            if all(source(part) == text for part, text in stock.items())
        }

    def render(self, template_name, context, request=None):
        function = self.fast.get(template_name)
        if function is not None:
            html = function(context)
            if html is not None:
                return mark_safe(html)
        return super().render(template_name, context, request=request)
