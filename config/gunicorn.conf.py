"""gunicorn's settings for the production stack (`gunicorn config.wsgi -c config/gunicorn.conf.py`; Procfile.prod).

The choice, measured on the 2-core machine under bench/bench_load.py (bench/README.md, "The production stack
under load"):
- **gthread workers, WEB_CONCURRENCY processes x WEB_THREADS threads** (default 3 x 4). The work is CPU-bound
  Python (rendering a card), so threads add no CPU, but they keep short requests from queueing behind long ones:
  with sync workers an intake post (10 ms) waits for a whole card or change list (40-80 ms) whenever every
  process is busy; with threads it is accepted at once and interleaves with them. Two or three processes use both
  cores (the GIL holds one per process) while the others wait on PostgreSQL.
- **The intake API on a gunicorn of its own** (Procfile.prod's `api`: the same file with WEB_PORT=API_PORT 8001,
  WEB_CONCURRENCY=API_CONCURRENCY 2 and WEB_THREADS=API_THREADS 2; a proxy sends `/api/` there, or the
  integrations are given its address). In one process an intake post waits for the GIL behind a card or a
  change list another thread renders: each of its ten round trips to PostgreSQL ends with a wait of up to one
  switch interval (5 ms) for the GIL, and keep-alive pins an integration's connection to one process, so its posts
  meet the renders of the managers pinned there. In a process of its own the post waits only for a core, which
  the kernel's scheduler gives at once to a thread waking from PostgreSQL (wakeup preemption), something the GIL
  does not do. Under the 5-minute load (bench/README.md, 2026-12-06 09:10-10:40, runs with and without it in turn
  on the shared machine): the intake's server p95 158-216 ms against 260-296 ms, its time inside the statements
  (the GIL waits after each answer) p95 110-159 against 201-223 ms, the cards no slower; on the quiet machine
  (10:28-10:38) server p95 35.4 against 44.0 ms, client 42 against 49 ms.
  Two processes of two threads: about 6 posts a second of 8 to 10 ms CPU each keep one process a tenth busy, and
  two threads let a post in while another waits for PostgreSQL on the same connection's process. A shorter
  switch interval instead (1 ms, `sys.setswitchinterval`) made no difference measurable on the quiet machine
  (04:20 run) and costs the renders.
- **The app is loaded once in the master (preload_app)** and forked: a worker recycled by max_requests (a guard
  against slow leaks) is back in milliseconds instead of importing Django again on a busy machine. The master
  must hold no database connection when it forks: `when_ready` closes any it opened (and its pool).
- **Database connections**: production.py gives each process a psycopg pool of at most DATABASE_POOL_MAX_SIZE
  connections, by default one per thread (WEB_THREADS), so no thread waits for a connection; the stack's total is
  processes x threads (the API's server too) + workers + beat (about 25 here), far below PostgreSQL's 100.
Command-line options win over these (`gunicorn ... --workers 2`).
"""
import os

bind = f"{os.environ.get('WEB_HOST', '127.0.0.1')}:{os.environ.get('WEB_PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "4"))
preload_app = True
timeout = 60
graceful_timeout = 30
keepalive = 5  # Locust and browsers keep their connection: no new TCP handshake per request
max_requests = 2000
max_requests_jitter = 200


def when_ready(server):
    """Close the master's database connections (and pools) before the first fork: children open their own."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close()
        if getattr(connection, "_connection_pools", {}).get(connection.alias) is not None:
            connection.close_pool()
