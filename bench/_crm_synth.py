"""A synthetic multi-country CRM contact base in memory, with planted duplicates and hard negatives, and the truth.

Built for bench/bench_scoring.py on the vocabulary of the demo seeder (crm/services/demo.py: its locales, mail
providers, legal forms, company words, transliteration, typo letters and email case change). Every record is a
dict: id, first_name, last_name, company, phone, email, country, birth_date; the truth is a person id per
record and the kind of each planted duplicate.

Duplicates (the kinds issue 16 measured as missed): a first-name variant or nickname at the same company in
another legal form with no contact (name_variant); a surname typo at the same company (typo); the phone in the
national format of the person's own country, US / GB / KZ / DE (phone_national); gmail dots and +tags
(gmail_alias); the company spelled differently (company_spelling); Cyrillic to Latin (translit); the email in
another case (email_case); first and last name swapped (swapped_name); the birth date with day and month
swapped (birth_swap).
Hard negatives: namesakes (same full name, other company and contacts), family members sharing a mailbox,
colleagues giving the office switchboard, companies whose names differ only in a number ("Vector 1552" /
"Vector 1522") with people of the same name.
"""
from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import phonenumbers
from faker import Faker

from crm.services import demo

# The generator's own variant list (not the engine's table, so the benchmark does not grade its own answers).
NAME_VARIANTS = {
    "Michael": ["Micheal", "Mike"], "Geoffrey": ["Jeffrey"], "Jeffrey": ["Geoffrey", "Jeff"],
    "Stephen": ["Steven", "Steve"], "Steven": ["Stephen"], "Jonathan": ["Jonathon", "Jon"],
    "Elizabeth": ["Elisabeth", "Liz", "Beth"], "Katherine": ["Catherine", "Kate"], "Catherine": ["Katherine"],
    "William": ["Bill", "Will"], "Robert": ["Bob", "Rob"], "Richard": ["Rick", "Dick"], "James": ["Jim", "Jimmy"],
    "Christopher": ["Chris", "Kristopher"], "Daniel": ["Dan", "Danny"], "Matthew": ["Matt", "Mathew"],
    "Nicholas": ["Nick"], "Andrew": ["Andy", "Drew"], "Anthony": ["Tony"], "Thomas": ["Tom"], "Joseph": ["Joe"],
    "Jennifer": ["Jenny", "Jen"], "Rebecca": ["Becky"], "Patricia": ["Patty", "Pat"], "Deborah": ["Debra"],
    "Margaret": ["Maggie", "Peggy"], "Susan": ["Sue"], "Samuel": ["Sam"], "Benjamin": ["Ben"],
    "Александр": ["Саша", "Alexander"], "Алексей": ["Лёша", "Alexei"], "Михаил": ["Миша", "Mikhail"],
    "Дмитрий": ["Дима", "Dmitry"], "Сергей": ["Серёжа", "Sergei"], "Владимир": ["Володя", "Vladimir"],
    "Николай": ["Коля"], "Екатерина": ["Катя", "Ekaterina"], "Елена": ["Лена", "Elena"], "Наталья": ["Наташа"],
    "Татьяна": ["Таня"], "Анастасия": ["Настя"], "Мария": ["Маша", "Maria"], "Ольга": ["Оля", "Olga"],
    "Евгений": ["Женя"], "Андрей": ["Andrey"], "Юлия": ["Юля", "Yulia"], "Ирина": ["Ира"],
}
FEMALE = {"Elizabeth", "Katherine", "Catherine", "Jennifer", "Rebecca", "Patricia", "Deborah", "Margaret", "Susan",
          "Екатерина", "Елена", "Наталья", "Татьяна", "Анастасия", "Мария", "Ольга", "Юлия", "Ирина"}
# (Faker locale, country, share of people)
LOCALES = (("ru_RU", "RU", 0.40), ("en_US", "US", 0.25), ("en_GB", "GB", 0.10), ("ru_RU", "KZ", 0.10),
           ("de_DE", "DE", 0.15))
FREE_MAIL = {"RU": ("mail.ru", "yandex.ru", "gmail.com", "bk.ru"), "KZ": ("mail.ru", "gmail.com", "yandex.kz"),
             "US": ("gmail.com", "yahoo.com", "outlook.com"), "GB": ("gmail.com", "outlook.com", "btinternet.com"),
             "DE": ("gmx.de", "web.de", "gmail.com")}
LEGAL = {"RU": ("ООО", "АО", "ПАО", "JSC"), "KZ": ("ТОО", "АО", "JSC"), "US": ("LLC", "Inc.", "Corp.", "Ltd"),
         "GB": ("Ltd", "PLC", "Limited"), "DE": ("GmbH", "AG", "GmbH & Co. KG")}
WORDS = {"RU": demo._COMPANY_WORDS["ru_RU"], "KZ": demo._COMPANY_WORDS["ru_RU"], "US": demo._COMPANY_WORDS["en_US"],
         "GB": demo._COMPANY_WORDS["en_US"], "DE": demo._COMPANY_WORDS["de_DE"]}
SUFFIXES = {"RU": demo._COMPANY_SUFFIXES["ru_RU"], "KZ": demo._COMPANY_SUFFIXES["ru_RU"],
            "US": demo._COMPANY_SUFFIXES["en_US"], "GB": demo._COMPANY_SUFFIXES["en_US"],
            "DE": demo._COMPANY_SUFFIXES["de_DE"]}
KINDS = ("name_variant", "typo", "phone_national", "gmail_alias", "company_spelling", "translit", "email_case",
         "swapped_name", "birth_swap")
DUPLICATE_SHARE = 0.12


class Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.fakers = {locale: Faker(locale) for locale in sorted({locale for locale, _c, _s in LOCALES})}
        for index, faker in enumerate(self.fakers.values()):
            faker.seed_instance(seed + index)
        self.used_phones: set[str] = set()
        self.used_emails: set[str] = set()
        self.records: list[dict] = []
        self.truth: list[str] = []
        self.kinds: dict[int, str] = {}
        self.companies: dict[str, list[dict]] = {country: [] for _l, country, _s in LOCALES}
        self.people: list[dict] = []

    # --- values ----------------------------------------------------------------------------------------------

    def phone(self, country: str) -> str:
        for _attempt in range(200):
            digits = lambda n: "".join(self.rng.choice("0123456789") for _ in range(n))  # noqa: E731
            if country == "RU":
                candidate = "+79" + digits(9)
            elif country == "KZ":
                candidate = "+77" + self.rng.choice(("01", "02", "05", "07", "47", "71", "75", "77")) + digits(7)
            elif country == "US":
                candidate = "+1" + self.rng.choice(demo._US_AREAS) + str(self.rng.randint(2, 9)) + digits(6)
            elif country == "GB":
                candidate = "+447" + self.rng.choice(("4", "5", "7", "8", "9")) + digits(8)
            else:
                candidate = "+49" + self.rng.choice(demo._DE_MOBILE) + digits(self.rng.choice((7, 8)))
            if candidate in self.used_phones:
                continue
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
                self.used_phones.add(candidate)
                return candidate
        raise RuntimeError("no phone")

    def phone_text(self, e164: str, form: str) -> str:
        number = phonenumbers.parse(e164)
        if form == "national":
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        if form == "international":
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return e164

    def email(self, first: str, last: str, domain: str) -> str:
        first, last = demo._ascii(first), demo._ascii(last)
        for _attempt in range(50):
            local = self.rng.choice((f"{first}.{last}", f"{first[:1]}{last}", f"{first}_{last}", f"{last}.{first}"))
            local += self.rng.choice(("", "", str(self.rng.randint(1, 999))))
            address = f"{local}@{domain}"
            if address.lower() not in self.used_emails:
                self.used_emails.add(address.lower())
                return address
        address = f"{local}{len(self.used_emails)}@{domain}"
        self.used_emails.add(address.lower())
        return address

    def company(self, country: str, *, core: str | None = None, number: str | None = None) -> dict:
        if core is None:
            words = WORDS[country]
            core = self.rng.choice((f"{self.rng.choice(words)} {self.rng.choice(SUFFIXES[country])}",
                                    self.rng.choice(words),
                                    f"{self.rng.choice(words)}{self.rng.choice(words).lower()}"))
            if number is None and self.rng.random() < 0.35:
                number = str(self.rng.randint(10, 9999))
        company = {"core": core, "number": number, "country": country, "legal": self.rng.choice(LEGAL[country]),
                   "domain": demo._ascii(core) + (number or "") + (".ru" if country in ("RU", "KZ") else ".com"),
                   "switchboard": self.phone(country) if self.rng.random() < 0.3 else None}
        self.companies[country].append(company)
        return company

    def company_name(self, company: dict, legal: str | None = None, core: str | None = None) -> str:
        legal = legal or company["legal"]
        core = core or company["core"]
        name = f"{core} {company['number']}" if company["number"] else core
        if legal in ("ООО", "АО", "ПАО", "ТОО"):
            return f"{legal} «{name}»"
        return f"{name} {legal}"

    # --- people ----------------------------------------------------------------------------------------------

    def locale(self) -> tuple[str, str]:
        pick = self.rng.random()
        for locale, country, share in LOCALES:
            pick -= share
            if pick < 0:
                return locale, country
        return LOCALES[0][0], LOCALES[0][1]

    def person(self) -> dict:
        locale, country = self.locale()
        fake = self.fakers[locale]
        female = self.rng.random() < 0.5
        first = fake.first_name_female() if female else fake.first_name_male()
        last = fake.last_name_female() if female else fake.last_name_male()
        if self.rng.random() < 0.25:  # the common names of a real base: many Michaels, Alexanders, Elenas
            pool = [name for name in NAME_VARIANTS
                    if name.isascii() == (locale != "ru_RU") and (name in FEMALE) == female]
            first = self.rng.choice(pool)
        company = None
        if self.rng.random() < 0.6:
            pool = self.companies[country]
            if not pool or self.rng.random() < 0.15:
                company = self.company(country)
                if self.rng.random() < 0.05 and company["number"]:  # a company whose name differs by a digit
                    twin = self.company(country, core=company["core"], number=_digit_changed(company["number"],
                                                                                            self.rng))
                    self.hard_twin = twin
            else:  # a few companies employ many people
                company = pool[min(int(self.rng.expovariate(6 / len(pool))), len(pool) - 1)]
        phone = self.phone(country)
        domain = company["domain"] if company and self.rng.random() < 0.4 else self.rng.choice(FREE_MAIL[country])
        birth = date(1955, 1, 1) + timedelta(days=self.rng.randrange(365 * 48)) if self.rng.random() < 0.5 else None
        return {"key": f"p{len(self.people)}", "country": country, "first": first, "last": last, "female": female,
                "company": company, "phone": phone, "email": self.email(first, last, domain), "birth": birth}

    def record(self, person: dict, **changes) -> dict:
        company = person["company"]
        phone_form = self.rng.choice(("international", "e164", "national") if person["country"] == "RU"
                                     else ("international", "e164"))
        switch = company and company["switchboard"] and self.rng.random() < 0.5
        record = {
            "first_name": person["first"],
            "last_name": person["last"],
            "company": self.company_name(company) if company else "",
            "phone": self.phone_text(company["switchboard"] if switch else person["phone"], phone_form),
            "email": person["email"] if self.rng.random() < 0.9 else "",
            "country": person["country"],
            "birth_date": person["birth"].isoformat() if person["birth"] else "",
        }
        record.update(changes)
        return record

    def add(self, person: dict, record: dict, kind: str | None = None) -> None:
        record["id"] = len(self.records)
        self.records.append(record)
        self.truth.append(person["key"])
        if kind:
            self.kinds[record["id"]] = kind

    def duplicate(self, person: dict, kind: str) -> dict | None:
        company = person["company"]
        birth = person["birth"].isoformat() if person["birth"] and self.rng.random() < 0.5 else ""
        base = {"first_name": person["first"], "last_name": person["last"], "country": person["country"],
                "company": self.company_name(company) if company else "", "phone": "", "email": "",
                "birth_date": birth}
        if kind == "name_variant":
            variants = NAME_VARIANTS.get(person["first"])
            if not variants or not company:
                return None
            other_legal = [legal for legal in LEGAL[person["country"]] if legal != company["legal"]]
            return base | {"first_name": self.rng.choice(variants),
                           "company": self.company_name(company, self.rng.choice(other_legal))}
        if kind == "typo":
            if not company and not person["birth"]:
                return None
            typo = _typo(person["last"], self.rng)
            return base | {"last_name": typo, "birth_date": person["birth"].isoformat() if person["birth"] else ""}
        if kind == "phone_national":
            if person["country"] == "RU":
                return None
            return base | {"phone": self.phone_text(person["phone"], "national")}
        if kind == "gmail_alias":
            if not person["email"].endswith("@gmail.com"):
                return None
            local = person["email"].split("@")[0].replace(".", "")
            dotted = ".".join(local[i:i + 3] for i in range(0, len(local), 3))
            return base | {"email": f"{dotted}+{self.rng.choice(('crm', 'shop', 'news'))}@gmail.com"}
        if kind == "company_spelling":
            if not company or len(company["core"]) < 5:
                return None
            core = company["core"]
            position = self.rng.randrange(1, len(core) - 2)
            if core[position] == " " or core[position + 1] == " ":
                return None
            core = core[:position] + core[position + 1] + core[position] + core[position + 2:]
            other_legal = [legal for legal in LEGAL[person["country"]] if legal != company["legal"]]
            return base | {"company": self.company_name(company, self.rng.choice(other_legal), core),
                           "birth_date": person["birth"].isoformat() if person["birth"] else ""}
        if kind == "translit":
            if person["first"].isascii():
                return None
            return base | {"first_name": demo._translit(person["first"]), "last_name": demo._translit(person["last"]),
                           "email": person["email"]}
        if kind == "email_case":
            return base | {"email": demo._other_case(person["email"])}
        if kind == "swapped_name":
            return base | {"first_name": person["last"], "last_name": person["first"],
                           "phone": self.phone_text(person["phone"], "international")}
        if kind == "birth_swap":
            born = person["birth"]
            if not born or born.day > 12 or born.day == born.month or not company:
                return None
            return base | {"birth_date": date(born.year, born.day, born.month).isoformat()}
        raise ValueError(kind)

    def build(self, size: int) -> None:
        dealt = 0
        while len(self.records) < size:
            self.hard_twin = None
            person = self.person()
            self.people.append(person)
            self.add(person, self.record(person))
            # Hard negatives, each a different person.
            roll = self.rng.random()
            if roll < 0.03:  # a namesake: same name, other company, phone, mail, birthday
                namesake = self.person() | {"first": person["first"], "last": person["last"]}
                namesake["key"] = f"p{len(self.people)}"
                self.people.append(namesake)
                self.add(namesake, self.record(namesake))
            elif roll < 0.05 and person["email"]:  # a family member writing from the same mailbox
                relative = self.person() | {"last": person["last"], "email": person["email"],
                                            "country": person["country"]}
                # Another first name: the relative is told apart by it (Faker's name list sometimes gives the
                # person's own first name back, which made a "relative" with the person's full name and mailbox:
                # a copy of the person labelled as someone else).
                faker = self.fakers["en_US" if person["first"].isascii() else "ru_RU"]
                relative["first"] = faker.first_name()
                while relative["first"] == person["first"]:
                    relative["first"] = faker.first_name()
                relative["key"] = f"p{len(self.people)}"
                self.people.append(relative)
                self.add(relative, self.record(relative))
            if self.hard_twin is not None:  # someone of the same name at the company one digit away
                twin_person = self.person() | {"first": person["first"], "last": person["last"],
                                               "company": self.hard_twin, "country": person["country"]}
                twin_person["key"] = f"p{len(self.people)}"
                self.people.append(twin_person)
                self.add(twin_person, self.record(twin_person))
            if self.rng.random() < DUPLICATE_SHARE:
                for _attempt in range(len(KINDS)):
                    kind = KINDS[dealt % len(KINDS)]
                    dealt += 1
                    copy = self.duplicate(person, kind)
                    if copy is not None:
                        self.add(person, copy, kind)
                        break
        del self.records[size:]
        del self.truth[size:]
        self.kinds = {pk: kind for pk, kind in self.kinds.items() if pk < size}


def _typo(name: str, rng: random.Random) -> str:
    letters = demo._TYPO_LETTERS["latin" if name.isascii() else "cyrillic"]
    if len(name) < 3:
        return name + rng.choice(letters)
    position = rng.randrange(1, len(name))
    letter = rng.choice([char for char in letters if char != name[position].lower()])
    return name[:position] + letter + name[position + 1:]


def _digit_changed(number: str, rng: random.Random) -> str:
    position = rng.randrange(len(number))
    digit = rng.choice([d for d in "0123456789" if d != number[position] and (position or d != "0")])
    return number[:position] + digit + number[position + 1:]


def generate(size: int, seed: int = 7) -> tuple[list[dict], list[str], dict[int, str]]:
    """Return (records, the person of each record, the kind of each planted duplicate by record id)."""
    generator = Generator(seed)
    generator.build(size)
    return generator.records, generator.truth, generator.kinds


if __name__ == "__main__":  # a look at the data: .venv/bin/python -m bench._crm_synth (after django.setup)
    records, truth, kinds = generate(2000)
    print(Counter(kinds.values()))
