"""The worker loop behind `tasks_worker` (and, without Redis, inside the server).

A plain loop in the manner of healthchecks' `sendalerts`: each pass turns
overdue tasks into `timeout`, then claims every dispatchable task (new ones
whose process died before dispatching, and retries that are due) and hands it
to the same bounded dispatch pool the request path uses. A pass never waits
on n8n, so one hanging n8n delays neither timeouts nor other dispatches.
Claims are atomic conditional UPDATEs, so any number of workers and web
processes dispatch a task once. Stops between passes when asked (SIGTERM).
"""

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from observability import metrics

from . import lifecycle, pool
from .models import AsyncTask, WorkerHeartbeat
from .outbound import dispatch, reconcile

logger = logging.getLogger(__name__)

BATCH_SIZE = 50
# How long a stopping worker waits for the dispatches it started (seconds).
STOP_GRACE_SECONDS = 10


WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


def beat(now=None) -> None:
    """Record that this worker is alive (read by /healthz)."""
    now = now or timezone.now()
    WorkerHeartbeat.objects.update_or_create(name=WORKER_NAME, defaults={"beat_at": now})


def heartbeat_age(now=None) -> float | None:
    """Seconds since the newest heartbeat of any worker; None when none ever beat."""
    newest = WorkerHeartbeat.objects.order_by("-beat_at").values_list("beat_at", flat=True).first()
    if newest is None:
        return None
    return ((now or timezone.now()) - newest).total_seconds()


class Worker:
    def __init__(self, poll_seconds=None):
        self.poll_seconds = (
            settings.TASKS_WORKER_POLL_SECONDS if poll_seconds is None else poll_seconds
        )
        self.stopping = threading.Event()
        self.thread = None

    def stop(self, *_args):
        self.stopping.set()

    def run_once(self, inline=True) -> dict:
        """One pass. Returns what it did: {"expired": n, "dispatched": n, ...}.

        `inline` (cron's `--once`, tests): dispatch the due tasks one after
        the other in this thread and count their outcomes. The loop instead
        hands them to the bounded pool and goes on at once. A finished pass
        beats the heartbeat metric.
        """
        started = time.monotonic()
        counts = self._pass(inline)
        metrics.record_worker_pass(time.monotonic() - started)
        return counts

    def _pass(self, inline) -> dict:
        beat()
        counts = {"expired": lifecycle.expire_overdue(), "dispatched": 0, "retry": 0, "failed": 0}
        if not inline:
            counts["started"] = len(dispatch.dispatch_due(BATCH_SIZE))
            counts["reconciling"] = reconcile.schedule()
            return counts
        if reconcile.enabled():
            for task_id in list(
                reconcile.due().values_list("pk", flat=True)[: reconcile.BATCH_SIZE]
            ):
                counts.setdefault("reconciled", 0)
                counts["reconciled"] += reconcile.reconcile_task(task_id) != "skipped"
        due = AsyncTask.objects.dispatchable().order_by("created_at", "id")
        for task_id in list(due.values_list("pk", flat=True)[:BATCH_SIZE]):
            if self.stopping.is_set():
                break
            outcome = dispatch.claim_and_dispatch(task_id)
            if outcome in counts:
                counts[outcome] += 1
        return counts

    def run_forever(self):
        logger.info("tasks worker started (poll every %ss)", self.poll_seconds)
        while not self.stopping.is_set():
            try:
                close_old_connections()  # a long-lived loop, like a request cycle
                counts = self.run_once(inline=False)
                if counts["expired"] or counts["started"] or counts["reconciling"]:
                    logger.info("tasks worker: %s", counts)
            except Exception:
                logger.exception("tasks worker pass failed; trying again")
            self.stopping.wait(self.poll_seconds)
        if not pool.wait_until_idle(STOP_GRACE_SECONDS):
            logger.warning("tasks worker stopping with dispatches still in flight")
        connections.close_all()
        logger.info("tasks worker stopped")


# The worker a server process runs in a daemon thread (None until it starts).
in_process: Worker | None = None
_in_process_lock = threading.Lock()


def start_in_process_worker() -> Worker:
    """Run the worker loop in a daemon thread of the server process (idempotent)."""
    global in_process
    with _in_process_lock:
        if in_process is None:
            in_process = Worker()
            in_process.thread = threading.Thread(
                target=in_process.run_forever, name="tasks-worker", daemon=True
            )
            in_process.thread.start()
        return in_process
