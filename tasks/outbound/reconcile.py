"""Reconciliation: ask n8n about tasks whose callbacks stopped coming.

A workflow's callback can be lost for good: n8n's HTTP Request node gives up
after its retries when this app was unreachable for a while, although the
workflow did produce a result. So the worker asks n8n's public API
(`GET /api/v1/executions/{id}?includeData=true`, needs `N8N_API_KEY`) about
every `processing` task that has a known execution id and has not changed for
`TASK_RECONCILE_AFTER_SECONDS`, and applies what n8n knows through the door:

- the run data of the node named `RESULT_NODE` holds the exact `completed`
  callback body (the shipped workflows build it there, just before the node
  that sends it): applied like that callback, once — a callback arriving
  meanwhile finds the task finished, and vice versa;
- an execution that ended in error, crashed or was cancelled without that
  node's output fails the task with n8n's error;
- a running one is left alone, its status line saying so.

n8n's answer is read under the webhook's input rules (one rule for
callbacks, streams and reconciliation): at most TASK_RECONCILE_MAX_BYTES of
it, parsed by the callbacks' parser, and the `Result` body checked like a
callback body (NUL, lone surrogates, non-finite numbers, depth, and
TASK_WEBHOOK_MAX_BYTES); n8n's error words are cleaned before they are kept.
An answer or a body that breaks a rule fails the task once, in the server's
words (`TaskWords.RESULT_UNUSABLE`), the reason in `error_details`; it never
fails the worker's job pass after pass.

What a workflow must do for this to work is in docs/PROTOCOL.md
("Reconciliation"). The calls run on the bounded dispatch pool, so a hanging n8n never delays the
worker's pass (timeouts and other dispatches go on).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from n8n.api import AnswerTooLarge, N8nApi, N8nApiError

from .. import callbacks, door, pool
from ..door import TaskConflict
from ..models import AsyncTask, EventSource, TaskStatus, TaskWords

logger = logging.getLogger(__name__)

# The node whose output is the `completed` callback body (see docs/PROTOCOL.md).
RESULT_NODE = "Result"
BATCH_SIZE = 20
FAILED_STATUSES = {"error", "crashed", "canceled", "cancelled", "failed"}


def enabled() -> bool:
    return bool(settings.N8N_BASE_URL and settings.N8N_API_KEY)


def due(now=None):
    """Processing tasks with an execution id, quiet for a while, not asked lately."""
    now = now or timezone.now()
    quiet = now - timedelta(seconds=settings.TASK_RECONCILE_AFTER_SECONDS)
    return (
        AsyncTask.objects.filter(status=TaskStatus.PROCESSING, updated_at__lt=quiet)
        .exclude(n8n_execution_id="")
        .exclude(reconciled_at__gte=quiet)
        .order_by("updated_at")
    )


def schedule(now=None) -> int:
    """The worker's share: mark due tasks as asked and hand each to the pool."""
    if not enabled():
        return 0
    now = now or timezone.now()
    started = 0
    quiet = now - timedelta(seconds=settings.TASK_RECONCILE_AFTER_SECONDS)
    for task_id in list(due(now).values_list("pk", flat=True)[:BATCH_SIZE]):
        # Several workers may list the same task: the one whose conditional
        # write wins asks n8n, the others skip it.
        if not door.claim_reconciliation(task_id, now, quiet):
            continue
        if pool.submit(reconcile_task, task_id) is None:
            break
        started += 1
    return started


def result_body(execution) -> dict | None:
    """The `completed` body that RESULT_NODE produced in this execution, if any."""
    data = execution.get("data") if isinstance(execution, dict) else None
    run_data = ((data or {}).get("resultData") or {}).get("runData") or {}
    runs = run_data.get(RESULT_NODE) or []
    for run in reversed(runs):
        try:
            item = run["data"]["main"][0][0]["json"]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(item, dict) and item.get("status") == TaskStatus.COMPLETED:
            return item
    return None


def error_words(execution) -> str:
    """n8n's error message for a failed execution, made storable ("" when none)."""
    data = execution.get("data") if isinstance(execution, dict) else None
    error = ((data or {}).get("resultData") or {}).get("error") or {}
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    return callbacks.clean_text(message, callbacks.MESSAGE_MAX_CHARS)


def _parse(raw):
    return callbacks.parse(raw, settings.TASK_WEBHOOK_MAX_DEPTH)


def _unusable(task, reason) -> str:
    """Fail the task once: n8n's answer or its `Result` body breaks the input rules."""
    logger.warning("reconcile: task %s, execution %s: %s", task.pk, task.n8n_execution_id, reason)
    try:
        _fail(task, TaskWords.RESULT_UNUSABLE, stage="n8n result", reason=reason)
    except TaskConflict:
        return "moved on"
    return "failed"


def _fail(task, words, **details) -> None:
    """End the task `failed` from what n8n said: our words for the user, n8n's
    in error_details (for the admin)."""
    door.change(
        task.pk,
        source=EventSource.WORKER,
        status=TaskStatus.FAILED,
        status_message=words,
        error_details={**details, "execution_id": task.n8n_execution_id},
    )


def reconcile_task(task_id, api=None) -> str:
    """Ask n8n about one task and apply what it knows. Returns what happened."""
    task = AsyncTask.objects.filter(pk=task_id, status=TaskStatus.PROCESSING).first()
    if task is None or not task.n8n_execution_id:
        return "skipped"
    api = api or N8nApi.from_settings(timeout=(3.0, 10.0))
    try:
        execution = api.get_execution(
            task.n8n_execution_id,
            include_data=True,
            max_bytes=settings.TASK_RECONCILE_MAX_BYTES,
            parse=_parse,
        )
    except (AnswerTooLarge, callbacks.JSONRejected) as exc:
        return _unusable(task, str(exc))
    except N8nApiError as exc:
        logger.warning("reconcile: task %s, execution %s: %s", task.pk, task.n8n_execution_id, exc)
        return "unreachable" if exc.unreachable else "unknown"
    if not isinstance(execution, dict):
        return _unusable(task, "n8n's answer is not a JSON object")
    body = result_body(execution)
    status = str(execution.get("status") or "")
    if body is not None:
        try:
            callbacks.check_body(body)
        except callbacks.JSONRejected as rejected:
            return _unusable(task, f"the {RESULT_NODE} node's body: {rejected}")
    try:
        if body is not None:
            callbacks.apply_callback(task.pk, body, source=EventSource.WORKER)
            return "completed"
        if status in FAILED_STATUSES:
            words = error_words(execution) or TaskWords.execution_ended(status)
            _fail(
                task, TaskWords.WORKFLOW_FAILED, stage="n8n", execution_status=status, message=words
            )
            return "failed"
        if task.status_message != TaskWords.STILL_RUNNING:
            door.change(
                task.pk,
                source=EventSource.WORKER,
                status=TaskStatus.PROCESSING,
                expect_version=task.version,
                status_message=TaskWords.STILL_RUNNING,
            )
    except (TaskConflict, callbacks.CallbackError):
        return "moved on"  # a callback got there first, or the body is unusable
    return "running"
