#!/usr/bin/env python
"""Benchmark what a short request waits for in a gunicorn process whose other threads render long ones: intake
posts while cards render in the same process, at several GIL switch intervals, or in another process.

Runs standalone against a base of bench_load.py (`BENCH_DB_NAME=h_mine_1m .venv/bin/python bench/bench_switch.py
[--seconds S] [--cards N] [--intervals 5 1 0.5] [--where threads process]`): one process, as one gunicorn gthread
worker, with N threads opening customer cards (the admin, logged in) back to back and one thread posting leads to
the intake API (the load's mix), through the whole Django stack in-process with production settings. For each
switch interval (ms) it prints the intake's wall time (p50 / p95), its thread's CPU time, and the cards done. A
thread coming back from the database waits for the GIL until the thread holding it is made to drop it, up to one
switch interval (5 ms by default) per query, so a 10-query intake request can wait 50 ms behind a card rendering
in its process. `--where process` renders the cards in threads of another process instead (the intake API on a
gunicorn of its own, Procfile.prod's api): the intake then waits only for a core, which the kernel's scheduler
gives a thread waking from PostgreSQL at once. Phases run in turn (each twice) so that a machine shared with other
work weighs on all alike.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pg import SERVER  # noqa: E402
from _pg import percentile  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB_NAME", "bench_prod")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--cards", type=int, default=2, help="threads rendering cards back to back")
    parser.add_argument("--intervals", type=float, nargs="+", default=[5.0, 1.0, 0.5], help="switch intervals, ms")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--where", nargs="+", choices=["threads", "process"], default=["threads"],
                        help="where the cards render: threads of the intake's process, or of another process")
    args = parser.parse_args()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": "bench-switch-" + "x" * 50,
            "DATABASE_URL": f"{SERVER}/{DB_NAME}",
            "CELERY_BROKER_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_SECURE_SSL": "false",
            "LOG_LEVEL": "WARNING",
            "WEB_THREADS": str(args.cards + 1),
            "STATIC_ROOT": tempfile.mkdtemp(prefix="bench-switch-"),  # the admin's pages need the hashed names
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)
    import logging

    logging.getLogger("mergewise.request").setLevel(logging.WARNING)  # the lines are not what is measured
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    from crm.models import Customer, IntegrationToken, Pipeline

    pipeline, _created = Pipeline.objects.get_or_create(name="Incoming", kind=Pipeline.Kind.LEAD)
    _token, raw = IntegrationToken.objects.issue(name=f"bench switch {time.time():.0f}", pipeline=pipeline)
    user = get_user_model().objects.filter(is_superuser=True).first()
    customers = Customer.objects.order_by("-pk").values_list("pk", flat=True).first()
    run = int(time.time())
    state = {"stop": False, "cards": 0}

    def cards() -> None:
        client = Client()
        client.force_login(user)
        while not state["stop"]:
            response = client.get(f"/admin/crm/customer/{random.randrange(1, customers + 1)}/change/")
            assert response.status_code == 200, response.status_code
            state["cards"] += 1
        connections.close_all()

    def intake(seconds: float, wall: list[float], cpu: list[float]) -> None:
        client = Client(HTTP_AUTHORIZATION=f"Token {raw}")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            n = random.randrange(10**7)
            body = {"name": "New Person", "phones": [f"+7916{n:07d}"], "emails": [f"switch{run}.{n}@example.net"]}
            started, started_cpu = time.perf_counter(), time.thread_time()
            response = client.post("/api/leads/", body, content_type="application/json")
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            assert response.status_code in (200, 201), response.content
            time.sleep(0.05)  # integrations post now and then, not back to back
        connections.close_all()

    def cards_elsewhere(stop, done) -> None:
        """The forked process: the card threads until told to stop; their count in `done`."""
        renderers = [threading.Thread(target=cards) for _ in range(args.cards)]
        for thread in renderers:
            thread.start()
        stop.wait()
        state["stop"] = True
        for thread in renderers:
            thread.join()
        done.value = state["cards"]

    import multiprocessing

    forking = multiprocessing.get_context("fork")
    default = sys.getswitchinterval()
    phases = [(where, ms) for where in args.where for ms in args.intervals]
    results: dict[tuple, dict[str, list[float]]] = {phase: {"wall": [], "cpu": [], "cards": []} for phase in phases}
    intake(3, [], [])  # warm-up: connections, caches, compiled rules
    for _round in range(args.rounds):
        for where, ms in phases:
            sys.setswitchinterval(ms / 1000)
            state.update(stop=False, cards=0)
            if where == "threads":
                renderers = [threading.Thread(target=cards) for _ in range(args.cards)]
                for thread in renderers:
                    thread.start()
                intake(args.seconds, results[where, ms]["wall"], results[where, ms]["cpu"])
                state["stop"] = True
                for thread in renderers:
                    thread.join()
                done = state["cards"]
            else:
                for connection in connections.all(initialized_only=True):  # the child opens its own (gunicorn's
                    connection.close()  # when_ready does the same before it forks)
                    if getattr(connection, "_connection_pools", {}).get(connection.alias) is not None:
                        connection.close_pool()
                stop, count = forking.Event(), forking.Value("i", 0)
                child = forking.Process(target=cards_elsewhere, args=(stop, count))
                child.start()
                intake(args.seconds, results[where, ms]["wall"], results[where, ms]["cpu"])
                stop.set()
                child.join()
                done = count.value
            results[where, ms]["cards"].append(done / args.seconds)
    sys.setswitchinterval(default)
    print(f"database:   PostgreSQL ({DB_NAME}); {args.cards} card threads (in the intake's process or another) + 1 "
          f"intake thread, {args.rounds} x {args.seconds:g} s per phase")
    print(f"{'cards in':>9} {'switch ms':>9} {'intake n':>9} {'wall p50':>9} {'wall p95':>9} {'wall p99':>9} "
          f"{'CPU p50':>8} {'cards/s':>8}")
    for (where, ms), row in results.items():
        print(f"{where:>9} {ms:>9g} {len(row['wall']):>9} {statistics.median(row['wall']):>9.1f} "
              f"{percentile(row['wall'], 0.95):>9.1f} {percentile(row['wall'], 0.99):>9.1f} "
              f"{statistics.median(row['cpu']):>8.1f} {statistics.fmean(row['cards']):>8.1f}")
    load = os.getloadavg()
    print(f"machine load: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores at the end")


if __name__ == "__main__":
    main()
