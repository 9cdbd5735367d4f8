"""Orders and their items."""
from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from dedup.engine.normalize import phone_e164

from .base import Entity
from .customers import Customer


class Order(Entity):
    class Status(models.TextChoices):
        NEW = "new", _("new")
        PROCESSING = "processing", _("processing")
        SHIPPED = "shipped", _("shipped")
        DELIVERED = "delivered", _("delivered")
        CANCELLED = "cancelled", _("cancelled")

    number = models.CharField(_("number"), max_length=40, unique=True)
    customer = models.ForeignKey(
        Customer, verbose_name=_("customer"), null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    total = models.DecimalField(_("total"), max_digits=14, decimal_places=2, default=Decimal("0"))
    email = models.CharField(_("email"), max_length=254, blank=True, default="")
    phone = models.CharField(_("phone"), max_length=64, blank=True, default="")
    phone_e164 = models.CharField(_("phone, international"), max_length=20, blank=True, default="", editable=False)

    class Meta(Entity.Meta):
        verbose_name = pgettext_lazy("sales order", "order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["phone_e164"], name="order_phone_idx")]
        constraints = Entity.Meta.constraints + [
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
        ]

    def __str__(self):
        return _("Order %(number)s") % {"number": self.number}

    def save(self, *args, **kwargs):
        self.phone_e164 = phone_e164(self.phone) or ""
        super().save(*args, **kwargs)


class OrderItem(models.Model):
    order = models.ForeignKey(
        Order, verbose_name=pgettext_lazy("sales order", "order"), on_delete=models.CASCADE, related_name="items"
    )
    name = models.CharField(_("product"), max_length=255)
    sku = models.CharField(_("SKU"), max_length=64, blank=True, default="")
    quantity = models.PositiveIntegerField(_("quantity"), default=1)
    price = models.DecimalField(_("price"), max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        verbose_name = _("order item")
        verbose_name_plural = _("order items")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_item_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gte=0), name="order_item_price_not_negative"),
        ]

    def __str__(self):
        return f"{self.name} \u00d7 {self.quantity}"

    @property
    def line_total(self):
        return (self.price or 0) * (self.quantity or 0)


