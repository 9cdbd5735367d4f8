"""Locust users for bench/bench_load.py: managers clicking through the admin, integrations posting leads.

Started by bench_load.py (`locust --headless`), which passes the base through the environment: BENCH_USERNAME,
BENCH_PASSWORD (a superuser), BENCH_SESSIONS (its sessions, one per manager, logged in before the run),
BENCH_TOKEN (an integration token), BENCH_CUSTOMERS (ids 1..N), BENCH_PAIRS_BELOW
(planted pairs (i-1, i) for i % 20 == 0 below this id are left for the compare screen; the merges take the ones
above), BENCH_RUN (makes the intake's new phone numbers unique per run), BENCH_CLIENT (the HTTP client),
BENCH_API_HOST (where the integrations post when the API has a server of its own). Each
request is named by its kind, so the statistics come out per kind.

The client: `fast` (the default) is Locust's FastHttpUser (geventhttpclient), `requests` its HttpUser
(python-requests, every run before 2026-12-06 09:00). Locust runs on the same 2 cores as the stack and times a
request from its send to the end of the body read in its own (gevent) loop, so its own CPU per request is part of
every figure: python-requests costs several times geventhttpclient's per request (Locust's documentation), which
showed as 5 ms at p50 and 8 ms at p95 between the client's and the server's intake times (bench/README.md). The
requests sent, their bodies, headers and the users' pace are the same with both.
"""
import os
import random

from locust import FastHttpUser, HttpUser, between, constant_throughput, task

FAST = os.environ.get("BENCH_CLIENT", "fast") == "fast"
BaseUser = FastHttpUser if FAST else HttpUser

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "1000"))
PAIRS_BELOW = int(os.environ.get("BENCH_PAIRS_BELOW", str(CUSTOMERS // 2)))
RUN = int(os.environ.get("BENCH_RUN", "0"))
CHANGE_LIST_PAGES = 200  # managers page through the first pages (100 rows each), sorted as the admin sorts
MANAGER_THINK_SECONDS = (1.0, 3.0)  # a person reading a screen before the next click
# Session keys of managers logged in before the run; without them each manager logs in first (about 1 s of CPU).
SESSIONS = [key for key in os.environ.get("BENCH_SESSIONS", "").split(",") if key]
INTAKE_PER_USER_PER_SECOND = float(os.environ.get("BENCH_INTAKE_RATE", "2"))


class Manager(BaseUser):
    """A logged-in manager: change lists with duplicate counts, cards with badges, the compare screen."""

    weight = int(os.environ.get("BENCH_MANAGER_WEIGHT", "4"))
    wait_time = between(*MANAGER_THINK_SECONDS)
    # FastHttpUser follows redirects as HttpUser does (a merged customer's card leads to the one it became), but
    # its response's url is the URL asked for: a redirect to the login page is told by the page (page() below).

    def on_start(self):
        if SESSIONS:  # logged in before the run (bench_load.py): one session of its own per manager
            cookie, key = os.environ.get("BENCH_SESSION_COOKIE", "sessionid"), SESSIONS.pop()
            if FAST:  # in the jar, so the cookie goes with a followed redirect too (a merged customer's card)
                from urllib.parse import urlsplit

                from requests.cookies import create_cookie

                self.client.cookiejar.set_cookie(create_cookie(cookie, key, domain=urlsplit(self.host).hostname))
            else:
                self.client.cookies.set(cookie, key)
            return
        if FAST:
            raise RuntimeError("logging in through the form needs BENCH_CLIENT=requests")
        self.client.get("/admin/login/", name="login")
        self.client.post(
            "/admin/login/?next=/admin/",
            {
                "username": os.environ["BENCH_USERNAME"],
                "password": os.environ["BENCH_PASSWORD"],
                "csrfmiddlewaretoken": self.client.cookies.get("csrftoken", ""),
                "next": "/admin/",
            },
            headers={"Referer": f"{self.host}/admin/login/"},
            name="login",
        )

    def page(self, url: str, name: str) -> None:
        """GET an admin page; anything but the page itself (an error, the login page) counts as a failure."""
        with self.client.get(url, name=name, catch_response=True) as response:
            if (response.status_code != 200 or "/admin/login/" in (response.url or "")
                    or b'id="login-form"' in (response.content or b"")):
                response.failure(f"{response.status_code} at {response.url}")

    @task(3)
    def change_list(self):
        page = random.randrange(1, CHANGE_LIST_PAGES + 1)  # the admin counts pages from 1 (p=0 redirects)
        self.page(f"/admin/crm/customer/?p={page}", "change list")

    @task(4)
    def card(self):
        # One in ten cards is a planted duplicate, whose badges say so.
        pk = random.randrange(1, CUSTOMERS + 1) if random.random() < 0.9 else 20 * random.randrange(1, PAIRS_BELOW // 20)
        self.page(f"/admin/crm/customer/{pk}/change/", "card")

    @task(1)
    def compare(self):
        second = 20 * random.randrange(1, PAIRS_BELOW // 20)
        first = second - 1
        self.page(f"/admin/crm/customer/{first}/compare/?records={first}&records={second}&priority={first}", "compare")


class Integration(BaseUser):
    """A web form or messenger bot posting leads: mostly new people, some returning customers."""

    weight = int(os.environ.get("BENCH_INTEGRATION_WEIGHT", "1"))
    wait_time = constant_throughput(INTAKE_PER_USER_PER_SECOND)

    def __init__(self, environment):
        # The API's own server (Procfile.prod's api) when it has one; Locust sets every class's host to --host.
        if os.environ.get("BENCH_API_HOST"):
            self.host = os.environ["BENCH_API_HOST"]
        super().__init__(environment)

    def on_start(self):
        self.auth = {"Authorization": f"Token {os.environ['BENCH_TOKEN']}"}
        self.sent = 0

    @task
    def intake(self):
        self.sent += 1
        if random.random() < 0.25:  # a customer of the base writes again
            i = random.randrange(1, CUSTOMERS + 1)
            body = {"name": "Back Again", "phones": [f"+7912{i:07d}"], "emails": [f"customer{i}@example.com"]}
        else:
            n = random.randrange(10**7)
            body = {"name": "New Person", "phones": [f"+7916{n:07d}"], "emails": [f"new{RUN}.{n}@example.net"]}
        with self.client.post("/api/leads/", json=body, headers=self.auth, name="intake",
                              catch_response=True) as response:
            if response.status_code in (200, 201):
                response.success()
