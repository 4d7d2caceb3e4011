"""What a workflow's callback may say, and applying it through the door.

The body's fields and the answers are described in docs/PROTOCOL.md
("Callback"). A bad body raises CallbackError (400, nothing changes); a
status that may not follow the task's current one raises TaskConflict (409);
a terminal status repeated for a task already in it changes nothing, so n8n's
retries of a delivered callback are harmless.
"""

from django.conf import settings
from django.db import transaction

from n8n.executions import execution_id

from . import door, registry
from .door import TaskConflict
from .models import AsyncTask, EventSource, TaskStatus

CALLBACK_STATUSES = (TaskStatus.PROCESSING, TaskStatus.COMPLETED, TaskStatus.FAILED)
STEP_MAX_CHARS = 255
MESSAGE_MAX_CHARS = 4000

__all__ = ["CallbackError", "TaskConflict", "apply_callback", "validate_callback"]


class CallbackError(ValueError):
    """A callback body the protocol refuses: answered 400, nothing changes."""


def _optional_text(payload, field, max_length):
    value = payload.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallbackError(f"{field} must be a string")
    if len(value) > max_length:
        raise CallbackError(f"{field} is longer than {max_length} characters")
    return value


def _execution_id(payload):
    """A string or an integer (else 400); one that is not an execution id's
    form (n8n/executions.py) is ignored, never stored."""
    value = payload.get("execution_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CallbackError("execution_id must be a string or an integer")
    return execution_id(value) or None


def _usable_output(output, task_type) -> bool:
    kind = registry.get(task_type)
    if kind is not None and kind.valid_output is not None:
        return kind.valid_output(output)
    return isinstance(output, dict)


def validate_callback(payload, task_type) -> dict:
    """Check a callback body; returns the cleaned fields.

    Fields the protocol does not name are ignored (n8n may add some)."""
    if not isinstance(payload, dict):
        raise CallbackError("the body must be a JSON object")
    status = payload.get("status")
    if status not in CALLBACK_STATUSES:
        raise CallbackError(
            "status must be one of processing, completed, failed"
            + (f" (got {status!r})" if status is not None else " (it is missing)")
        )
    clean = {"status": status}
    for field, max_length in (
        ("current_step", STEP_MAX_CHARS),
        ("status_message", MESSAGE_MAX_CHARS),
    ):
        value = _optional_text(payload, field, max_length)
        if value is not None:
            clean[field] = value
    execution_id = _execution_id(payload)
    if execution_id is not None:
        clean["execution_id"] = execution_id
    delta = _optional_text(payload, "delta", settings.TASK_DELTA_MAX_CHARS)
    if delta:
        if status != TaskStatus.PROCESSING:
            raise CallbackError("delta is only allowed with status processing")
        clean["delta"] = delta
    error = payload.get("error")
    if error is not None and not isinstance(error, dict | str):
        raise CallbackError("error must be an object or a string")
    if status == TaskStatus.COMPLETED:
        output = payload.get("output")
        if output is None:
            raise CallbackError("a completed callback needs an output")
        if not _usable_output(output, task_type):
            raise CallbackError(f"the output is not usable for a {task_type} task")
        clean["output"] = output
    if status == TaskStatus.FAILED:
        clean["error"] = error if error not in (None, "", {}) else None
    return clean


def error_text(error) -> str:
    """The words of a workflow's error object (or string), "" when it has none."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        for key in ("message", "error", "description"):
            if isinstance(error.get(key), str) and error[key].strip():
                return error[key]
    return ""


def _change(clean, task_type) -> dict:
    """The door's arguments for a cleaned callback."""
    status = clean["status"]
    fields = {key: clean[key] for key in ("current_step", "status_message") if key in clean}
    if "execution_id" in clean:
        fields["n8n_execution_id"] = clean["execution_id"]
    if status == TaskStatus.COMPLETED:
        kind = registry.get(task_type)
        refused = kind.output_refused(clean["output"]) if kind and kind.output_refused else ""
        if refused:
            fields["error_details"] = {"stage": "output", "message": refused}
            fields["status_message"] = refused
            return {"status": TaskStatus.FAILED, **fields}
        fields["output_data"] = clean["output"]
        fields.setdefault("status_message", "")
    elif status == TaskStatus.FAILED:
        error = clean.get("error")
        if error is None:
            error = {"message": "The workflow reported a failure without details."}
        fields["error_details"] = error
        if "status_message" not in clean:
            text = error_text(error) or "no details given"
            fields["status_message"] = f"The workflow failed: {text}"[:MESSAGE_MAX_CHARS]
    return {"status": status, **fields}


def apply_callback(task_id, payload, source=EventSource.CALLBACK) -> tuple[AsyncTask, bool]:
    """Validate and apply a callback body. Returns (task, applied).

    Raises CallbackError (bad body), TaskConflict (not allowed now) or
    AsyncTask.DoesNotExist (unknown task).
    """
    task_type = status = None
    if isinstance(payload, dict) and payload.get("status") == TaskStatus.COMPLETED:
        # Whether an output is usable depends on the task's type.
        task_type, status = AsyncTask.objects.values_list("task_type", "status").get(pk=task_id)
    clean = validate_callback(payload, task_type)
    change = _change(clean, task_type)
    if change["status"] == TaskStatus.COMPLETED and status not in TaskStatus.terminal():
        # Before the door locks the row (n8n's retries of a delivered reply,
        # which find the task finished, skip it).
        kind = registry.get(task_type)
        if kind is not None and kind.prepare is not None:
            kind.prepare(change["output_data"])
    try:
        if "delta" in clean:
            return _apply_delta(task_id, clean, change, source), True
        return door.change(task_id, source=source, **change), True
    except TaskConflict as conflict:
        if conflict.task.is_terminal and conflict.task.status == clean["status"]:
            return conflict.task, False  # a repeat: the first one won
        if conflict.task.status == TaskStatus.CANCELLED and not conflict.task.n8n_execution_id:
            # Stopped before n8n told its execution id: keep it, and stop n8n now.
            if "execution_id" in clean:
                from .executions import learn_execution_id

                learn_execution_id(task_id, clean["execution_id"])
        raise


def _apply_delta(task_id, clean, change, source) -> AsyncTask:
    """A `processing` callback with streamed text: append it to the partial reply.

    A callback that carries nothing but the text, for a task already
    processing, changes no status, version or event (a reply streams in
    hundreds of pieces); otherwise the change comes first, in the same
    transaction.
    """
    only_text = set(clean) == {"status", "delta"}
    if only_text:
        # One statement, no transaction: the usual piece of a streaming reply.
        appended = door.append_partial(task_id, clean["delta"])
        if appended.status == TaskStatus.PROCESSING:
            return AsyncTask(pk=task_id, status=appended.status)
    with transaction.atomic():
        task = door.change(task_id, source=source, **change)
        if not only_text:
            door.append_partial(task_id, clean["delta"])
    return task
