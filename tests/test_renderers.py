"""The fast form renderer gives exactly the HTML of Django's templates, and falls back to a changed template."""
import datetime
import re
from decimal import Decimal

import pytest
from django import forms
from django.contrib.admin import widgets as admin_widgets
from django.forms.renderers import DjangoTemplates
from django.utils.functional import lazy
from django.utils.safestring import mark_safe

from config.renderers import FAST, FastTemplatesRenderer
from tests import factories

STOCK = DjangoTemplates()
FASTER = FastTemplatesRenderer()

VALUES = [None, "", "plain", 'a<b>&"\'c', mark_safe("<i>safe</i>"), 0, 12345, Decimal("1.50"), 2.5, True,
          datetime.date(2026, 12, 5), ("x", 1), lazy(lambda: "lazy <text>", str)()]
ATTRS = [{}, {"class": "vTextField", "maxlength": 30}, {"required": True, "disabled": False, "data-x": 0},
         {"placeholder": '"quoted" <tag>', "data-none": None}, {"title": mark_safe("<b>t</b>")}]
CHOICES = [
    [("", "---------"), ("1", "One"), (2, "Two <2>"), ("3", mark_safe("<em>Three</em>"))],
    [("Group <A>", [("a", "A & a"), ("b", "B")]), ("loose", "Loose"), ("Group B", [(0, "Zero")])],
]


class PairWidget(forms.MultiWidget):
    """A multi-widget of its own template (multiwidget.html): a value shown in both inputs."""

    def decompress(self, value):
        return [value, value]


def _widgets():
    for attrs in ATTRS:
        yield forms.TextInput(attrs=attrs)
        yield forms.NumberInput(attrs=attrs)
        yield forms.EmailInput(attrs=attrs)
        yield forms.URLInput(attrs=attrs)
        yield forms.PasswordInput(attrs=attrs, render_value=True)
        yield forms.HiddenInput(attrs=attrs)
        yield forms.DateInput(attrs=attrs)
        yield forms.DateTimeInput(attrs=attrs)
        yield forms.TimeInput(attrs=attrs)
        yield forms.CheckboxInput(attrs=attrs)
        yield forms.Textarea(attrs=attrs)
        yield admin_widgets.AdminTextInputWidget(attrs=attrs)
        yield admin_widgets.AdminDateWidget(attrs=attrs)
        yield admin_widgets.AdminSplitDateTime(attrs=attrs)
        yield forms.SplitHiddenDateTimeWidget(attrs=attrs)
        yield PairWidget([forms.TextInput, forms.HiddenInput], attrs=attrs)
        for choices in CHOICES:
            yield forms.Select(attrs=attrs, choices=choices)
            yield forms.SelectMultiple(attrs=attrs, choices=choices)
            yield forms.NullBooleanSelect(attrs=attrs)
            yield forms.RadioSelect(attrs=attrs, choices=choices)


def test_renderer_gives_the_stock_html_for_every_widget_and_value():
    # Given every common widget, with plain, unsafe, safe, numeric, date, tuple and lazy values and attributes
    compared = 0
    for widget in _widgets():
        for value in VALUES:
            # When each renderer renders it
            try:
                stock = widget.render("field<name>", value, renderer=STOCK)
            except (AttributeError, TypeError) as error:  # a value the widget cannot take: the same error
                with pytest.raises(type(error)):
                    widget.render("field<name>", value, renderer=FASTER)
                continue
            fast = widget.render("field<name>", value, renderer=FASTER)
            # Then the HTML is the same, character for character
            assert fast == stock, (type(widget).__name__, value)
            compared += 1
    assert compared > 1000


def test_renderer_gives_the_stock_html_for_labels_and_errors():
    class Form(forms.Form):
        name = forms.CharField(label='Name <&> "x"', max_length=5)
        when = forms.DateField(required=False, label=mark_safe("<b>When</b>"))

    for data in [None, {"name": "far too long", "when": "not a date"}, {"name": "ok"}]:
        stock, fast = Form(data, renderer=STOCK), Form(data, renderer=FASTER)
        for name in ["name", "when"]:
            assert fast[name].label_tag() == stock[name].label_tag()
            assert fast[name].label_tag(attrs={"class": "required", "hidden": True}) == stock[name].label_tag(
                attrs={"class": "required", "hidden": True}
            )
            assert fast[name].legend_tag() == stock[name].legend_tag()
            assert str(fast[name].errors) == str(stock[name].errors)
        assert str(fast) == str(stock)
        assert str(fast.non_field_errors()) == str(stock.non_field_errors())


def test_renderer_gives_the_stock_html_for_related_widget_wrappers():
    # Given the admin's wrapper of a related select with every combination of its links, hidden or not
    from django.contrib import admin
    from django.utils import translation

    from crm.models import Customer, Deal

    compared = 0
    for relation in [Customer._meta.get_field("company").remote_field, Deal._meta.get_field("stage").remote_field]:
        for flags in range(16):
            can = [bool(flags & bit) for bit in (1, 2, 4, 8)]
            for widget in [forms.Select(choices=[("", "---"), (1, 'One "1"')]), forms.HiddenInput()]:
                wrapper = admin_widgets.RelatedFieldWidgetWrapper(
                    widget, relation, admin.site, can_add_related=can[0], can_change_related=can[1],
                    can_delete_related=can[2], can_view_related=can[3],
                )
                for language in ["en", "ru"]:
                    with translation.override(language):
                        # When each renderer renders it
                        stock = wrapper.render("company", 1, renderer=STOCK)
                        fast = wrapper.render("company", 1, renderer=FASTER)
                    # Then the HTML is the same, character for character
                    assert fast == stock, (relation, can, language)
                    compared += 1
    assert compared == 2 * 16 * 2 * 2


def test_renderer_falls_back_to_a_template_that_is_not_the_stock_one(tmp_path):
    # Given a renderer whose engine finds its own input.html before Django's
    override = tmp_path / "django" / "forms" / "widgets"
    override.mkdir(parents=True)
    (override / "input.html").write_text('<input class="mine" name="{{ widget.name }}">\n')

    class Overridden(FastTemplatesRenderer):
        @property
        def engine(self):
            engine = super().engine
            engine.engine.dirs = [str(tmp_path), *engine.engine.dirs]
            return engine

    renderer = Overridden()
    # When a text input is rendered
    html = forms.TextInput().render("name", "value", renderer=renderer)
    # Then the override is used: the inputs are no longer rendered by the function, the rest still are
    assert html == '<input class="mine" name="name">'
    assert "django/forms/widgets/text.html" not in renderer.fast
    assert "django/forms/widgets/select.html" in renderer.fast
    assert set(FASTER.fast) == set(FAST)  # the stock templates are all recognised


def _page(client, url):
    html = client.get(url).content.decode()
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'data-rendered-at="[^"]+"', "", html)
    return re.sub(r'value="\d\d:\d\d:\d\d"', "", html)  # the "now" of empty timeline rows


@pytest.mark.django_db
def test_renderer_gives_the_stock_html_for_whole_admin_pages(admin_client, admin_user, settings):
    # Given a customer card with every kind of inline row, and a lead
    customer = factories.CustomerFactory(
        first_name='O"Neil <b>', company=factories.CompanyFactory(), owner=admin_user
    )
    customer.tags.add(factories.TagFactory(name="vip & <co>"))
    factories.PhoneFactory(content_object=customer)
    factories.EmailFactory(content_object=customer)
    factories.MessengerFactory(content_object=customer)
    for make in [factories.NoteFactory, factories.TaskFactory, factories.CallFactory, factories.EmailMessageFactory,
                 factories.SmsMessageFactory, factories.ChatMessageFactory]:
        make(content_object=customer, author=admin_user)
    lead = factories.LeadFactory()
    urls = [f"/admin/crm/customer/{customer.pk}/change/", "/admin/crm/customer/add/", "/admin/crm/customer/",
            f"/admin/crm/lead/{lead.pk}/change/", "/admin/crm/deal/add/", "/admin/auth/user/add/"]
    for url in urls:
        # When each page is rendered with Django's renderer and with ours
        settings.FORM_RENDERER = "django.forms.renderers.DjangoTemplates"
        stock = _page(admin_client, url)
        settings.FORM_RENDERER = "config.renderers.FastTemplatesRenderer"
        fast = _page(admin_client, url)
        # Then the pages are the same
        assert fast == stock, url
        assert "<input" in fast
