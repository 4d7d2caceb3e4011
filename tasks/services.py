"""State changes of tasks: create, dispatch, apply a callback, expire.

Called by views, the admin, the worker and tests alike.
"""

from django.db import transaction

from . import live, registry
from .models import AsyncTask


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
    live.publish_task(task.pk)
    transaction.on_commit(lambda: schedule_dispatch(task.pk), robust=True)
    return task


def schedule_dispatch(task_id) -> None:
    """Hand a committed pending task to the dispatcher, off the request path."""
    # Built in the tasks issue; until then a task simply stays `pending`.
