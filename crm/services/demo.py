"""Seed a realistic demo base with planted, recorded duplicates, and set up the demo admin login."""
from __future__ import annotations

import random
import re
import secrets
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import phonenumbers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from faker import Faker

from crm.models import (
    Call,
    ChatMessage,
    Company,
    Customer,
    Deal,
    Email,
    EmailMessage,
    Lead,
    MessengerHandle,
    Note,
    Order,
    OrderItem,
    Phone,
    Pipeline,
    SmsMessage,
    Stage,
    Tag,
    Task,
)
from crm.models.timeline import Direction
from dedup.db import bulk_insert, bulk_insert_instances
from dedup.engine.normalize import phone_e164
from dedup.models import ScanRun
from dedup.review.runs import scan_execute
from dedup.signals import records_bulk_saved


# Records written per bulk insert and per records_bulk_saved signal: the duplicate index builds the keys of
# one batch at a time, so this bounds its memory and query size while keeping the number of round trips low.
SEED_BATCH_SIZE = 1000
DEFAULT_SEED = 2024

# Every DUPLICATE_EVERY-th real person gets one or two duplicate records (about 7.7 %, within the 5-10 %
# real bases show); the kinds are dealt in turn so that even a small demo base has each of them.
DUPLICATE_EVERY = 13
DUPLICATE_KINDS = ("phone_format", "email_case", "swapped_name", "translit", "typo")
TELEGRAM_LEAD = "telegram_lead"

LEAD_PIPELINE = ("Leads", (("Incoming", "open"), ("Qualified", "open"), ("Converted", "won"), ("Junk", "lost")))
DEAL_PIPELINES = (
    ("Sales", (("New", "open"), ("Negotiation", "open"), ("Won", "won"), ("Lost", "lost"))),
    ("Wholesale", (("Request", "open"), ("Proposal", "open"), ("Contract", "open"), ("Won", "won"), ("Lost", "lost"))),
)
MANAGERS = (
    ("anna.smirnova", "Анна", "Смирнова"),
    ("boris.kuznetsov", "Борис", "Кузнецов"),
    ("kate.miller", "Kate", "Miller"),
    ("jonas.weber", "Jonas", "Weber"),
)
TAGS = ("VIP", "wholesale", "retail", "newsletter", "partner", "b2b", "events", "cold")
SOURCES = ("website", "referral", "exhibition", "cold call", "advertising", "Instagram", "partner", "import")
SERVICES = ("Website development", "SEO", "Support contract", "Consulting", "Hosting", "Mobile app", "Training")
PRODUCTS = (
    ("Office chair", "CH-100", "149.00"),
    ("Standing desk", "DS-220", "499.00"),
    ("Monitor 27\"", "MN-270", "289.90"),
    ("Keyboard", "KB-010", "59.90"),
    ("Headset", "HS-300", "89.00"),
    ("Webcam", "WC-720", "69.50"),
    ("Laptop stand", "LS-040", "39.90"),
    ("Docking station", "DK-900", "219.00"),
)

# (locale, the phone region of its people, share of people)
_LOCALES = (("ru_RU", "RU", 0.5), ("en_US", "US", 0.3), ("de_DE", "DE", 0.2))
_FREE_MAIL = {
    "ru_RU": ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru"),
    "en_US": ("gmail.com", "yahoo.com", "outlook.com", "icloud.com"),
    "de_DE": ("gmx.de", "web.de", "t-online.de", "gmail.com"),
}
_LEGAL_FORMS = {
    "ru_RU": ("ООО", "ООО", "АО", "ПАО"),
    "en_US": ("LLC", "Inc.", "Corp.", "Ltd"),
    "de_DE": ("GmbH", "GmbH", "AG", "GmbH & Co. KG"),
}
_COMPANY_WORDS = {
    "ru_RU": ("Вектор", "Альфа", "Ромашка", "Север", "Гранит", "Меридиан", "Импульс", "Созвездие", "Орион",
              "Техносфера", "Стройресурс", "Волга", "Байкал", "Сибирь", "Агрокомплекс", "Энергия"),
    "en_US": ("Blue Ridge", "Summit", "Northwind", "Redwood", "Silverline", "Bright Path", "Cedar", "Harbor",
              "Pinnacle", "Evergreen", "Keystone", "Lakeside", "Ironwood", "Starlight"),
    "de_DE": ("Nordlicht", "Alpen", "Rheintal", "Sonnenberg", "Elbe", "Schwarzwald", "Bergblick", "Lindenhof"),
}
_COMPANY_SUFFIXES = {
    "ru_RU": ("Трейд", "Сервис", "Групп", "Логистик", "Снаб", "Маркет", "Софт"),
    "en_US": ("Logistics", "Systems", "Foods", "Solutions", "Labs", "Partners", "Supply"),
    "de_DE": ("Bau", "Logistik", "Technik", "Handel", "Software", "Werke"),
}
_TLD = {"ru_RU": "ru", "en_US": "com", "de_DE": "de"}
_US_AREAS = ("212", "213", "312", "415", "617", "646", "702", "718", "202", "305", "512", "206")
_DE_MOBILE = ("151", "152", "157", "160", "162", "163", "170", "171", "172", "173", "175", "176", "177", "179")
_TRANSLIT = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    ("a b v g d e e zh z i y k l m n o p r s t u f kh ts ch sh shch  y  e yu ya").split(" "),
))
_TYPO_LETTERS = {"cyrillic": "абвгдеиклмнопрстуя", "latin": "abcdefghiklmnoprstuy"}

_TEXTS = {
    "ru": {
        "notes": ("Просил скидку на годовой тариф.", "Удобнее звонить после 15:00.", "Решение принимает директор.",
                  "Интересуется оптовыми ценами.", "Отправили коммерческое предложение.", "Клиент доволен доставкой."),
        "pinned": ("Важно: только безналичная оплата.", "VIP: отвечать в течение часа.", "Не звонить по выходным."),
        "tasks": ("Перезвонить клиенту", "Отправить счёт", "Подготовить договор", "Уточнить адрес доставки"),
        "calls": ("Договорились о встрече", "Не дозвонились", "Просит перезвонить", "Обсудили условия"),
        "subjects": ("Коммерческое предложение", "Счёт на оплату", "Вопрос по заказу", "Договор"),
        "sms": ("Ваш заказ готов к выдаче.", "Напоминаем о встрече завтра в 11:00.", "Спасибо за покупку!"),
        "chat": ("Здравствуйте! Сколько стоит доставка?", "Добрый день, хочу уточнить сроки.", "Спасибо, жду счёт."),
        "phone_in_chat": "Мой номер {phone}, перезвоните, пожалуйста.",
    },
    "en": {
        "notes": ("Asked for a discount on the yearly plan.", "Prefers calls after 3 pm.", "The director decides.",
                  "Interested in wholesale prices.", "Sent a quote.", "Happy with the delivery."),
        "pinned": ("Important: bank transfer only.", "VIP: answer within an hour.", "No calls at weekends."),
        "tasks": ("Call the customer back", "Send the invoice", "Prepare the contract", "Confirm the delivery address"),
        "calls": ("Agreed on a meeting", "No answer", "Asked to call back", "Discussed the terms"),
        "subjects": ("Your quote", "Invoice", "Question about the order", "Contract"),
        "sms": ("Your order is ready for pickup.", "A reminder of our meeting tomorrow at 11.", "Thank you!"),
        "chat": ("Hi! How much is the delivery?", "Hello, when can you deliver?", "Thanks, waiting for the invoice."),
        "phone_in_chat": "My number is {phone}, please call me back.",
    },
}


@dataclass
class DemoReport:
    """What seed_demo created."""

    seed: int
    customers: int = 0
    companies: int = 0
    leads: int = 0
    deals: int = 0
    orders: int = 0
    order_items: int = 0
    timeline: int = 0
    people: int = 0
    duplicates: Counter = field(default_factory=Counter)  # planted duplicate records by kind
    repeat_inquiries: int = 0  # customers who came back after a lost repeat deal
    seconds: float = 0.0
    # The first scan of duplicate control (setup_demo runs it so the review queue has groups): groups per entity.
    scan_groups: dict = field(default_factory=dict)


@dataclass(eq=False)
class _Person:
    """A real person behind one or more records; ``key`` is the recorded ground truth."""

    key: str
    locale: str
    region: str
    female: bool
    first_name: str
    last_name: str
    middle_name: str
    phone: str  # E.164
    email: str
    telegram: str = ""
    chat_id: str = ""
    company: Company | None = None
    owner_id: int | None = None


@dataclass(eq=False)
class _Draft:
    """An unsaved record with the contacts and tags it gets once it has a primary key."""

    instance: models.Model
    person: _Person | None = None
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    handles: list[tuple[str, str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    language: str = "en"


@transaction.atomic
def demo_seed(*, customers: int, seed: int = DEFAULT_SEED) -> DemoReport:
    """Create a demo base of ``customers`` customer records (planted duplicates included) and all around them.

    The same seed gives the same base. Every customer, lead, deal and order carries
    ``custom_fields["demo_person"]``, the id of the real person behind it, so precision and recall of
    duplicate detection can be measured; planted duplicates also carry ``custom_fields["demo_duplicate"]``.
    """
    if customers < 1:
        raise ValueError(_("The demo base needs at least one customer."))
    started = time.monotonic()
    builder = _DemoBuilder(seed=seed)
    report = builder.build(customers=customers)
    report.seconds = time.monotonic() - started
    return report


class _DemoBuilder:
    def __init__(self, *, seed: int):
        self.seed = seed
        self.rng = random.Random(seed)
        self.fakers = {}
        for index, (locale, _region, _share) in enumerate(_LOCALES):
            self.fakers[locale] = Faker(locale)
            self.fakers[locale].seed_instance(seed * 31 + index)
        self.default_region = getattr(settings, "DEDUP_DEFAULT_REGION", "RU").upper()
        self.now = timezone.now()
        self.report = DemoReport(seed=seed)
        # Everything that identifies a person is unique across people, so the ground truth is clean.
        self.used_names: set[tuple[str, str]] = set()
        self.used_phones: set[str] = set()
        self.used_emails: set[str] = set()
        self.used_handles: set[str] = set()
        self.used_companies: set[str] = set()
        self.person_count = 0
        self.e164_of: dict[str, str] = {}

    # --- The whole base ----------------------------------------------------------------------------------

    def build(self, *, customers: int) -> DemoReport:
        self.managers = self._managers()
        self._tags()
        self.lead_pipeline, self.lead_stages = self._pipeline(Pipeline.Kind.LEAD, *LEAD_PIPELINE)
        self.deal_pipelines = [self._pipeline(Pipeline.Kind.DEAL, name, stages) for name, stages in DEAL_PIPELINES]

        companies = [self._company() for _index in range(max(3, customers // 8))]
        self._save(Company, companies)
        self.report.companies = len(companies)

        customer_drafts = self._customers(customers, [draft.instance for draft in companies])
        self._save(Customer, customer_drafts)
        self.report.customers = len(customer_drafts)

        lead_drafts = self._leads(max(6, customers // 5), customer_drafts)
        self._save(Lead, lead_drafts)
        self.report.leads = len(lead_drafts)

        deals = self._deals(max(4, customers // 4), customer_drafts, lead_drafts)
        self._save(Deal, deals)
        self.report.deals = len(deals)

        orders, items = self._orders(max(4, customers // 2), customer_drafts)
        self._save(Order, orders)
        bulk_insert_instances(OrderItem, items)
        self.report.orders, self.report.order_items = len(orders), len(items)

        self.report.timeline = self._timeline(customer_drafts, lead_drafts, deals, orders)
        self.report.people = self.person_count
        return self.report

    def _managers(self) -> list[int]:
        user_model = get_user_model()
        ids = []
        for username, first_name, last_name in MANAGERS:
            user, created = user_model._default_manager.get_or_create(
                username=username,
                defaults={"first_name": first_name, "last_name": last_name, "is_staff": True,
                          "email": f"{username}@example.com"},
            )
            if created:
                # Managers log in once an admin sets their password; the demo knows no secret of theirs.
                user.set_unusable_password()
                user.save(update_fields=["password"])
            ids.append(user.pk)
        return ids

    def _tags(self) -> None:
        Tag.objects.bulk_create([Tag(name=name) for name in TAGS], ignore_conflicts=True)

    def _pipeline(self, kind: str, name: str, stages: tuple) -> tuple[Pipeline, dict[str, Stage]]:
        pipeline, _created = Pipeline.objects.get_or_create(kind=kind, name=name)
        by_name = {}
        for order, (stage_name, semantic) in enumerate(stages):
            stage, _created = Stage.objects.get_or_create(
                pipeline=pipeline, name=stage_name, defaults={"semantic": semantic, "sort_order": order * 10}
            )
            by_name[stage_name] = stage
        return pipeline, by_name

    # --- People and their contact details -------------------------------------------------------------------

    def _locale(self) -> tuple[str, str]:
        pick = self.rng.random()
        for locale, region, share in _LOCALES:
            pick -= share
            if pick < 0:
                return locale, region
        return _LOCALES[0][0], _LOCALES[0][1]

    def _person(self, locale: str | None = None, *, telegram: bool | None = None) -> _Person:
        if locale is None:
            locale, region = self._locale()
        else:
            region = next(region for code, region, _share in _LOCALES if code == locale)
        fake = self.fakers[locale]
        female = self.rng.random() < 0.5
        for _attempt in range(100):
            first = fake.first_name_female() if female else fake.first_name_male()
            last = fake.last_name_female() if female else fake.last_name_male()
            key = _name_key(first, last)
            if key not in self.used_names:
                break
        self.used_names.add(key)
        middle = ""
        if locale == "ru_RU":
            middle = fake.middle_name_female() if female else fake.middle_name_male()
        self.person_count += 1
        person = _Person(
            key=f"p{self.seed}-{self.person_count:06d}",
            locale=locale,
            region=region,
            female=female,
            first_name=first,
            last_name=last,
            middle_name=middle,
            phone=self._phone(region),
            email=self._email(first, last, self.rng.choice(_FREE_MAIL[locale])),
            owner_id=self.rng.choice(self.managers),
        )
        if telegram is None:
            telegram = self.rng.random() < 0.3
        if telegram:
            if self.rng.random() < 0.7:
                person.telegram = self._unique(
                    self.used_handles,
                    lambda: f"{_ascii(first)}_{_ascii(last)}{self.rng.choice(['', '', str(self.rng.randint(1, 99))])}",
                )
            else:
                person.chat_id = self._unique(self.used_handles, lambda: str(self.rng.randrange(10**8, 10**10)))
        return person

    def _phone(self, region: str) -> str:
        """Return a new valid number of the region in E.164, never used before."""
        for _attempt in range(1000):
            if region == "RU":
                candidate = "+79" + self._digits(9)
            elif region == "US":
                candidate = "+1" + self.rng.choice(_US_AREAS) + str(self.rng.randint(2, 9)) + self._digits(6)
            else:
                candidate = "+49" + self.rng.choice(_DE_MOBILE) + self._digits(self.rng.choice((7, 8)))
            number = phonenumbers.parse(candidate)
            if phonenumbers.is_valid_number(number) and candidate not in self.used_phones:
                self.used_phones.add(candidate)
                return candidate
        raise RuntimeError("Could not find an unused phone number")  # pragma: no cover (10^9 choices)

    def _digits(self, count: int) -> str:
        return "".join(self.rng.choice("0123456789") for _index in range(count))

    def _email(self, first: str, last: str, domain: str) -> str:
        first, last = _ascii(first), _ascii(last)
        patterns = (f"{first}.{last}", f"{first[:1]}{last}", f"{first}_{last}", f"{last}.{first}")
        return self._unique(
            self.used_emails,
            lambda: f"{self.rng.choice(patterns)}{self.rng.choice(['', '', str(self.rng.randint(1, 999))])}@{domain}",
        )

    def _unique(self, used: set[str], make) -> str:
        for _attempt in range(100):
            value = make()
            if value.lower() not in used:
                break
        else:
            value = f"{value}{len(used)}"
        used.add(value.lower())
        return value

    def _phone_text(self, e164: str, form: str) -> str:
        """Return the number as people type it: national, international, spaced or E.164."""
        number = phonenumbers.parse(e164)
        if form == "national" and phonenumbers.region_code_for_number(number) == self.default_region:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        elif form == "e164":
            text = e164
        else:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
            if form == "spaced":
                text = text.replace("-", " ")
        # Remembered, so the Phone rows get their E.164 form without parsing the text again.
        self.e164_of[text] = e164
        return text

    def _typical_phone_form(self, person: _Person) -> str:
        national = person.region == self.default_region
        return self.rng.choices(("national", "international", "e164"), (4 if national else 0, 4, 2))[0]

    # --- Companies ---------------------------------------------------------------------------------------

    def _company(self) -> _Draft:
        locale, region = self._locale()
        fake = self.fakers[locale]
        words, suffixes = _COMPANY_WORDS[locale], _COMPANY_SUFFIXES[locale]
        makers = (
            lambda: fake.last_name_male() if locale == "ru_RU" else fake.last_name(),
            lambda: self.rng.choice(words),
            lambda: f"{self.rng.choice(words)} {self.rng.choice(suffixes)}",
            lambda: f"{fake.last_name_male() if locale == 'ru_RU' else fake.last_name()} {self.rng.choice(suffixes)}",
        )
        core = self._unique(self.used_companies, lambda: self.rng.choice(makers)())
        form = self.rng.choice(_LEGAL_FORMS[locale])
        name = f"{form} «{core}»" if locale == "ru_RU" else f"{core} {form}"
        domain = f"{re.sub(r'[^a-z0-9]+', '-', _ascii(core)).strip('-')}.{_TLD[locale]}"
        if locale == "ru_RU":
            tax_id = self._digits(10)
        elif locale == "en_US":
            tax_id = f"{self._digits(2)}-{self._digits(7)}"
        else:
            tax_id = f"DE{self._digits(9)}"
        company = Company(
            name=name,
            tax_id=tax_id,
            website=f"https://{domain}",
            owner_id=self.rng.choice(self.managers),
            custom_fields={"demo_locale": locale},
        )
        company.demo_domain = domain
        phone = self._phone(region)
        return _Draft(
            company,
            phones=[self._phone_text(phone, "international")],
            emails=[self._unique(self.used_emails, lambda: f"info@{domain}")],
            tags=self.rng.sample(("b2b", "partner", "wholesale"), self.rng.randint(0, 1)),
        )

    # --- Customers and their planted duplicates ---------------------------------------------------------

    def _customers(self, count: int, companies: list[Company]) -> list[_Draft]:
        by_locale: dict[str, list[Company]] = {}
        for company in companies:
            by_locale.setdefault(company.custom_fields["demo_locale"], []).append(company)
        drafts: list[_Draft] = []
        dealt = 0
        while len(drafts) < count:
            duplicates = []
            if (self.person_count + 1) % DUPLICATE_EVERY == 0:
                first_kind = DUPLICATE_KINDS[dealt % len(DUPLICATE_KINDS)]
                dealt += 1
                duplicates.append(first_kind)
                if self.rng.random() < 0.3:
                    duplicates.append(self.rng.choice([kind for kind in DUPLICATE_KINDS if kind != first_kind]))
            # A national form and a Cyrillic spelling need a person of the default region and of Russia.
            locale = None
            if "translit" in duplicates or "phone_format" in duplicates:
                locale = "ru_RU"
            person = self._person(locale)
            local = by_locale.get(person.locale) or companies
            if self.rng.random() < 0.6:
                # Some companies employ many people: the first ones are picked more often.
                person.company = local[min(int(self.rng.expovariate(4 / len(local))), len(local) - 1)]
            original = self._customer(person)
            drafts.append(original)
            for kind in duplicates[: count - len(drafts)]:
                drafts.append(self._duplicate(person, original, kind))
                self.report.duplicates[kind] += 1
        return drafts

    def _customer(self, person: _Person) -> _Draft:
        fake = self.fakers[person.locale]
        email = person.email
        if person.company is not None and self.rng.random() < 0.5:
            email = self._email(person.first_name, person.last_name, person.company.demo_domain)
            person.email = email
        phones = [self._phone_text(person.phone, self._typical_phone_form(person))]
        if self.rng.random() < 0.15:
            phones.append(self._phone_text(self._phone(person.region), "international"))
        birthday = None
        if self.rng.random() < 0.6:
            birthday = date(1955, 1, 1) + timedelta(days=self.rng.randrange(365 * 48))
        customer = Customer(
            first_name=person.first_name,
            last_name=person.last_name,
            middle_name=person.middle_name,
            company=person.company,
            position=fake.job()[:100] if self.rng.random() < 0.7 else "",
            birthday=birthday,
            source=self.rng.choice(SOURCES),
            owner_id=person.owner_id,
            exclude_from_repeat_sales=self.rng.random() < 0.02,
            custom_fields={"demo_person": person.key},
        )
        return _Draft(
            customer,
            person=person,
            phones=phones,
            emails=[email] if self.rng.random() < 0.9 else [],
            handles=_handles_of(person),
            tags=self.rng.sample(TAGS, self.rng.choices((0, 1, 2), (5, 3, 2))[0]),
            language="ru" if person.locale == "ru_RU" else "en",
        )

    def _duplicate(self, person: _Person, original: _Draft, kind: str) -> _Draft:
        """Return another record of the same person, as a second manager or a web form would have typed it."""
        first, last, middle = person.first_name, person.last_name, person.middle_name
        phones: list[str] = []
        emails: list[str] = []
        if kind == "phone_format":
            # The same number in the other textual form: "8 (912) 345-67-89" against "+7 912 345 67 89".
            typed = original.phones[0] if original.phones else ""
            national = self._phone_text(person.phone, "national")
            other = self._phone_text(person.phone, "spaced" if typed == national else "national")
            if other == typed:
                other = self._phone_text(person.phone, "e164")
            phones = [other]
        elif kind == "email_case":
            emails = [_other_case(person.email)]
        elif kind == "swapped_name":
            first, last = last, first
            phones = [self._phone_text(person.phone, self._typical_phone_form(person))]
        elif kind == "translit":
            first, last, middle = _translit(first), _translit(last), ""
            emails = [person.email]
        elif kind == "typo":
            last = self._typo(last, first)
            if self.rng.random() < 0.5:
                emails = [person.email]
            else:
                phones = [self._phone_text(person.phone, self._typical_phone_form(person))]
        customer = Customer(
            first_name=first,
            last_name=last,
            middle_name=middle,
            company=person.company if self.rng.random() < 0.7 else None,
            source=self.rng.choice(SOURCES),
            owner_id=self.rng.choice(self.managers),
            custom_fields={"demo_person": person.key, "demo_duplicate": kind},
        )
        return _Draft(customer, person=person, phones=phones, emails=emails, language=original.language)

    def _typo(self, name: str, first_name: str) -> str:
        """Return the name with one letter replaced, and not the name of another person."""
        script = "cyrillic" if re.search("[а-яё]", name.lower()) else "latin"
        typo = name + self.rng.choice(_TYPO_LETTERS[script])
        for _attempt in range(20):
            position = self.rng.randrange(1, len(name)) if len(name) > 1 else 0
            letter = self.rng.choice([char for char in _TYPO_LETTERS[script] if char != name[position].lower()])
            candidate = name[:position] + letter + name[position + 1:]
            if _name_key(first_name, candidate) not in self.used_names:
                typo = candidate
                break
        # Reserved, so no other person is later given the misspelt name.
        self.used_names.add(_name_key(first_name, typo))
        return typo

    # --- Leads -------------------------------------------------------------------------------------------

    def _leads(self, count: int, customers: list[_Draft]) -> list[_Draft]:
        stages = self.lead_stages
        originals = [draft for draft in customers if "demo_duplicate" not in draft.instance.custom_fields]
        with_telegram = [draft for draft in originals if draft.person.telegram]
        drafts: list[_Draft] = []
        while len(drafts) < count:
            turn = len(drafts) % 10
            if turn == 3:
                # A client writes in Telegram with a hidden number, then calls: two leads, one person.
                person = self._person(telegram=True)
                drafts.append(self._lead(person, Lead.Channel.TELEGRAM, stages["Incoming"], duplicate=True))
                drafts.append(self._lead(person, Lead.Channel.PHONE, self.rng.choice(
                    [stages["Incoming"], stages["Qualified"]])))
                self.report.duplicates[TELEGRAM_LEAD] += 1
            elif turn == 7 and with_telegram:
                # A known customer writes in Telegram: the lead has only the chat, no phone.
                person = self.rng.choice(with_telegram).person
                drafts.append(self._lead(person, Lead.Channel.TELEGRAM, stages["Incoming"], duplicate=True))
                self.report.duplicates[TELEGRAM_LEAD] += 1
            elif turn == 5 and originals:
                # A repeat inquiry (Bitrix24): a known customer came back, the repeat deal was lost, and the
                # customer writes again. The converted repeat lead becomes a lost deal (_deals); the new lead is a
                # repeat inquiry waiting in Incoming.
                customer = self.rng.choice(originals)
                returned = self._lead(customer.person, self.rng.choice(list(Lead.Channel)), stages["Converted"])
                again = self._lead(customer.person, self.rng.choice(list(Lead.Channel)), stages["Incoming"])
                for draft in (returned, again):
                    draft.instance.customer = customer.instance
                    draft.instance.is_repeat = True
                    draft.instance.is_repeat_inquiry = True
                    draft.instance.custom_fields["demo_repeat_inquiry"] = True
                drafts.extend([returned, again])
                self.report.repeat_inquiries += 1
            elif self.rng.random() < 0.25 and originals:
                # A returning customer: the lead was converted and linked to the customer.
                customer = self.rng.choice(originals)
                draft = self._lead(customer.person, self.rng.choice(list(Lead.Channel)), stages["Converted"])
                draft.instance.customer = customer.instance
                drafts.append(draft)
            else:
                channel = self.rng.choice(list(Lead.Channel))
                person = self._person(telegram=channel == Lead.Channel.TELEGRAM)
                stage = self.rng.choices(
                    [stages["Incoming"], stages["Qualified"], stages["Junk"]], (5, 3, 2))[0]
                drafts.append(self._lead(person, channel, stage))
        return drafts

    def _lead(self, person: _Person, channel: str, stage: Stage, *, duplicate: bool = False) -> _Draft:
        custom = {"demo_person": person.key}
        if duplicate:
            custom["demo_duplicate"] = TELEGRAM_LEAD
        lead = Lead(
            channel=channel,
            first_name=person.first_name,
            pipeline=self.lead_pipeline,
            stage=stage,
            source=self.rng.choice(SOURCES),
            owner_id=person.owner_id,
            custom_fields=custom,
        )
        draft = _Draft(lead, person=person, language="ru" if person.locale == "ru_RU" else "en")
        name = f"{person.first_name} {person.last_name}"
        if channel == Lead.Channel.TELEGRAM:
            # Only what Telegram shows: a first name and a username or chat id, the number hidden.
            draft.handles = _handles_of(person) or [(MessengerHandle.Channel.TELEGRAM, "", self._unique(
                self.used_handles, lambda: str(self.rng.randrange(10**8, 10**10))))]
            username, chat_id = draft.handles[0][1], draft.handles[0][2]
            lead.title = f"Telegram: @{username}" if username else f"Telegram chat {chat_id}"
            return draft
        lead.last_name = person.last_name
        lead.middle_name = person.middle_name if self.rng.random() < 0.3 else ""
        lead.company_name = person.company.name if person.company else ""
        lead.amount = Decimal(self.rng.randrange(100, 20000) * 10) if self.rng.random() < 0.5 else None
        phone = self._phone_text(person.phone, self._typical_phone_form(person))
        if channel == Lead.Channel.PHONE:
            draft.phones = [phone]
            lead.title = f"Call from {name}"
        elif channel == Lead.Channel.EMAIL:
            draft.emails = [person.email]
            lead.title = f"Email from {name}"
        elif channel == Lead.Channel.WHATSAPP:
            draft.phones = [phone]
            draft.handles = [(MessengerHandle.Channel.WHATSAPP, "", person.phone.lstrip("+"))]
            lead.title = f"WhatsApp: {name}"
        else:
            draft.emails = [person.email]
            if self.rng.random() < 0.6:
                draft.phones = [phone]
            lead.title = f"{self.rng.choice(SERVICES)}: {name}"
        return draft

    # --- Deals and orders --------------------------------------------------------------------------------

    def _deals(self, count: int, customers: list[_Draft], leads: list[_Draft]) -> list[_Draft]:
        originals = [draft for draft in customers if "demo_duplicate" not in draft.instance.custom_fields]
        draft_of = {id(draft.instance): draft for draft in originals}
        deals = []
        # Converted leads became deals first; the rest are deals of customers who came another way.
        converted = [lead for lead in leads if lead.instance.customer is not None]
        for index in range(count):
            source_lead = converted[index] if index < len(converted) else None
            customer = draft_of[id(source_lead.instance.customer)] if source_lead else self.rng.choice(originals)
            pipeline, stages = self.rng.choices(self.deal_pipelines, (3, 1))[0]
            choices = list(stages.values())
            stage = self.rng.choices(choices, [4 if choice.semantic == "open" else 1 for choice in choices])[0]
            repeat_inquiry = bool(source_lead and source_lead.instance.is_repeat_inquiry)
            if repeat_inquiry:
                stage = next(choice for choice in choices if choice.semantic == "lost")
            service = self.rng.choice(SERVICES)
            deal = Deal(
                title=f"{service} — {customer.instance.full_name}",
                pipeline=pipeline,
                stage=stage,
                amount=Decimal(self.rng.randrange(50, 5000) * 100),
                customer=customer.instance,
                company=customer.instance.company,
                service=service,
                source_lead=source_lead.instance if source_lead else None,
                is_repeat=repeat_inquiry,
                is_repeat_inquiry=repeat_inquiry,
                owner_id=customer.instance.owner_id,
                closed_at=self._past(120) if stage.semantic != "open" else None,
                custom_fields={"demo_person": customer.person.key},
            )
            deals.append(_Draft(deal, person=customer.person, language=customer.language))
        return deals

    def _orders(self, count: int, customers: list[_Draft]) -> tuple[list[_Draft], list[OrderItem]]:
        prefix = f"D{self.seed}-"
        taken = set(Order.objects.filter(number__startswith=prefix).values_list("number", flat=True))
        numbers = (number for number in (f"{prefix}{n:06d}" for n in range(1, 10**7)) if number not in taken)
        orders, items = [], []
        statuses = list(Order.Status)
        for _index in range(count):
            customer = self.rng.choice(customers)
            person = customer.person
            order = Order(
                number=next(numbers),
                customer=customer.instance,
                status=self.rng.choices(statuses, (3, 2, 2, 4, 1))[0],
                # The order's own contacts, typed at checkout, often in another form than on the card.
                email=customer.emails[0] if customer.emails else person.email,
                phone=self._phone_text(person.phone, self._typical_phone_form(person)),
                owner_id=customer.instance.owner_id,
                custom_fields={"demo_person": person.key},
            )
            order.phone_e164 = self._e164(order.phone)
            total = Decimal("0")
            for name, sku, price in self.rng.sample(PRODUCTS, self.rng.randint(1, 3)):
                quantity = self.rng.randint(1, 4)
                items.append(OrderItem(order=order, name=name, sku=sku, quantity=quantity, price=Decimal(price)))
                total += Decimal(price) * quantity
            order.total = total
            orders.append(_Draft(order, person=person, language=customer.language))
        return orders, items

    # --- Timeline ----------------------------------------------------------------------------------------

    def _past(self, days: int):
        return self.now - timedelta(days=self.rng.uniform(0, days))

    def _timeline(self, customers, leads, deals, orders) -> int:
        rows: dict[type[models.Model], list[models.Model]] = {model: [] for model in (
            Note, Task, Call, EmailMessage, SmsMessage, ChatMessage)}
        pinned_people = set()
        for draft in customers:
            texts = _TEXTS[draft.language]
            target = self._target(draft)
            author = draft.instance.owner_id
            for _index in range(self.rng.choices((0, 1, 2), (4, 4, 2))[0]):
                rows[Note].append(Note(**target, author_id=author, text=self.rng.choice(texts["notes"]),
                                       created_at=self._past(365)))
            # Some people have a pinned note on two of their records: a merge must keep the survivor's.
            if self.rng.random() < (0.5 if draft.person.key in pinned_people else 0.1):
                pinned_people.add(draft.person.key)
                rows[Note].append(Note(**target, author_id=author, text=self.rng.choice(texts["pinned"]),
                                       pinned=True, created_at=self._past(365)))
            self._activities(rows, draft, target, texts)
        for draft in leads:
            texts = _TEXTS[draft.language]
            target = self._target(draft)
            if draft.instance.channel == Lead.Channel.TELEGRAM:
                handle = draft.handles[0]
                messages = [self.rng.choice(texts["chat"])]
                if self.rng.random() < 0.4:
                    # The number the messenger hid, written in the chat: intake can read it out.
                    messages.append(texts["phone_in_chat"].format(
                        phone=self._phone_text(draft.person.phone, self._typical_phone_form(draft.person))))
                for text in messages:
                    rows[ChatMessage].append(ChatMessage(**target, channel="telegram", username=handle[1],
                                                         chat_id=handle[2], text=text, created_at=self._past(30)))
            elif self.rng.random() < 0.3:
                rows[Note].append(Note(**target, author_id=draft.instance.owner_id,
                                       text=self.rng.choice(texts["notes"]), created_at=self._past(60)))
            if draft.phones and self.rng.random() < 0.5:
                rows[Call].append(Call(**target, phone=draft.phones[0], duration_seconds=self.rng.randint(20, 900),
                                       result=self.rng.choice(texts["calls"]), created_at=self._past(60)))
            if self.rng.random() < 0.3:
                rows[Task].append(self._task(draft, target, texts))
        for draft in deals:
            texts = _TEXTS[draft.language]
            target = self._target(draft)
            if self.rng.random() < 0.4:
                rows[Note].append(Note(**target, author_id=draft.instance.owner_id,
                                       text=self.rng.choice(texts["notes"]), created_at=self._past(120)))
            if draft.instance.stage.semantic == "open" and self.rng.random() < 0.5:
                rows[Task].append(self._task(draft, target, texts))
        for draft in orders:
            texts = _TEXTS[draft.language]
            target = self._target(draft)
            if self.rng.random() < 0.3:
                rows[SmsMessage].append(SmsMessage(**target, phone=draft.instance.phone,
                                                   text=self.rng.choice(texts["sms"]), created_at=self._past(90)))
            if self.rng.random() < 0.15:
                rows[Note].append(Note(**target, author_id=draft.instance.owner_id,
                                       text=self.rng.choice(texts["notes"]), created_at=self._past(90)))
        total = 0
        for model, objects in rows.items():
            bulk_insert_instances(model, objects)
            total += len(objects)
        return total

    def _activities(self, rows, draft: _Draft, target: dict, texts: dict) -> None:
        owner = draft.instance.owner_id
        if draft.phones and self.rng.random() < 0.35:
            rows[Call].append(Call(
                **target, author_id=owner, direction=self.rng.choice(list(Direction)), phone=draft.phones[0],
                duration_seconds=self.rng.randint(0, 1200), result=self.rng.choice(texts["calls"]),
                created_at=self._past(365)))
        if self.rng.random() < 0.25:
            rows[Task].append(self._task(draft, target, texts))
        if draft.emails and self.rng.random() < 0.2:
            rows[EmailMessage].append(EmailMessage(
                **target, author_id=owner, direction=Direction.OUTGOING, subject=self.rng.choice(texts["subjects"]),
                body=self.rng.choice(texts["notes"]), sender="sales@mergewise.example", recipient=draft.emails[0],
                created_at=self._past(365)))
        if draft.phones and self.rng.random() < 0.15:
            rows[SmsMessage].append(SmsMessage(
                **target, author_id=owner, phone=draft.phones[0], text=self.rng.choice(texts["sms"]),
                created_at=self._past(365)))
        if draft.handles and self.rng.random() < 0.5:
            channel, username, chat_id = draft.handles[0]
            rows[ChatMessage].append(ChatMessage(
                **target, channel=channel, username=username, chat_id=chat_id, text=self.rng.choice(texts["chat"]),
                created_at=self._past(365)))

    def _task(self, draft: _Draft, target: dict, texts: dict) -> Task:
        due = self.now + timedelta(days=self.rng.uniform(-20, 20))
        return Task(**target, author_id=draft.instance.owner_id, assignee_id=draft.instance.owner_id,
                    title=self.rng.choice(texts["tasks"]), due_at=due, done=due < self.now and self.rng.random() < 0.7,
                    created_at=due - timedelta(days=self.rng.uniform(1, 10)))

    def _target(self, draft: _Draft) -> dict:
        content_type = ContentType.objects.get_for_model(type(draft.instance))
        return {"content_type_id": content_type.pk, "object_id": draft.instance.pk}

    # --- Writing -----------------------------------------------------------------------------------------

    def _save(self, model: type[models.Model], drafts: list[_Draft]) -> None:
        """Insert the records batch by batch with their contacts and tags, telling duplicate control."""
        content_type_id = ContentType.objects.get_for_model(model).pk
        tag_ids = dict(Tag.objects.filter(name__in=TAGS).values_list("name", "pk"))
        tags = model._meta.get_field("tags")
        source, target = f"{tags.m2m_field_name()}_id", f"{tags.m2m_reverse_field_name()}_id"
        for start in range(0, len(drafts), SEED_BATCH_SIZE):
            batch = drafts[start:start + SEED_BATCH_SIZE]
            bulk_insert_instances(model, [draft.instance for draft in batch])
            phones, emails, handles, links = [], [], [], []
            for draft in batch:
                owner = {"content_type_id": content_type_id, "object_id": draft.instance.pk}
                phones += [{**owner, "number": number, "e164": self._e164(number), "is_primary": index == 0}
                           for index, number in enumerate(draft.phones)]
                emails += [{**owner, "address": address, "is_primary": index == 0}
                           for index, address in enumerate(draft.emails)]
                handles += [{**owner, "channel": channel, "username": username, "chat_id": chat_id,
                             "is_primary": index == 0}
                            for index, (channel, username, chat_id) in enumerate(draft.handles)]
                links += [{source: draft.instance.pk, target: tag_ids[name]} for name in draft.tags]
            bulk_insert(Phone, phones)
            bulk_insert(Email, emails)
            bulk_insert(MessengerHandle, handles)
            bulk_insert(tags.remote_field.through, links)
            # Bulk writes skip post_save; this keeps the duplicate index current.
            pks = [draft.instance.pk for draft in batch]
            records_bulk_saved.send(sender=model, model=model, pks=pks, created=True)

    def _e164(self, number: str) -> str:
        """Return the E.164 form of a number this builder typed (known), or of any other text (parsed)."""
        known = self.e164_of.get(number)
        return known if known is not None else phone_e164(number) or ""


def _handles_of(person: _Person) -> list[tuple[str, str, str]]:
    if person.telegram or person.chat_id:
        return [(MessengerHandle.Channel.TELEGRAM, person.telegram, person.chat_id)]
    return []


def _translit(text: str) -> str:
    """Return Russian text in Latin letters, as people write their names abroad (Пётр Иванов -> Petr Ivanov)."""
    out = []
    for char in text:
        latin = _TRANSLIT.get(char.lower())
        if latin is None:
            out.append(char)
        else:
            out.append(latin.capitalize() if char.isupper() else latin)
    return "".join(out)


def _ascii(text: str) -> str:
    """Return lower-case ASCII letters for emails and handles: Cyrillic transliterated, umlauts spelled out."""
    text = _translit(text.lower())
    for umlaut, spelled in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, spelled)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "", text) or "x"


def _name_key(first: str, last: str) -> tuple[str, str]:
    """Return a person's name folded to ASCII, order-free: two people never share it."""
    return tuple(sorted((_ascii(first), _ascii(last))))


def _other_case(email: str) -> str:
    """Return the address in another case: ivan.petrov@mail.ru -> Ivan.Petrov@Mail.RU."""
    local, _at, domain = email.partition("@")
    name, dot, tld = domain.rpartition(".")
    changed = ".".join(part.capitalize() for part in local.split(".")) + "@" + name.capitalize() + dot + tld.upper()
    return changed if changed != email else email.upper()


# --- The admin login of the demo -------------------------------------------------------------------------

DEMO_ADMIN_USERNAME = "admin"


@dataclass
class AdminLogin:
    url: str
    username: str
    password: str | None
    created: bool
    warning: str = ""


def demo_admin_login_ensure(*, login_file: Path, url: str) -> AdminLogin:
    """Create the demo superuser once, with a random password kept in ``login_file``, and return the login.

    A login file left from an earlier database is reused, so the password stays the same across resets.
    """
    username = DEMO_ADMIN_USERNAME
    password = _read_password(login_file)
    user_model = get_user_model()
    user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
    if user is None:
        if password is None:
            password = secrets.token_urlsafe(12)
            # The file first: if creating the user fails, the next run creates it with the same password.
            _write_login_file(login_file, url=url, username=username, password=password)
        with transaction.atomic():
            user_model._default_manager.create_superuser(username=username, email="admin@example.com",
                                                         password=password)
        return AdminLogin(url=url, username=username, password=password, created=True)
    if password is None:
        return AdminLogin(url=url, username=username, password=None, created=False, warning=_(
            "The user %(username)s existed before and its password is not in %(file)s; set one with "
            "`manage.py changepassword %(username)s`.") % {"username": username, "file": login_file})
    if not user.check_password(password):
        return AdminLogin(url=url, username=username, password=password, created=False, warning=_(
            "This password from %(file)s no longer works: it was changed since. Set a new one with "
            "`manage.py changepassword %(username)s`.") % {"username": username, "file": login_file})
    return AdminLogin(url=url, username=username, password=password, created=False)


def demo_seed_once(*, customers: int, seed: int = DEFAULT_SEED, scan: bool = True) -> DemoReport | None:
    """Seed the demo base unless there are customers already, then run the first duplicate scan (in this
    process, as the command line does) so the review queue has groups; return the report, or None when skipped."""
    if Customer.objects.exists():
        return None
    report = demo_seed(customers=customers, seed=seed)
    if scan:
        run = scan_execute(trigger=ScanRun.Trigger.COMMAND)
        report.scan_groups = {
            entity: figures.get("groups", 0)
            for entity, figures in (run.stats or {}).items()
            if isinstance(figures, dict)
        }
    return report


def _read_password(login_file: Path) -> str | None:
    try:
        text = Path(login_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        key, _colon, value = line.partition(":")
        if key.strip().lower() == "password" and value.strip():
            return value.strip()
    return None


def _write_login_file(login_file: Path, *, url: str, username: str, password: str) -> None:
    login_file = Path(login_file)
    login_file.parent.mkdir(parents=True, exist_ok=True)
    partial = login_file.with_suffix(".tmp")
    partial.write_text(
        "# The demo admin login, written by `manage.py setup_demo`. Keep it out of git (var/ is ignored).\n"
        f"url: {url}\nusername: {username}\npassword: {password}\n",
        encoding="utf-8",
    )
    partial.chmod(0o600)
    partial.replace(login_file)
