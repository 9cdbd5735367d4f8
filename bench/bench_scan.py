#!/usr/bin/env python
"""Benchmark the full duplicate scan (`dedup.engine.scan.find_groups`) of 100k, 300k and 1M customers on PostgreSQL.

Runs standalone: `.venv/bin/python bench/bench_scan.py [--sizes 100000 300000 1000000] [--reuse]`.
It (re)creates its own database `bench_dedup` on 127.0.0.1:5432 as user postgres (BENCH_PG_URL overrides the
server), fills it with COPY (companies, customers, phones, emails, messenger handles: planted duplicates of
every kind and shared office switchboards) and indexes it through the engine's own bulk path
(`dedup.engine.index.reindex`, what `records_bulk_saved` triggers). Each size extends the previous base; each scan runs
in a fresh process so its peak memory is its own. Prints, per size: index build, scan time, groups, peak memory
and the time relative to n·log n.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import _pg  # noqa: E402
from _pg import SERVER, copy_rows, create_database  # noqa: E402,F401  (bench/ is the script's own folder)

# Never the test databases; BENCH_DB_NAME lets runs side by side (several worktrees) keep apart.
DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_dedup")

FIRST_M = ["Ivan", "Petr", "Sergey", "Dmitry", "Alexey", "Pavel", "Nikolai", "Mikhail", "Andrey", "Oleg", "Victor",
           "Roman", "Igor", "Artem", "Denis", "Maxim", "Egor", "Kirill", "Anton", "Yuri", "John", "Michael",
           "David", "James", "Robert", "Thomas", "Daniel", "Mark", "Paul", "Peter", "Иван", "Пётр", "Сергей",
           "Дмитрий", "Алексей", "Павел", "Николай", "Михаил", "Андрей", "Олег"]
FIRST_F = ["Olga", "Anna", "Elena", "Natalia", "Irina", "Tatiana", "Svetlana", "Ekaterina", "Yulia", "Maria",
           "Daria", "Polina", "Ksenia", "Sofia", "Alina", "Victoria", "Mary", "Emily", "Sarah", "Laura", "Emma",
           "Kate", "Julia", "Ольга", "Анна", "Елена", "Наталья", "Ирина", "Татьяна", "Светлана"]
LAST_STEMS = ["Petrov", "Ivanov", "Sidorov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov", "Novikov",
              "Morozov", "Volkov", "Solovyov", "Vasiliev", "Zaitsev", "Pavlov", "Semenov", "Golubev",
              "Vinogradov", "Bogdanov", "Vorobyov", "Fedorov", "Mikhailov", "Belyaev", "Tarasov", "Belov",
              "Komarov", "Orlov", "Kiselev", "Makarov", "Andreev", "Kovalev", "Ilyin", "Gusev", "Titov", "Kuzmin",
              "Kudryavtsev", "Baranov", "Kulikov", "Alekseev", "Stepanov", "Yakovlev", "Sorokin", "Sergeev",
              "Romanov", "Zakharov", "Borisov", "Korolev", "Gerasimov", "Ponomarev", "Grigoriev", "Lazarev",
              "Medvedev", "Ershov", "Nikitin", "Sobolev", "Ryabov", "Polyakov", "Tsvetkov", "Danilov", "Zhukov",
              "Frolov", "Zhuravlev", "Nikolaev", "Krylov", "Maksimov", "Sidorenko", "Osipov", "Belousov",
              "Fedotov", "Dorofeev", "Egorov", "Matveev", "Bobrov", "Dmitriev", "Kalinin", "Anisimov", "Petukhov",
              "Antonov", "Timofeev", "Nikiforov", "Veselov", "Filippov", "Markov", "Bolshakov", "Sukhanov",
              "Mironov", "Shiryaev", "Aleksandrov", "Konovalov", "Shestakov", "Kazakov", "Efimov", "Denisov",
              "Gromov", "Fomin", "Davydov", "Melnikov", "Shcherbakov", "Blinov", "Kolesnikov"]
LAST_EN = ["Smith", "Brown", "Miller", "Wilson", "Taylor", "Clark", "Walker", "Young", "King", "Wright", "Scott",
           "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter"]
COMPANY_WORDS = ["Alfa", "Vector", "Sever", "Ural", "Volga", "Nord", "Techno", "Stroy", "Invest", "Trade",
                 "Logistic", "Med", "Agro", "Energo", "Soft", "Data", "Prom", "Service", "Group", "Capital",
                 "Neva", "Baltic", "Sibir", "Altai", "Zenit", "Orion", "Vega", "Atlas", "Delta", "Omega"]
LEGAL = ["LLC", "Inc.", "ООО", "АО", "Ltd", "GmbH", "", "ИП"]
MOBILE = ["912", "915", "916", "903", "905", "926", "985", "999", "921", "911"]
# Share of customers that are a second record of an earlier person, and how the copy differs.
DUPLICATE_SHARE = 0.08
# Every this many companies has an office switchboard that all its people give as a second phone.
SWITCHBOARD_EVERY = 50


# --- People ---------------------------------------------------------------------------------------------------


def _hash(n: int) -> int:
    return (n * 2654435761 + 97) % 4294967296


def is_duplicate(n: int) -> bool:
    return n > 100 and _hash(n) % 10000 < DUPLICATE_SHARE * 10000


def companies_for(customers: int) -> int:
    return max(10, customers // 8)


def company(c: int) -> str:
    rng = random.Random(c * 31 + 7)
    words = f"{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_WORDS).lower()} {c}"
    legal = LEGAL[c % len(LEGAL)]
    if legal in ("ООО", "АО", "ИП"):
        return f"{legal} «{words}»"
    return f"{words} {legal}".strip()


def person(n: int, companies: int) -> dict:
    """Original person n: name, optional company, mobile phone, email, sometimes a Telegram handle."""
    rng = random.Random(n)
    female = rng.random() < 0.5
    first = rng.choice(FIRST_F if female else FIRST_M)
    if rng.random() < 0.15:
        last = rng.choice(LAST_EN)
    else:
        last = rng.choice(LAST_STEMS) + ("a" if female else "")
    company_id = rng.randrange(1, companies + 1) if rng.random() < 0.5 else None
    digits = f"{n % 10_000_000:07d}"
    prefix = MOBILE[(n // 10_000_000) % len(MOBILE)]
    return {
        "first": first,
        "last": last,
        "company": company_id,
        "phone": f"+7 {prefix} {digits[:3]}-{digits[3:5]}-{digits[5:]}",
        "e164": f"+7{prefix}{digits}",
        "email": f"{last.lower()}.{n}@example.com" if last.isascii() else f"client{n}@example.ru",
        "telegram": f"{first.lower()}_{n}" if rng.random() < 0.1 and first.isascii() else "",
    }


def record(n: int, companies: int) -> dict:
    """Customer n: an original person, or (DUPLICATE_SHARE of them) an earlier person entered again."""
    if not is_duplicate(n):
        return person(n, companies)
    source = n - 1 - _hash(n) % 50
    while is_duplicate(source):
        source -= 1
    data = dict(person(source, companies))
    variant = _hash(n) % 10
    if variant < 4:  # called in: the phone typed the national way, the name in capitals, nothing else
        digits = data["e164"][2:]
        data.update(phone=f"8 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}", email="", telegram="",
                    last=data["last"].upper())
    elif variant < 7:  # wrote an email: the address in capitals, no phone
        data.update(email=data["email"].upper(), phone="", e164="", telegram="")
    elif variant < 9 and data["company"] is not None:  # the same person at the same company, new phone, no email
        digits = f"{(n + 5_000_000) % 10_000_000:07d}"
        data.update(first=data["last"], last=data["first"], phone=f"+7 977 {digits}", e164=f"+7977{digits}",
                    email="", telegram="")
    elif data["telegram"]:  # wrote in Telegram
        data.update(phone="", e164="", email="", telegram="@" + data["telegram"].upper())
    else:  # called again from the same phone, typed as digits only
        data.update(phone=data["e164"][1:], email="", telegram="")
    return data


def switchboard(company_id: int) -> tuple[str, str] | None:
    if company_id is None or company_id % SWITCHBOARD_EVERY:
        return None
    digits = f"{company_id % 10_000_000:07d}"
    return f"+7 (495) {digits[:3]}-{digits[3:5]}-{digits[5:]}", f"+7495{digits}"


# --- The database ---------------------------------------------------------------------------------------------


def setup_django() -> None:
    _pg.setup_django(DB_NAME)


def build_range(start: int, stop: int, companies: int) -> dict:
    """Add customers start..stop-1 (and all companies on the first call) and index them; return timings."""
    from django.contrib.contenttypes.models import ContentType

    from crm.models import Company, Customer, Email, MessengerHandle, Phone
    from dedup import registry
    from dedup.engine import index

    timings = {}
    began = time.monotonic()
    if start == 1:
        copy_rows(Company, ((c, company(c)) for c in range(1, companies + 1)), fields=["id", "name"])
    people = [record(n, companies) for n in range(start, stop)]
    copy_rows(
        Customer,
        ((n, p["first"], p["last"], p["company"]) for n, p in zip(range(start, stop), people)),
        fields=["id", "first_name", "last_name", "company_id"],
    )
    customer_type = ContentType.objects.get_for_model(Customer).pk
    phones = []
    for n, p in zip(range(start, stop), people):
        if p["phone"]:
            phones.append((customer_type, n, p["phone"], p["e164"], True))
        office = switchboard(p["company"])
        if office and not is_duplicate(n):
            phones.append((customer_type, n, office[0], office[1], False))
    copy_rows(Phone, phones, fields=["content_type_id", "object_id", "number", "e164", "is_primary"])
    copy_rows(
        Email,
        ((customer_type, n, p["email"], True) for n, p in zip(range(start, stop), people) if p["email"]),
        fields=["content_type_id", "object_id", "address", "is_primary"],
    )
    copy_rows(
        MessengerHandle,
        ((customer_type, n, "telegram", p["telegram"], "", True) for n, p in zip(range(start, stop), people)
         if p["telegram"]),
        fields=["content_type_id", "object_id", "channel", "username", "chat_id", "is_primary"],
    )
    timings["copy_seconds"] = round(time.monotonic() - began, 1)
    began = time.monotonic()
    # The engine's bulk path, as after an import: records_bulk_saved -> index.reindex in batches.
    keys_written = index.reindex(registry.get("customer"), range(start, stop))
    timings["index_seconds"] = round(time.monotonic() - began, 1)
    timings["keys"] = keys_written
    return timings


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def reset_base() -> None:
    """Empty the CRM and dedup tables the bench fills, and make sure the default rules are there."""
    from django.db import connection

    from dedup import registry
    from dedup.engine import index

    tables = ["crm_phone", "crm_email", "crm_messengerhandle", "crm_customer", "crm_company", "dedup_matchkey",
              "dedup_indexedkind", "dedup_notduplicate"]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    index.sync_plan(registry.get("customer"))


# --- Scanning -------------------------------------------------------------------------------------------------


def scan_once() -> dict:
    """Scan the customers once (run in a child process) and return the figures."""
    from dedup.engine.scan import ScanStats, find_groups

    stats = ScanStats()
    started = time.monotonic()
    groups = 0
    grouped = 0
    for group in find_groups("customer", stats=stats):
        groups += 1
        grouped += len(group.ids)
    seconds = time.monotonic() - started
    return {
        "seconds": round(seconds, 2),
        "groups": groups,
        "grouped_records": grouped,
        "rows_read": stats.rows_read,
        "shared_keys": stats.shared_keys,
        "peak_rss_mb": peak_memory_mb(),
    }


def peak_memory_mb() -> float:
    """Return this process's peak resident memory. VmHWM is the process's own (ru_maxrss would include the
    memory of the parent it was forked from, which exec does not reset)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--reuse", action="store_true", help="Scan the base already built for the largest size.")
    parser.add_argument("--scan-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.scan_only:
        setup_django()
        print(json.dumps(scan_once()))
        return

    sizes = sorted(args.sizes)
    companies = companies_for(sizes[-1])
    existed = create_database(DB_NAME, reuse=args.reuse)
    setup_django()
    from django.core.management import call_command

    from crm.models import Customer

    call_command("migrate", verbosity=0)
    results = []
    if args.reuse and existed:
        sizes = [Customer.objects.count()]
        builds = [{}]
    else:
        reset_base()
        builds = []
        built = 0
        for size in sizes:
            print(f"building customers {built + 1:,}..{size:,}", file=sys.stderr, flush=True)
            builds.append(build_range(built + 1, size + 1, companies))
            built = size
            analyze()
            results.append((size, builds[-1], _scan_in_child()))
    if not results:
        results = [(sizes[0], builds[0], _scan_in_child())]

    print(f"\nFull scan of customers with the default rules (PostgreSQL, {os.cpu_count()} cores)")
    print(f"{'customers':>10} {'copy s':>7} {'index s':>8} {'keys':>10} {'scan s':>7} {'groups':>8} "
          f"{'in groups':>10} {'rows read':>10} {'shared':>7} {'peak MB':>8} {'s / n·log n (rel.)':>19}")
    base = None
    for size, build, scan in results:
        unit = scan["seconds"] / (size * math.log(size))
        base = base or unit
        print(f"{size:>10,} {build.get('copy_seconds', 0):>7} {build.get('index_seconds', 0):>8} "
              f"{build.get('keys', 0):>10,} {scan['seconds']:>7} {scan['groups']:>8,} {scan['grouped_records']:>10,} "
              f"{scan['rows_read']:>10,} {scan['shared_keys']:>7,} {scan['peak_rss_mb']:>8} {unit / base:>19.2f}")
        if build.get("index_seconds"):
            added = size - (results[results.index((size, build, scan)) - 1][0] if results.index((size, build, scan)) else 0)
            print(f"{'':>10} bulk index: {added / build['index_seconds']:,.0f} records/s, "
                  f"{build['keys'] / build['index_seconds']:,.0f} keys/s")


def _scan_in_child() -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--scan-only"], check=True, capture_output=True, text=True, cwd=ROOT,
        env={**os.environ},
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
