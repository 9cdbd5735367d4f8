"""Real Celery workers for the tests: threads of this process on the configured broker (Redis in CI, files
locally), the one way every worker test starts them."""
from contextlib import ExitStack, contextmanager

from celery.contrib.testing.worker import start_worker
from kombu.asynchronous import set_event_loop

from config.celery import app


def broker_empty() -> None:
    """Empty the broker's queues, and forget the messages taken by workers that were killed (the fault tests kill
    them with SIGKILL). On Redis those come back to their queues once the visibility timeout has passed, so a
    worker started half an hour after an earlier run would run that run's merges and refreshes first, against
    this test's database."""
    app.control.purge()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        taken = [getattr(channel, name, None) for name in ("unacked_key", "unacked_index_key")]
        if all(taken):  # the Redis transport; the filesystem broker of a test run starts in a folder of its own
            channel.client.delete(*taken)


@contextmanager
def tasks_through_the_broker():
    """Tasks go through the real broker instead of running eagerly, and it starts empty (broker_empty)."""
    app.conf.task_always_eager = False
    try:
        broker_empty()
        yield
    finally:
        app.conf.task_always_eager = True


@contextmanager
def worker_threads(*queues: list[str], shutdown_timeout: float = 30):
    """Real worker threads, one per list of queues (one on every queue when none is given)."""
    try:
        with ExitStack() as stack:
            for names in queues or [None]:
                # Each worker its own event loop. A worker takes kombu's process-wide loop when one is set, so a
                # second worker thread would run the first one's hub too: two threads polling the same sockets, one
                # blocked reading the other's (the merge never received, or a worker that cannot stop). In production
                # every worker is a process of its own.
                set_event_loop(None)
                options = {"queues": names, "hostname": f"{'-'.join(names)}@test"} if names else {}
                last = stack.enter_context(
                    start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=shutdown_timeout,
                                 **options)
                )
            yield last
    finally:
        # A worker's queues are selected on the app's own list: the next test's worker consumes every queue again.
        app.amqp.queues.select(list(app.amqp.queues))
