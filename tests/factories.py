"""factory-boy factories for the CRM's entities."""
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType

from crm import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"manager{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pass")
    is_staff = True


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag{n}")


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Company

    name = factory.Sequence(lambda n: f"Company {n} LLC")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Customer

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")


class _ContactFactory(factory.django.DjangoModelFactory):
    content_object = factory.SubFactory(CustomerFactory)
    content_type = factory.LazyAttribute(lambda o: ContentType.objects.get_for_model(o.content_object))
    object_id = factory.LazyAttribute(lambda o: o.content_object.pk)

    class Meta:
        abstract = True
        exclude = ()


class PhoneFactory(_ContactFactory):
    class Meta:
        model = models.Phone

    number = factory.Sequence(lambda n: f"+7 912 {n // 10000 % 1000:03d}-{n // 100 % 100:02d}-{n % 100:02d}")


class EmailFactory(_ContactFactory):
    class Meta:
        model = models.Email

    address = factory.Sequence(lambda n: f"person{n}@example.com")


class MessengerFactory(_ContactFactory):
    class Meta:
        model = models.MessengerHandle

    username = factory.Sequence(lambda n: f"user{n}")


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Pipeline
        django_get_or_create = ("kind", "name")

    name = "Sales"
    kind = models.Pipeline.Kind.DEAL


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Stage
        django_get_or_create = ("pipeline", "name")

    pipeline = factory.SubFactory(PipelineFactory)
    name = "New"
    semantic = models.Stage.Semantic.OPEN


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Lead

    title = factory.Sequence(lambda n: f"Lead {n}")
    stage = factory.SubFactory(StageFactory, pipeline__kind=models.Pipeline.Kind.LEAD, pipeline__name="Leads")
    pipeline = factory.SelfAttribute("stage.pipeline")


class DealFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Deal

    title = factory.Sequence(lambda n: f"Deal {n}")
    stage = factory.SubFactory(StageFactory)
    pipeline = factory.SelfAttribute("stage.pipeline")
    amount = Decimal("1000.00")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Order

    number = factory.Sequence(lambda n: f"A-{n:06d}")
    customer = factory.SubFactory(CustomerFactory)
    total = Decimal("99.90")


class OrderItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.OrderItem

    order = factory.SubFactory(OrderFactory)
    name = "Widget"
    quantity = 2
    price = Decimal("10.00")


class _TimelineFactory(_ContactFactory):
    class Meta:
        abstract = True


class NoteFactory(_TimelineFactory):
    class Meta:
        model = models.Note

    text = factory.Faker("sentence")


class TaskFactory(_TimelineFactory):
    class Meta:
        model = models.Task

    title = factory.Faker("sentence", nb_words=4)


class CallFactory(_TimelineFactory):
    class Meta:
        model = models.Call

    phone = "+79123456789"


class EmailMessageFactory(_TimelineFactory):
    class Meta:
        model = models.EmailMessage

    subject = factory.Faker("sentence", nb_words=3)


class SmsMessageFactory(_TimelineFactory):
    class Meta:
        model = models.SmsMessage

    text = factory.Faker("sentence")


class ChatMessageFactory(_TimelineFactory):
    class Meta:
        model = models.ChatMessage

    text = factory.Faker("sentence")


class AttachmentFactory(_TimelineFactory):
    class Meta:
        model = models.Attachment

    file = factory.django.FileField(filename="contract.pdf", data=b"%PDF-1.4 test")
    name = "contract.pdf"


class IntegrationTokenFactory(factory.django.DjangoModelFactory):
    """An intake API token; the secret is on `.raw` (it is stored only as a hash)."""

    class Meta:
        model = models.IntegrationToken

    name = factory.Sequence(lambda n: f"Integration {n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        token, raw = model_class.objects.issue(**kwargs)
        token.raw = raw
        return token
