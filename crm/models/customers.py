"""Customers (people) and companies."""
from django.db import models
from django.utils.translation import gettext_lazy as _

from .base import ContactsMixin, Entity


class Company(ContactsMixin, Entity):
    name = models.CharField(_("name"), max_length=255, help_text=_("With its legal form, e.g. “Acme LLC”."))
    tax_id = models.CharField(_("tax ID"), max_length=32, blank=True, default="", db_index=True)
    website = models.CharField(_("website"), max_length=255, blank=True, default="")

    class Meta(Entity.Meta):
        verbose_name = _("company")
        verbose_name_plural = _("companies")
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["name"], name="company_name_idx")]

    def __str__(self):
        return self.name


class Customer(ContactsMixin, Entity):
    first_name = models.CharField(_("first name"), max_length=100, blank=True, default="")
    last_name = models.CharField(_("last name"), max_length=100, blank=True, default="")
    middle_name = models.CharField(_("middle name"), max_length=100, blank=True, default="")
    company = models.ForeignKey(
        Company,
        verbose_name=_("company"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
    )
    position = models.CharField(_("position"), max_length=100, blank=True, default="")
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=100, blank=True, default="")
    exclude_from_repeat_sales = models.BooleanField(
        _("exclude from repeat sales"),
        default=False,
        help_text=_("No repeat leads or deals are created for this customer."),
    )

    class Meta(Entity.Meta):
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["last_name", "first_name", "id"]
        indexes = [
            models.Index(fields=["last_name", "first_name"], name="customer_name_idx"),
            # The change list's "source" filter reads its choices from this index (crm.filters.distinct_values).
            models.Index(fields=["source"], name="customer_source_idx"),
        ]

    def __str__(self):
        return self.full_name or _("Customer #%(id)s") % {"id": self.pk}

    @property
    def full_name(self):
        return " ".join(part for part in (self.last_name, self.first_name, self.middle_name) if part)
