"""The bounded thread pool that sends tasks to n8n and asks n8n's API.

Shared by the request path (a task dispatched right after its commit), the
worker (due tasks and retries, reconciliation) and nothing else: at most
TASK_DISPATCH_THREADS threads, at most TASK_DISPATCH_QUEUE_MAX waiting jobs;
beyond that a job is refused and the database keeps the task for the worker's
next pass. A thread holds no database connection while it waits on n8n.
"""

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

_pool: ThreadPoolExecutor | None = None
_slots: threading.BoundedSemaphore | None = None
_pool_lock = threading.Lock()
# Jobs handed to the pool and not yet finished, and a condition to wait on them.
_in_flight = 0
_idle = threading.Condition()


def _dispatch_pool():
    global _pool, _slots
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.TASK_DISPATCH_THREADS, thread_name_prefix="task-dispatch"
            )
            _slots = threading.BoundedSemaphore(settings.TASK_DISPATCH_QUEUE_MAX)
        return _pool, _slots


def submit(function, task_id) -> Future | None:
    """Run function(task_id) on the pool; None when the pool is full."""
    global _in_flight
    pool, slots = _dispatch_pool()
    if not slots.acquire(blocking=False):
        return None
    with _idle:
        _in_flight += 1

    def run():
        try:
            return function(task_id)
        except Exception:
            logger.exception("pool job for task %s failed; the worker will retry it", task_id)
            return None
        finally:
            slots.release()
            connections.close_all()  # this thread's connections (back to the pool on PG)
            _finished()

    try:
        return pool.submit(run)
    except RuntimeError:  # the interpreter is shutting down
        slots.release()
        _finished()
        return None


def _finished() -> None:
    global _in_flight
    with _idle:
        _in_flight -= 1
        if not _in_flight:
            _idle.notify_all()


def wait_until_idle(timeout: float) -> bool:
    """Wait until every job handed to the pool has finished, at most `timeout`
    seconds; True when none is left. The worker calls it when it stops, so
    a dispatch in flight records its outcome before the process exits; the
    test suite calls it after each test, so no job outlives its test's data."""
    with _idle:
        return _idle.wait_for(lambda: not _in_flight, timeout)


def run_in_pool(function, task_id) -> Future | None:
    """Run other short n8n work of a task (e.g. Stop's API call) on the same
    bounded pool, off the request path; None when the pool is full."""
    future = submit(function, task_id)
    if future is None:
        logger.warning("dispatch pool full: %s of task %s skipped", function.__name__, task_id)
    return future
