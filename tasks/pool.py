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
    pool, slots = _dispatch_pool()
    if not slots.acquire(blocking=False):
        return None

    def run():
        try:
            return function(task_id)
        except Exception:
            logger.exception("pool job for task %s failed; the worker will retry it", task_id)
            return None
        finally:
            slots.release()
            connections.close_all()  # this thread's connections (back to the pool on PG)

    try:
        return pool.submit(run)
    except RuntimeError:  # the interpreter is shutting down
        slots.release()
        return None


def run_in_pool(function, task_id) -> Future | None:
    """Run other short n8n work of a task (e.g. Stop's API call) on the same
    bounded pool, off the request path; None when the pool is full."""
    future = submit(function, task_id)
    if future is None:
        logger.warning("dispatch pool full: %s of task %s skipped", function.__name__, task_id)
    return future
