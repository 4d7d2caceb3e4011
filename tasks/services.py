"""State changes of tasks: create, dispatch, apply a callback, expire.

Called by views, the admin, the worker and tests alike. Every change is made
with the task's row locked (a real row lock on PostgreSQL; SQLite's IMMEDIATE
transactions serialise writers) and a conditional UPDATE on the version read
under that lock, so nothing moves a task backwards or overwrites a newer step.
Every change bumps `version` and is published for the live layer after the
commit (`live.publish_task`).
"""

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import requests
from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from . import live, registry, tokens
from .models import ALLOWED_TRANSITIONS, AsyncTask, TaskStatus

logger = logging.getLogger(__name__)

# How many dispatch attempts metadata["attempts"] keeps (the newest).
ATTEMPT_HISTORY_MAX = 20
# How much of an answer's body error_details keeps.
BODY_EXCERPT_CHARS = 500
CALLBACK_STATUSES = (TaskStatus.PROCESSING, TaskStatus.COMPLETED, TaskStatus.FAILED)


class CallbackError(ValueError):
    """A callback body the contract refuses: answered 400, nothing changes."""


class TaskConflict(Exception):
    """A callback naming another status for a terminal task: answered 409."""

    def __init__(self, task):
        super().__init__(f"task {task.pk} is already {task.status}")
        self.task = task


# --- creating ---------------------------------------------------------------------


def create_task(*, user, task_type, input_data, metadata=None) -> AsyncTask:
    """Store a pending task and dispatch it right after the commit."""
    kind = registry.get(task_type)
    if kind is None:
        raise ValueError(f"unknown task type {task_type!r}")
    task = AsyncTask.objects.create(
        task_type=task_type,
        workflow_id=kind.get_workflow(),
        input_data=input_data,
        created_by=user,
        metadata=metadata or {},
    )
    live.publish_task(task)
    transaction.on_commit(lambda: schedule_dispatch(task.pk), robust=True)
    return task


# --- the in-process dispatcher -------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_slots: threading.BoundedSemaphore | None = None
_pool_lock = threading.Lock()


def _dispatch_pool():
    global _pool, _pool_slots
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=settings.TASK_DISPATCH_THREADS, thread_name_prefix="task-dispatch"
            )
            _pool_slots = threading.BoundedSemaphore(settings.TASK_DISPATCH_QUEUE_MAX)
        return _pool, _pool_slots


def schedule_dispatch(task_id) -> None:
    """Hand a committed pending task to the dispatcher, off the request path.

    A small bounded pool claims and dispatches it within milliseconds. When the
    pool is full (or the process dies first) the task simply stays pending and
    the worker dispatches it: the database, not this queue, is what is durable.
    """
    pool, slots = _dispatch_pool()
    if not slots.acquire(blocking=False):
        logger.warning("dispatch pool full: task %s is left for the worker", task_id)
        return

    def run():
        try:
            claim_and_dispatch(task_id)
        except Exception:
            logger.exception("dispatch of task %s failed; the worker will retry it", task_id)
        finally:
            slots.release()
            connections.close_all()  # this thread's connections (back to the pool on PG)

    try:
        pool.submit(run)
    except RuntimeError:  # the interpreter is shutting down
        slots.release()


# --- claiming and dispatching --------------------------------------------------------


def claim(task_id, now=None) -> bool:
    """Atomically take a dispatchable task for one dispatch attempt.

    A conditional UPDATE: it matches only while the task is pending, unclaimed
    (or its claim lapsed: a crashed claimer) and due. Exactly one of any number
    of racing web processes and workers gets 1 back.
    """
    now = now or timezone.now()
    lease = timedelta(seconds=settings.TASK_DISPATCH_LEASE_SECONDS)
    updated = (
        AsyncTask.objects.dispatchable(now)
        .filter(pk=task_id)
        .update(
            claimed_until=now + lease,
            attempts=F("attempts") + 1,
            version=F("version") + 1,
            updated_at=now,
        )
    )
    return updated == 1


def claim_and_dispatch(task_id):
    """Claim, then dispatch. Returns the outcome, or None when not claimed."""
    if not claim(task_id):
        return None
    task = AsyncTask.objects.filter(pk=task_id).first()
    if task is None:
        return None
    return dispatch(task)


def callback_url(task_id) -> str:
    return settings.PUBLIC_BASE_URL + reverse("tasks:webhook", args=[task_id])


def task_timeout(task) -> int:
    kind = registry.get(task.task_type)
    return kind.get_timeout() if kind else settings.TASK_TIMEOUT_SECONDS


def dispatch_body(task) -> dict:
    """The JSON n8n receives (CONTRACT.md, "Dispatch")."""
    return {
        "task_id": task.pk,
        "task_type": task.task_type,
        "workflow_id": task.workflow_id,
        "input": task.input_data,
        "callback_url": callback_url(task.pk),
        "callback_token": tokens.make_token(task.pk),
        "timeout_seconds": task_timeout(task),
    }


def dispatch_headers(task) -> dict:
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"task-{task.pk}"}
    if settings.N8N_WEBHOOK_SECRET:
        headers["Authorization"] = f"Bearer {settings.N8N_WEBHOOK_SECRET}"
    return headers


@dataclass
class DispatchResult:
    outcome: str  # "accepted" (2xx), "refused" (4xx and other answers), "retryable"
    http_status: int | None = None
    body: str = ""
    error: str = ""  # plain words, for last_error and the admin
    kind: str = "http"  # "http", "connection" or "timeout"
    execution_id: str = ""

    def as_attempt(self, number, at):
        attempt = {"attempt": number, "at": at.isoformat(), "outcome": self.outcome}
        if self.http_status is not None:
            attempt["http_status"] = self.http_status
        if self.error:
            attempt["error"] = self.error
        if self.execution_id:
            attempt["execution_id"] = self.execution_id
        return attempt


def _execution_id(data) -> str:
    if isinstance(data, dict):
        for key in ("executionId", "execution_id"):
            value = data.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)[:255]
    return ""


def _result_from_answer(status_code, body_text, data) -> DispatchResult:
    excerpt = (body_text or "")[:BODY_EXCERPT_CHARS]
    if 200 <= status_code < 300:
        return DispatchResult("accepted", status_code, excerpt, execution_id=_execution_id(data))
    if status_code >= 500:
        return DispatchResult(
            "retryable", status_code, excerpt, f"n8n answered HTTP {status_code}", "http"
        )
    reason = {
        401: "n8n refused the credentials (check N8N_WEBHOOK_SECRET and the Header Auth)",
        403: "n8n refused the credentials (check N8N_WEBHOOK_SECRET and the Header Auth)",
        404: "n8n has no active workflow at this webhook path (imported but not active?)",
    }.get(status_code, "n8n refused the task")
    return DispatchResult("refused", status_code, excerpt, f"{reason}, HTTP {status_code}")


def send(task) -> DispatchResult:
    """POST the dispatch (to n8n, or to the development runner) and classify the answer."""
    body = dispatch_body(task)
    headers = dispatch_headers(task)
    if not settings.N8N_BASE_URL:
        from . import devrunner

        status_code, data = devrunner.accept(body, headers)
        return _result_from_answer(status_code, str(data), data)
    url = f"{settings.N8N_BASE_URL}/webhook/{task.workflow_id}"
    timeout = (settings.TASK_DISPATCH_CONNECT_TIMEOUT, settings.TASK_DISPATCH_READ_TIMEOUT)
    try:
        response = requests.post(
            url, json=body, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.ConnectTimeout as exc:
        return DispatchResult(
            "retryable", error=f"could not connect to n8n at {url}: {exc}", kind="connection"
        )
    except requests.Timeout:
        return DispatchResult(
            "retryable",
            error=f"n8n did not answer within {settings.TASK_DISPATCH_READ_TIMEOUT:g} s ({url})",
            kind="timeout",
        )
    except requests.RequestException as exc:
        return DispatchResult(
            "retryable", error=f"could not connect to n8n at {url}: {exc}", kind="connection"
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    return _result_from_answer(response.status_code, response.text, data)


def backoff_seconds(attempt) -> float:
    """Exponential backoff with jitter ("equal jitter": half fixed, half random)."""
    delay = min(
        settings.TASK_DISPATCH_BACKOFF_SECONDS * (2 ** max(attempt - 1, 0)),
        settings.TASK_DISPATCH_BACKOFF_MAX_SECONDS,
    )
    return delay / 2 + random.uniform(0, delay / 2)


def dispatch(task) -> str:
    """Send a claimed task and record the result. Returns the recorded outcome:
    "dispatched", "retry", "failed", or "ignored" (the task had moved on)."""
    # While waiting on n8n (up to the read time-out) hold no database
    # connection: on PostgreSQL it goes back to the pool for requests to use.
    connection = connections[AsyncTask.objects.db]
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        connection.close()
    result = send(task)
    return record_dispatch(task.pk, result)


def _with_attempt(metadata, attempt):
    metadata = dict(metadata or {})
    history = metadata.get("attempts")
    history = list(history) if isinstance(history, list) else []
    history.append(attempt)
    metadata["attempts"] = history[-ATTEMPT_HISTORY_MAX:]
    return metadata


def record_dispatch(task_id, result: DispatchResult) -> str:
    """Record a dispatch answer without moving the task backwards.

    n8n's first callback can land before the dispatcher reads the 2xx: whatever
    a callback already recorded wins, so a 2xx only moves a task still pending.
    """
    now = timezone.now()
    max_attempts = settings.TASK_DISPATCH_MAX_ATTEMPTS
    with transaction.atomic():
        task = AsyncTask.objects.select_for_update().filter(pk=task_id).first()
        if task is None:
            return "ignored"
        changes = {
            "metadata": _with_attempt(task.metadata, result.as_attempt(task.attempts, now)),
            "claimed_until": None,
        }
        pending = task.status == TaskStatus.PENDING
        outcome = "ignored"
        error_details = None
        if result.outcome == "accepted":
            changes.update(next_attempt_at=None, last_error="")
            if pending:
                outcome = "dispatched"
                changes.update(
                    status=TaskStatus.PROCESSING,
                    current_step="dispatched",
                    status_message="",
                    processing_started_at=task.processing_started_at or now,
                )
            if result.execution_id and not task.n8n_execution_id:
                changes["n8n_execution_id"] = result.execution_id
        else:
            changes["last_error"] = result.error
            final = result.outcome == "refused" or task.attempts >= max_attempts
            if pending and not final:
                outcome = "retry"
                changes["next_attempt_at"] = now + timedelta(seconds=backoff_seconds(task.attempts))
                changes["status_message"] = (
                    f"Could not reach the workflow yet; trying again "
                    f"(attempt {task.attempts} of {max_attempts})."
                )
            elif pending:
                outcome = "failed"
                error_details = {
                    "stage": "dispatch",
                    "kind": result.kind,
                    "http_status": result.http_status,
                    "body": result.body,
                    "error": result.error,
                    "attempts": task.attempts,
                }
                if result.outcome == "refused":
                    message = f"The workflow refused the task: {result.error}."
                else:
                    message = (
                        f"The workflow could not be reached after {task.attempts} "
                        f"attempt{'s' if task.attempts != 1 else ''}: {result.error}."
                    )
                changes.update(
                    status=TaskStatus.FAILED,
                    status_message=message,
                    error_details=error_details,
                    next_attempt_at=None,
                    processing_started_at=task.processing_started_at or now,
                    processing_completed_at=now,
                )
        _update(task, changes, now)
        if outcome == "failed":
            _run_hook(task, "on_failed")
        live.publish_task(task)
    return outcome


def _update(task, changes, now):
    """The conditional write: only over the version read under the lock."""
    version = task.version + 1
    updated = AsyncTask.objects.filter(pk=task.pk, version=task.version).update(
        **changes, version=version, updated_at=now
    )
    if updated != 1:  # cannot happen with the row locked; never write over a newer state
        raise RuntimeError(f"task {task.pk} changed under its row lock")
    # The row is locked: what was just written is its state, no need to read it back.
    for field, value in changes.items():
        setattr(task, field, value)
    task.version, task.updated_at = version, now


def _run_hook(task, name):
    kind = registry.get(task.task_type)
    hook = getattr(kind, name, None) if kind else None
    if hook is not None:
        hook(task)


# --- the callback --------------------------------------------------------------------


def _optional_text(payload, field, max_length):
    value = payload.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallbackError(f"{field} must be a string")
    if len(value) > max_length:
        raise CallbackError(f"{field} is longer than {max_length} characters")
    return value


def validate_callback(payload, task_type) -> dict:
    """Check a callback body against the contract; returns the cleaned fields.

    Fields the contract does not name are ignored (n8n may add some)."""
    if not isinstance(payload, dict):
        raise CallbackError("the body must be a JSON object")
    status = payload.get("status")
    if status not in CALLBACK_STATUSES:
        raise CallbackError(
            "status must be one of processing, completed, failed"
            + (f" (got {status!r})" if status is not None else " (it is missing)")
        )
    clean = {"status": status}
    for field, max_length in (("current_step", 255), ("status_message", 4000)):
        value = _optional_text(payload, field, max_length)
        if value is not None:
            clean[field] = value
    execution_id = payload.get("execution_id")
    if execution_id is not None:
        if isinstance(execution_id, bool) or not isinstance(execution_id, str | int):
            raise CallbackError("execution_id must be a string or an integer")
        if len(str(execution_id)) > 255:
            raise CallbackError("execution_id is longer than 255 characters")
        clean["execution_id"] = str(execution_id)
    error = payload.get("error")
    if error is not None and not isinstance(error, dict | str):
        raise CallbackError("error must be an object or a string")
    if status == TaskStatus.COMPLETED:
        output = payload.get("output")
        if output is None:
            raise CallbackError("a completed callback needs an output")
        kind = registry.get(task_type)
        if kind is not None and kind.valid_output is not None:
            usable = kind.valid_output(output)
        else:
            usable = isinstance(output, dict)
        if not usable:
            raise CallbackError(f"the output is not usable for a {task_type} task")
        clean["output"] = output
    if status == TaskStatus.FAILED:
        clean["error"] = error if error not in (None, "", {}) else None
    return clean


def _error_text(error) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "error", "description"):
            if isinstance(error.get(key), str) and error[key].strip():
                return error[key]
    return ""


def _apply_progress(task_id, clean, now) -> AsyncTask | None:
    """A `processing` callback (the frequent one: every step) in one statement.

    One conditional `UPDATE … WHERE status IN ('pending', 'processing')
    RETURNING *` is atomic and forward-only by itself, so the progress of a
    workflow costs one round trip instead of a locked read-modify-write. None
    when no row matched: the caller then takes the locked path, which answers
    for unknown and finished tasks.
    """
    connection = connections[AsyncTask.objects.db]
    if connection.in_atomic_block:
        return None  # inside a larger transaction (tests, scripts): the locked path
    quote = connection.ops.quote_name
    stamp = connection.ops.adapt_datetimefield_value(now)
    assignments = [
        f"{quote('status')} = %s",
        f"{quote('processing_started_at')} = COALESCE({quote('processing_started_at')}, %s)",
        f"{quote('claimed_until')} = NULL",
        f"{quote('next_attempt_at')} = NULL",
        f"{quote('version')} = {quote('version')} + 1",
        f"{quote('updated_at')} = %s",
    ]
    params = [TaskStatus.PROCESSING.value, stamp, stamp]
    for field, column in (
        ("current_step", "current_step"),
        ("status_message", "status_message"),
        ("execution_id", "n8n_execution_id"),
    ):
        if field in clean:
            assignments.append(f"{quote(column)} = %s")
            params.append(clean[field])
    table = quote(AsyncTask._meta.db_table)
    sql = (
        f"UPDATE {table} SET {', '.join(assignments)} "
        f"WHERE {quote('id')} = %s AND {quote('status')} IN (%s, %s) RETURNING *"
    )
    params += [task_id, TaskStatus.PENDING.value, TaskStatus.PROCESSING.value]
    rows = list(AsyncTask.objects.raw(sql, params))
    if not rows:
        return None
    task = rows[0]
    live.publish_task(task)
    return task


def apply_callback(task_id, payload) -> tuple[AsyncTask, bool]:
    """Validate and apply a callback body. Returns (task, applied).

    Raises CallbackError for a bad body (nothing changes) and
    AsyncTask.DoesNotExist for an unknown task. A terminal status repeated for
    a task already in it changes nothing (applied False); another status for a
    terminal task raises TaskConflict.
    """
    now = timezone.now()
    if isinstance(payload, dict) and payload.get("status") == TaskStatus.PROCESSING:
        task = _apply_progress(task_id, validate_callback(payload, None), now)
        if task is not None:
            return task, True
        # Not pending or processing (or gone): the locked path gives the answer.
    with transaction.atomic():
        task = AsyncTask.objects.select_for_update().get(pk=task_id)
        clean = validate_callback(payload, task.task_type)
        new = clean["status"]
        if task.is_terminal:
            if new == task.status:
                return task, False
            raise TaskConflict(task)
        if new not in ALLOWED_TRANSITIONS[TaskStatus(task.status)]:
            raise TaskConflict(task)
        changes = {
            "status": new,
            "claimed_until": None,
            "next_attempt_at": None,
            "processing_started_at": task.processing_started_at or now,
        }
        if "current_step" in clean:
            changes["current_step"] = clean["current_step"]
        if "status_message" in clean:
            changes["status_message"] = clean["status_message"]
        if "execution_id" in clean:
            changes["n8n_execution_id"] = clean["execution_id"]
        if new == TaskStatus.COMPLETED:
            changes["output_data"] = clean["output"]
            changes["processing_completed_at"] = now
            changes.setdefault("status_message", "")
        elif new == TaskStatus.FAILED:
            error = clean.get("error")
            if error is None:
                error = {"message": "The workflow reported a failure without details."}
            changes["error_details"] = error
            changes["processing_completed_at"] = now
            if "status_message" not in clean:
                text = _error_text(error) or "no details given"
                changes["status_message"] = f"The workflow failed: {text}"[:4000]
        _update(task, changes, now)
        if new == TaskStatus.COMPLETED:
            _run_hook(task, "on_completed")
        elif new == TaskStatus.FAILED:
            _run_hook(task, "on_failed")
        live.publish_task(task)
    return task, True


# --- ending tasks: timeouts and the admin ------------------------------------------------


def _terminate(task_id, status, message, error_details, now=None, deadline=None) -> bool:
    """Move an unfinished task to `failed` or `timeout`; False when it had moved on."""
    now = now or timezone.now()
    with transaction.atomic():
        task = (
            AsyncTask.objects.select_for_update()
            .filter(pk=task_id, status__in=TaskStatus.unfinished())
            .first()
        )
        if task is None or (deadline is not None and task.timeout_counts_from >= deadline):
            return False
        _update(
            task,
            {
                "status": status,
                "status_message": message,
                "error_details": error_details,
                "claimed_until": None,
                "next_attempt_at": None,
                "processing_started_at": task.processing_started_at or now,
                "processing_completed_at": now,
            },
            now,
        )
        _run_hook(task, "on_failed")
        live.publish_task(task)
    return True


def expire_overdue(now=None) -> int:
    """Unfinished tasks past created_at + their type's timeout become `timeout`."""
    now = now or timezone.now()
    expired = 0
    names = set(AsyncTask.objects.unfinished().order_by().values_list("task_type", flat=True))
    for name in sorted(names):
        kind = registry.get(name)
        seconds = kind.get_timeout() if kind else settings.TASK_TIMEOUT_SECONDS
        deadline = now - timedelta(seconds=seconds)
        overdue = (
            AsyncTask.objects.unfinished()
            .annotate(counts_from=Coalesce("restarted_at", "created_at"))
            .filter(task_type=name, counts_from__lt=deadline)
            .order_by("counts_from")
            .values_list("pk", flat=True)[:500]
        )
        message = f"No result within {seconds} seconds, so the task timed out."
        details = {"stage": "timeout", "timeout_seconds": seconds, "message": message}
        for pk in list(overdue):
            if _terminate(pk, TaskStatus.TIMEOUT, message, details, now, deadline):
                expired += 1
    return expired


def mark_failed(task_id, reason="Marked failed by an administrator.") -> bool:
    """End an unfinished task as `failed` (the admin's action)."""
    return _terminate(task_id, TaskStatus.FAILED, reason, {"stage": "admin", "message": reason})


def dispatch_again(task_id) -> bool:
    """Send a task to its workflow again (the admin's action).

    For pending tasks (waiting for a retry) and for failed or timed-out ones,
    e.g. after the workflow was activated. This is the one deliberate way back
    to `pending`, an operator's decision; callbacks only ever move forward. The
    earlier outcome stays in metadata["attempts"]. Processing and completed
    tasks are left alone (False).
    """
    now = timezone.now()
    with transaction.atomic():
        task = (
            AsyncTask.objects.select_for_update()
            .filter(
                pk=task_id,
                status__in=(TaskStatus.PENDING, TaskStatus.FAILED, TaskStatus.TIMEOUT),
            )
            .first()
        )
        if task is None:
            return False
        attempt = {
            "at": now.isoformat(),
            "outcome": "dispatch again (admin)",
            "previous_status": task.status,
            "previous_error": task.error_details,
        }
        _update(
            task,
            {
                "status": TaskStatus.PENDING,
                "current_step": "",
                "status_message": "",
                "error_details": None,
                "output_data": None,
                "processing_started_at": None,
                "processing_completed_at": None,
                "claimed_until": None,
                "next_attempt_at": None,
                "attempts": 0,
                "last_error": "",
                "restarted_at": now,  # the timeout counts from here now
                "metadata": _with_attempt(task.metadata, attempt),
            },
            now,
        )
        live.publish_task(task)
        transaction.on_commit(lambda: schedule_dispatch(task.pk), robust=True)
    return True
