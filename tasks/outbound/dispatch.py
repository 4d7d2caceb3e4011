"""Sending tasks to their workflows: claim, send, record the answer, back off.

A task is claimed with one conditional UPDATE (exactly one of any number of
racing processes wins), sent by a thread of a small bounded pool that holds no
database connection while it waits on n8n, and the answer is recorded through
the door (`tasks.door.change`), which never moves a task backwards: n8n's
first callback can land before the answer is read, and then the callback wins.
"""

import enum
import functools
import json
import logging
import random
import time
from concurrent.futures import Future
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.db import connections, transaction
from django.urls import reverse
from django.utils import timezone

from n8n import webhooks as n8n
from n8n.webhooks import DispatchResult, Outcome
from observability import metrics

from .. import callbacks, door, executions, registry
from ..door import TaskConflict
from ..models import AsyncTask, EventSource, TaskStatus, TaskWords
from ..pool import submit
from . import streaming

logger = logging.getLogger(__name__)

# How many dispatch attempts metadata["attempts"] keeps (the newest).
ATTEMPT_HISTORY_MAX = 20


class Recorded(enum.StrEnum):
    DISPATCHED = "dispatched"
    RETRY = "retry"
    FAILED = "failed"
    IGNORED = "ignored"  # the task had moved on (a callback got there first)


# A request's dispatches wait until its response has been handed to the
# server: the answer to the person who sent leaves first, before the
# dispatch's work competes with it for the process. Outside a request (the
# worker, the shell, a websocket consumer) a dispatch is handed to the pool at once.
_after_response: ContextVar[list | None] = ContextVar("dispatch_after_response", default=None)


class DispatchAfterResponseMiddleware:
    """Holds the dispatches a request asks for until its response is sent.

    Sync only, so it runs in the request's thread, where the view and its
    commit hooks see what it sets. The held dispatches go to the pool from
    the response's `close()`, which the server calls once the last byte is
    out (Daphne, a WSGI server, Django's test client). Django's
    `request_started` cannot carry this under ASGI: it is sent from a task of
    its own there, whose context the request never sees. A response that is
    never closed (the client went away) leaves its tasks pending for the worker.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        held = []
        token = _after_response.set(held)
        try:
            response = self.get_response(request)
        finally:
            _after_response.reset(token)
        if held:
            response._resource_closers.append(functools.partial(_release, held))
        return response


def _release(held) -> None:
    for task_id in held:
        _submit_dispatch(task_id)
    held.clear()


def schedule_dispatch(task_id) -> Future | None:
    """Hand a committed pending task to the pool, off the request path (in a
    request: once its response is sent; then None is returned).

    When the pool is full (or the process dies first, or the response is
    never sent) the task simply stays pending and the worker dispatches it:
    the database is what is durable.
    """
    held = _after_response.get()
    if held is not None:
        held.append(task_id)
        return None
    return _submit_dispatch(task_id)


def _submit_dispatch(task_id) -> Future | None:
    future = submit(claim_and_dispatch, task_id)
    if future is None:
        logger.warning("dispatch pool full: task %s is left for the worker", task_id)
    return future


def dispatch_due(limit) -> list[Future]:
    """The worker's share: claim due tasks here, send them on the pool.

    Claiming before queueing means a task waits in the queue at most once; a
    claim that finds the pool full is released at once for a later pass.
    """
    futures = []
    due = AsyncTask.objects.dispatchable().order_by("created_at", "id")
    for task_id in due.values_list("pk", flat=True)[:limit]:
        if not claim(task_id):
            continue
        future = submit(_dispatch_claimed, task_id)
        if future is None:
            door.note(task_id, claimed_until=None)
            break
        futures.append(future)
    return futures


# --- claiming and sending ----------------------------------------------------------


def claim(task_id, now=None) -> bool:
    """Atomically take a dispatchable task for one attempt (bookkeeping only)."""
    lease = timedelta(seconds=settings.TASK_DISPATCH_LEASE_SECONDS)
    return door.claim(task_id, now or timezone.now(), lease)


def claim_and_dispatch(task_id) -> Recorded | None:
    """Claim, then dispatch. Returns the recorded outcome, or None when not claimed."""
    if not claim(task_id):
        return None
    return _dispatch_claimed(task_id)


def _dispatch_claimed(task_id) -> Recorded | None:
    task = AsyncTask.objects.filter(pk=task_id).first()
    return dispatch(task) if task is not None else None


def callback_url(task_id) -> str:
    return settings.PUBLIC_BASE_URL + reverse("tasks:webhook", args=[task_id])


def dispatch_input(task):
    """The task's `input`: its type's `dispatch_input` when it has one."""
    kind = registry.get(task.task_type)
    if kind is not None and kind.dispatch_input is not None:
        return kind.dispatch_input(task)
    return task.input_data


def dispatch_body(task) -> dict:
    """The JSON a workflow receives (docs/PROTOCOL.md, "Dispatch")."""
    return {
        "task_id": task.pk,
        "task_type": task.task_type,
        "workflow_id": task.workflow_id,
        "input": dispatch_input(task),
        "callback_url": callback_url(task.pk),
        "callback_token": callbacks.make_token(task.pk),
        "timeout_seconds": task.timeout_seconds,
    }


def dispatch_headers(task) -> dict:
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"task-{task.pk}"}
    if settings.N8N_WEBHOOK_SECRET:
        headers["Authorization"] = f"Bearer {settings.N8N_WEBHOOK_SECRET}"
    return headers


def send(task) -> DispatchResult:
    """POST the dispatch to n8n, or to the development runner without N8N_BASE_URL."""
    body, headers = dispatch_body(task), dispatch_headers(task)
    if not settings.N8N_BASE_URL:
        from n8n import devrunner

        status_code, data = devrunner.accept(body, headers)
        return n8n.classify(status_code, json.dumps(data))
    url = n8n.webhook_url(task.workflow_id)
    if not settings.TASK_STREAM_READER:
        return n8n.post(url, body, headers)  # the same request, read plainly here
    # A streamed answer is read until the task's deadline at the latest.
    remaining = max((task.deadline - timezone.now()).total_seconds(), 1.0)
    return streaming.post(url, body, headers, task.pk, remaining, STREAM_HOOKS)


def dispatch(task) -> Recorded:
    """Send a claimed task and record the result."""
    # While waiting on n8n (up to the read time-out) hold no database
    # connection: on PostgreSQL it goes back to the pool for requests to use.
    connection = connections[AsyncTask.objects.db]
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        connection.close()
    started = time.monotonic()
    result = send(task)
    seconds = time.monotonic() - started
    metrics.record_dispatch_attempt(str(result.outcome), seconds)
    recorded = record_dispatch(task.pk, result)
    logger.log(
        logging.INFO if result.outcome == Outcome.ACCEPTED else logging.WARNING,
        "dispatch of task %s: %s",
        task.pk,
        result.outcome,
        extra={
            "event": "task.dispatch",
            "task_id": task.pk,
            "workflow_id": task.workflow_id,
            "attempt": task.attempts,
            "outcome": str(result.outcome),
            "recorded": str(recorded),
            "http_status": result.http_status,
            "execution_id": result.execution_id,
            "duration_ms": round(seconds * 1000, 1),
            "error": result.error,
        },
    )
    return recorded


def backoff_seconds(attempt) -> float:
    """Exponential backoff with jitter ("equal jitter": half fixed, half random)."""
    delay = min(
        settings.TASK_DISPATCH_BACKOFF_SECONDS * (2 ** max(attempt - 1, 0)),
        settings.TASK_DISPATCH_BACKOFF_MAX_SECONDS,
    )
    return delay / 2 + random.uniform(0, delay / 2)


def with_attempt(metadata, attempt) -> dict:
    metadata = dict(metadata or {})
    history = metadata.get("attempts")
    history = list(history) if isinstance(history, list) else []
    history.append(attempt)
    metadata["attempts"] = history[-ATTEMPT_HISTORY_MAX:]
    return metadata


# Of a task's timeout, this share (at most RETRY_RESERVE_MAX seconds) is kept
# for the workflow's own work: no retry is sent later than that before the
# deadline, so a reply does not arrive after its task timed out.
RETRY_RESERVE_SHARE = 0.25
RETRY_RESERVE_MAX = 30.0


def error_details(result, **extra) -> dict:
    """A failed dispatch's `error_details`: for the admin, never the page."""
    return {
        "stage": "dispatch",
        "kind": str(result.kind),
        "http_status": result.http_status,
        "body": result.body,
        "error": result.error,
        **extra,
    }


def next_attempt_at(task, now):
    """When to try again: after the backoff, but at the latest while the
    workflow still has time to answer; None when that time has passed (or
    TASK_DISPATCH_MAX_ATTEMPTS is set and reached)."""
    cap = settings.TASK_DISPATCH_MAX_ATTEMPTS
    if cap and task.attempts >= cap:
        return None
    reserve = min(task.timeout_seconds * RETRY_RESERVE_SHARE, RETRY_RESERVE_MAX)
    latest = task.deadline - timedelta(seconds=reserve)
    if now >= latest:
        return None
    return min(now + timedelta(seconds=backoff_seconds(task.attempts)), latest)


def planned_attempts(task, now, next_attempt) -> int:
    """How many attempts a task gets in all, if none succeeds: the cap when
    TASK_DISPATCH_MAX_ATTEMPTS is set, otherwise those made so far, the next
    one and those the time left before the last moment allows (each after
    its backoff without the jitter's random half, so an estimate)."""
    cap = settings.TASK_DISPATCH_MAX_ATTEMPTS
    if cap:
        return cap
    reserve = min(task.timeout_seconds * RETRY_RESERVE_SHARE, RETRY_RESERVE_MAX)
    latest = task.deadline - timedelta(seconds=reserve)
    attempts, at = task.attempts + 1, next_attempt
    while at < latest and attempts < 1000:
        delay = min(
            settings.TASK_DISPATCH_BACKOFF_SECONDS * (2 ** max(attempts - 1, 0)),
            settings.TASK_DISPATCH_BACKOFF_MAX_SECONDS,
        )
        at = min(at + timedelta(seconds=delay * 0.75), latest)
        attempts += 1
    return attempts


def record_dispatch(task_id, result: DispatchResult) -> Recorded:
    """Record a dispatch answer through the door, without moving the task back."""
    now = timezone.now()
    with transaction.atomic():
        task = AsyncTask.objects.select_for_update().filter(pk=task_id).first()
        if task is None:
            return Recorded.IGNORED
        book = {
            "metadata": with_attempt(task.metadata, result.as_attempt(task.attempts, now)),
            "claimed_until": None,
        }
        if result.execution_id and not task.n8n_execution_id:
            book["n8n_execution_id"] = result.execution_id
        if result.outcome == Outcome.ACCEPTED:
            book.update(last_error="", next_attempt_at=None)
        else:
            book["last_error"] = result.error
        if task.status != TaskStatus.PENDING:
            door.note(task.pk, **book)  # a callback got there first: it wins
            return Recorded.IGNORED
        change = {"source": EventSource.DISPATCH, "expect_version": task.version, **book}
        if result.outcome == Outcome.ACCEPTED:
            door.change(
                task.pk,
                status=TaskStatus.PROCESSING,
                current_step="dispatched",
                status_message="",
                **change,
            )
            return Recorded.DISPATCHED
        next_attempt = next_attempt_at(task, now)
        if result.outcome != Outcome.REFUSED and next_attempt is not None:
            words = TaskWords.retrying(
                answered=result.http_status is not None,
                attempt=task.attempts + 1,
                attempts=planned_attempts(task, now, next_attempt),
            )
            door.change(task.pk, status_message=words, next_attempt_at=next_attempt, **change)
            return Recorded.RETRY
        if result.outcome == Outcome.REFUSED:
            words = TaskWords.REFUSED
        elif result.http_status is not None:
            words = TaskWords.ANSWERED_WITH_ERROR
        else:
            words = TaskWords.UNREACHABLE
        door.change(
            task.pk,
            status=TaskStatus.FAILED,
            status_message=words,
            error_details=error_details(result, attempts=task.attempts),
            **change,
        )
        return Recorded.FAILED


def fail_late_refusal(task_id, result) -> bool:
    """A streamed answer counted as accepted began with an `error` chunk after
    the dispatcher stopped waiting for its first line: the workflow refused the
    task (or failed before writing anything). Fails an unfinished task like a
    refused dispatch; False when it had moved on."""
    try:
        door.change(
            task_id,
            source=EventSource.DISPATCH,
            status=TaskStatus.FAILED,
            status_message=TaskWords.REFUSED,
            error_details=error_details(result),
            last_error=result.error,
        )
    except (TaskConflict, AsyncTask.DoesNotExist):
        return False
    return True


# What a stream's reader calls beyond writing its text.
STREAM_HOOKS = streaming.StreamHooks(
    execution_id=executions.learn_execution_id, refused=fail_late_refusal
)
