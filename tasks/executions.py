"""n8n's executions of tasks: learning a task's execution id, and asking n8n
to stop one (Stop, through n8n's public API when N8N_API_KEY is set)."""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from n8n.api import N8nApi, N8nApiError

from . import door, pool
from .models import AsyncTask, TaskStatus


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
        door.note(task_id, n8n_execution_id=execution_id)
        if task.status == TaskStatus.CANCELLED:
            transaction.on_commit(lambda: pool.run_in_pool(stop_execution, task_id), robust=True)
    return True
