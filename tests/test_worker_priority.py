"""A background worker runs below the web's CPU priority, and so do its PostgreSQL backends, without parallel query
(WORKER_CPU_PRIORITY, config/worker_priority.py): its work yields the cores to requests."""
import os
import subprocess
import sys

import pytest
from django.db import connection, connections

from config.worker_priority import LOCAL_HOSTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _backend(priority: str, settings) -> tuple[int, int, str]:
    """Open a new connection as a worker started with WORKER_CPU_PRIORITY=priority; return its backend's
    scheduling class, niceness and parallel-query setting."""
    settings.WORKER_CPU_PRIORITY = priority
    worker = connections.create_connection("default")
    try:
        worker.ensure_connection()
        with worker.cursor() as cursor:
            cursor.execute("SHOW max_parallel_workers_per_gather")
            parallel = cursor.fetchone()[0]
        pid = worker.connection.info.backend_pid
        return os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid), parallel
    finally:
        worker.close()


@pytest.mark.django_db
def test_worker_priority_backends_of_background_workers_yield_to_requests(settings):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's backends are processes of their own")
    if (connection.settings_dict.get("HOST") or "") not in LOCAL_HOSTS or os.geteuid() != 0:
        pytest.skip("setting another user's process needs the database on this host and root")
    # given a web process (no setting): its backend keeps the server's class, priority and parallel query
    policy, nice, parallel = _backend("", settings)
    assert (policy, nice) == (os.SCHED_OTHER, 0) and parallel != "0"
    # when the interactive worker (5) and the bulk one (idle) connect, their backends run at their priority
    assert _backend("5", settings) == (os.SCHED_OTHER, 5, "0")
    assert _backend("idle", settings)[0::2] == (os.SCHED_IDLE, "0")


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux's scheduling classes")
@pytest.mark.parametrize(("priority", "expected"), [("idle", (os.SCHED_IDLE, 0)), ("7", (os.SCHED_OTHER, 7))])
def test_worker_priority_worker_process_starts_below_the_web(priority, expected):
    # given a Celery worker process started with WORKER_CPU_PRIORITY (in a process of its own: it cannot go back)
    code = (
        "import os, django; django.setup()\n"
        "from celery.signals import worker_init\n"
        "import config\n"
        "worker_init.send(sender=None)\n"
        "print(os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))"
    )
    env = {**os.environ, "WORKER_CPU_PRIORITY": priority, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    # when the worker starts, then it runs at that priority
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert tuple(int(value) for value in output.stdout.split()) == expected
