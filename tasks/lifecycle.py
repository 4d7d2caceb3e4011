"""A task's life outside dispatch and callbacks: created, timed out, failed or
stopped by a person, dispatched again by an operator. All through the door."""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from observability import metrics

from . import door, executions, frames, pool, registry
from .door import TaskConflict
from .models import AsyncTask, EventSource, TaskStatus, TaskWords
from .outbound import dispatch, streaming

logger = logging.getLogger(__name__)

# At most this many overdue tasks of one type are expired per pass.
EXPIRE_BATCH = 500


def create_task(
    *,
    user,
    task_type,
    input_data,
    metadata=None,
    source=EventSource.USER,
    along=(),
    workflow_id=None,
):
    """Store a pending task and dispatch it right after the commit: to
    `workflow_id` when given (chat: the conversation's assistant), else to
    the task type's workflow (`along`: the caller's writes that name it, see
    `door.create`)."""
    kind = registry.get(task_type)
    if kind is None:
        raise ValueError(f"unknown task type {task_type!r}")
    task = door.create(
        task_type=task_type,
        workflow_id=workflow_id or kind.get_workflow(),
        input_data=input_data,
        created_by=user,
        metadata=metadata,
        source=source,
        along=along,
    )
    frames.publish_task(task)
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
        message = TaskWords.timed_out(seconds)
        details = {"stage": "timeout", "timeout_seconds": seconds, "message": message}
        for pk, version in list(overdue):
            # Conditional on the version read: a dispatch again since then wins.
            if _end(
                pk, TaskStatus.TIMEOUT, message, details, EventSource.WORKER, expect_version=version
            ):
                expired += 1
    return expired


def mark_failed(task_id, reason=TaskWords.MARKED_FAILED) -> bool:
    """End an unfinished task as `failed` (the admin's action)."""
    details = {"stage": "admin", "message": reason}
    return _end(task_id, TaskStatus.FAILED, reason, details, EventSource.ADMIN)


def cancel(task_id, *, by, source=EventSource.USER) -> AsyncTask:
    """Stop an unfinished task: `cancelled`, saying who stopped it.

    Raises TaskConflict when the task is already finished."""
    message = TaskWords.stopped_by(by)
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
        transaction.on_commit(lambda: streaming.close(task_id), robust=True)
        stop = executions.stop_execution
        transaction.on_commit(lambda: pool.run_in_pool(stop, task_id), robust=True)
    return task


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
