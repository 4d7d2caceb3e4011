"""A task's life outside dispatch and callbacks: created, timed out, failed or
stopped by a person, dispatched again by an operator. All through the door."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from chatproject import metrics

from . import dispatch, door, live, pool, registry, streams
from .door import TaskConflict
from .models import AsyncTask, EventSource, TaskStatus
from .n8n_api import N8nApi, N8nApiError

logger = logging.getLogger(__name__)

# At most this many overdue tasks of one type are expired per pass.
EXPIRE_BATCH = 500


def create_task(*, user, task_type, input_data, metadata=None, source=EventSource.USER):
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
    door.record_creation(task, source)
    live.publish_task(task)
    transaction.on_commit(lambda: _created(task), robust=True)
    transaction.on_commit(lambda: dispatch.schedule_dispatch(task.pk), robust=True)
    return task


def _created(task) -> None:
    logger.info(
        "task %s created",
        task.pk,
        extra={
            "event": "task.created",
            "task_id": task.pk,
            "task_type": task.task_type,
            "workflow_id": task.workflow_id,
            "status": task.status,
        },
    )
    metrics.record_task_created(task.task_type)


def _end(task_id, status, message, details, source, **conditions) -> bool:
    """Move an unfinished task to a terminal status; False when it had moved on."""
    try:
        door.change(
            task_id,
            source=source,
            status=status,
            status_message=message,
            error_details=details,
            **conditions,
        )
    except (TaskConflict, AsyncTask.DoesNotExist):
        return False
    return True


def expire_overdue(now=None) -> int:
    """Unfinished tasks past created_at (or restarted_at) + their type's timeout
    become `timeout`."""
    now = now or timezone.now()
    expired = 0
    unfinished = AsyncTask.objects.unfinished().order_by()
    for name in sorted(set(unfinished.values_list("task_type", flat=True))):
        seconds = registry.timeout_for(name)
        deadline = now - timedelta(seconds=seconds)
        overdue = (
            AsyncTask.objects.unfinished()
            .annotate(counts_from=Coalesce("restarted_at", "created_at"))
            .filter(task_type=name, counts_from__lt=deadline)
            .order_by("counts_from")
            .values_list("pk", "version")[:EXPIRE_BATCH]
        )
        message = f"No result within {seconds} seconds, so the task timed out."
        details = {"stage": "timeout", "timeout_seconds": seconds, "message": message}
        for pk, version in list(overdue):
            # Conditional on the version read: a dispatch again since then wins.
            if _end(
                pk, TaskStatus.TIMEOUT, message, details, EventSource.WORKER, expect_version=version
            ):
                expired += 1
    return expired


def mark_failed(task_id, reason="Marked failed by an administrator.") -> bool:
    """End an unfinished task as `failed` (the admin's action)."""
    details = {"stage": "admin", "message": reason}
    return _end(task_id, TaskStatus.FAILED, reason, details, EventSource.ADMIN)


def cancel(task_id, *, by, source=EventSource.USER) -> AsyncTask:
    """Stop an unfinished task: `cancelled`, saying who stopped it.

    Raises TaskConflict when the task is already finished."""
    message = f"Stopped by {by}."
    with transaction.atomic():
        task = door.change(
            task_id,
            source=source,
            status=TaskStatus.CANCELLED,
            status_message=message,
            error_details={"stage": "cancelled", "message": message},
        )
        # Off the request path: close this process's stream of it, and ask n8n
        # to stop the execution.
        transaction.on_commit(lambda: streams.close(task_id), robust=True)
        transaction.on_commit(lambda: pool.run_in_pool(stop_execution, task_id), robust=True)
    return task


def stop_execution(task_id) -> dict | None:
    """Ask n8n to stop a cancelled task's execution, and record the answer in
    metadata["n8n_stop"]. Needs N8N_API_KEY and a known execution id.

    Asks once per execution id (metadata["n8n_stop_asked"]). Never raises and
    never undoes the cancel: an n8n without the public stop
    endpoint (2.8.x answers 404), an execution that already ended (409) or an
    unreachable n8n are recorded as they are.
    """
    if not (settings.N8N_API_KEY and settings.N8N_BASE_URL):
        return None
    with transaction.atomic():
        task = AsyncTask.objects.select_for_update().filter(pk=task_id).first()
        if task is None or not task.n8n_execution_id:
            return None
        # Asked once per execution: the Stop and a late-learnt id may both get here.
        if (task.metadata or {}).get("n8n_stop_asked") == task.n8n_execution_id:
            return None
        door.note(
            task_id, metadata={**(task.metadata or {}), "n8n_stop_asked": task.n8n_execution_id}
        )
    api = N8nApi.from_settings(timeout=(3.0, 10.0))
    answer = {"at": timezone.now().isoformat(), "execution_id": task.n8n_execution_id}
    try:
        body = api.stop_execution(task.n8n_execution_id)
    except N8nApiError as exc:
        answer.update(outcome="failed", http_status=exc.status, reason=exc.reason)
        if exc.status == 404:
            answer["outcome"] = "not found (this n8n may have no public stop endpoint)"
    else:
        answer.update(outcome="stopped", http_status=200)
        if isinstance(body, dict) and isinstance(body.get("status"), str):
            answer["n8n_status"] = body["status"][:64]
    with transaction.atomic():
        row = AsyncTask.objects.select_for_update().filter(pk=task_id).first()
        if row is not None:
            metadata = dict(row.metadata or {})
            metadata["n8n_stop"] = answer
            door.note(task_id, metadata=metadata)
    return answer


def learn_execution_id(task_id, execution_id) -> bool:
    """Record an execution id the task did not know yet (a late `processing`
    callback, or one announced in a stream). A task stopped before its id was
    known could not stop n8n's execution then: it is asked to now, through the
    same path as Stop (the answer goes to metadata["n8n_stop"]). False when the
    task is gone or already had an id."""
    with transaction.atomic():
        task = AsyncTask.objects.select_for_update().filter(pk=task_id).first()
        if task is None or task.n8n_execution_id:
            return False
        door.note(task_id, n8n_execution_id=str(execution_id)[:255])
        if task.status == TaskStatus.CANCELLED:
            transaction.on_commit(lambda: pool.run_in_pool(stop_execution, task_id), robust=True)
    return True


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
            status_message=dispatch.REFUSED_WORDS,
            error_details=dispatch.error_details(result),
            last_error=result.error,
        )
    except (TaskConflict, AsyncTask.DoesNotExist):
        return False
    return True


def superseded(task) -> bool:
    kind = registry.get(task.task_type)
    return bool(kind and kind.superseded and kind.superseded(task))


def dispatch_again(task_id) -> bool:
    """Send a failed or timed-out task to its workflow again (the admin's action);
    a pending one waiting for its next attempt is sent at once.

    The one deliberate way back to `pending`, an operator's decision; the
    earlier outcome stays in metadata["attempts"]. Refused (False) for a task
    that is unfinished or completed, and for one a later task has superseded
    (the user retried it: its reply belongs to the newer task).
    """
    now = timezone.now()
    with transaction.atomic():
        task = AsyncTask.objects.select_for_update().filter(pk=task_id).first()
        if task is None or superseded(task):
            return False
        if task.status == TaskStatus.PENDING:  # waiting for a retry: send it now
            door.note(task.pk, next_attempt_at=None, claimed_until=None)
            transaction.on_commit(lambda: dispatch.schedule_dispatch(task.pk), robust=True)
            return True
        attempt = {
            "at": now.isoformat(),
            "outcome": "dispatch again (admin)",
            "previous_status": task.status,
            "previous_error": task.error_details,
        }
        try:
            door.change(
                task.pk,
                source=EventSource.ADMIN,
                status=TaskStatus.PENDING,
                reopen=True,
                expect_version=task.version,
                current_step="",
                status_message="",
                error_details=None,
                output_data=None,
                processing_started_at=None,
                processing_completed_at=None,
                claimed_until=None,
                next_attempt_at=None,
                attempts=0,
                last_error="",
                restarted_at=now,  # the timeout counts from here now
                metadata=dispatch.with_attempt(task.metadata, attempt),
            )
        except TaskConflict:
            return False
        transaction.on_commit(lambda: dispatch.schedule_dispatch(task.pk), robust=True)
    return True
