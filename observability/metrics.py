"""Prometheus metrics: the metric objects and the small `record_*` functions
the rest of the code calls. `/metrics` (views.metrics) serves them.

Several processes (Daphne processes, `tasks_worker`) each count what they do.
With `PROMETHEUS_MULTIPROC_DIR` set (before the process starts), every process
writes its values to files in that directory and `/metrics` in any process
sums them all (prometheus_client's multiprocess mode); the directory must be
emptied before the processes start (see docs/OPERATIONS.md, "Metrics"). Without it,
each process serves its own counters only: fine for one process.

Every `record_*` function is cheap (an in-memory or mmap'd file update) and
never raises into its caller: metrics must not break a dispatch or a callback.
"""

import atexit
import logging
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

logger = logging.getLogger(__name__)

NAMESPACE = "chatproject"
# Seconds: from a few milliseconds (local n8n, a callback's frame) to the
# dispatch read time-out.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
WORKER_PASS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

TASKS_CREATED = Counter(
    "tasks_created", "Tasks created, by task type.", ["task_type"], namespace=NAMESPACE
)
TASKS_FINISHED = Counter(
    "tasks_finished",
    "Tasks that reached a terminal status (completed, failed, timeout, cancelled).",
    ["task_type", "status"],
    namespace=NAMESPACE,
)
DISPATCH_ATTEMPTS = Counter(
    "task_dispatch_attempts",
    "Dispatch attempts to n8n by outcome: accepted (2xx), refused (4xx), retryable "
    "(connection error, time-out, 5xx).",
    ["outcome"],
    namespace=NAMESPACE,
)
DISPATCH_LATENCY = Histogram(
    "task_dispatch_latency_seconds",
    "Duration of one dispatch attempt: the POST to n8n's webhook until its answer (or the error).",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
    namespace=NAMESPACE,
)
CALLBACKS = Counter(
    "task_callbacks",
    "Answers of the callback webhook (POST /tasks/{id}/webhook/) by HTTP status code.",
    ["code"],
    namespace=NAMESPACE,
)
CALLBACK_PUBLISH_LATENCY = Histogram(
    "task_callback_publish_latency_seconds",
    "From a callback's arrival to its task.status frame handed to the channel layer.",
    buckets=LATENCY_BUCKETS,
    namespace=NAMESPACE,
)
WEBSOCKETS_OPEN = Gauge(
    "websockets_open",
    "Websockets open now, by endpoint (chat, tasks); summed over live processes.",
    ["endpoint"],
    multiprocess_mode="livesum",
    namespace=NAMESPACE,
)
STREAMS_OPEN = Gauge(
    "task_streams_open",
    "Streamed n8n answers being read now; summed over live processes.",
    multiprocess_mode="livesum",
    namespace=NAMESPACE,
)
WORKER_PASS = Histogram(
    "tasks_worker_pass_seconds",
    "Duration of one pass of the tasks worker (expire overdue, dispatch due tasks).",
    buckets=WORKER_PASS_BUCKETS,
    namespace=NAMESPACE,
)
WORKER_HEARTBEAT = Gauge(
    "tasks_worker_heartbeat_timestamp_seconds",
    "Unix time at which a tasks worker last finished a pass (the newest of all workers, "
    "dead ones included: its age is what to alert on).",
    multiprocess_mode="max",
    namespace=NAMESPACE,
)


def _safely(record):
    def wrapper(*args, **kwargs):
        try:
            record(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a metric never breaks the work it counts
            logger.exception("recording the metric %s failed", record.__name__)

    wrapper.__name__ = record.__name__
    wrapper.__doc__ = record.__doc__
    return wrapper


@_safely
def record_task_created(task_type: str) -> None:
    TASKS_CREATED.labels(task_type=task_type).inc()


@_safely
def record_task_finished(task_type: str, status: str) -> None:
    """Call once per task, when it enters a terminal status."""
    TASKS_FINISHED.labels(task_type=task_type, status=status).inc()


@_safely
def record_dispatch_attempt(outcome: str, seconds: float) -> None:
    """outcome: "accepted", "refused" or "retryable" (the dispatcher's own words)."""
    DISPATCH_ATTEMPTS.labels(outcome=outcome).inc()
    DISPATCH_LATENCY.labels(outcome=outcome).observe(seconds)


@_safely
def record_callback(status_code: int) -> None:
    CALLBACKS.labels(code=str(status_code)).inc()


@_safely
def record_callback_publish(seconds: float) -> None:
    CALLBACK_PUBLISH_LATENCY.observe(seconds)


@_safely
def record_websocket_opened(endpoint: str) -> None:
    WEBSOCKETS_OPEN.labels(endpoint=endpoint).inc()


@_safely
def record_websocket_closed(endpoint: str) -> None:
    WEBSOCKETS_OPEN.labels(endpoint=endpoint).dec()


@_safely
def record_stream_opened() -> None:
    STREAMS_OPEN.inc()


@_safely
def record_stream_closed() -> None:
    STREAMS_OPEN.dec()


@_safely
def record_worker_pass(seconds: float) -> None:
    """A finished worker pass: its duration, and the heartbeat (now)."""
    WORKER_PASS.observe(seconds)
    WORKER_HEARTBEAT.set(time.time())


def multiprocess_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def exposition() -> tuple[bytes, str]:
    """The text format for /metrics: every process's values in multiprocess
    mode, this process's otherwise."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_this_process():
    """At exit, drop this process's live gauges (open websockets, streams), so a
    stopped process does not keep counting; counters and histograms stay."""
    if multiprocess_dir():
        try:
            multiprocess.mark_process_dead(os.getpid())
        except Exception:  # noqa: BLE001 - at exit, nothing to do about it
            pass


atexit.register(_forget_this_process)
