"""A workflow's callback: its token, its body parsed, what it may say, and
applying it through the door.

The body's fields and the answers are described in docs/PROTOCOL.md
("Callback"). A bad body raises CallbackError (400, nothing changes); a
status that may not follow the task's current one raises TaskConflict (409);
a terminal status repeated for a task already in it changes nothing, so n8n's
retries of a delivered callback are harmless.
"""

import json
import math
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from n8n.executions import execution_id

from . import door, registry
from .compiled import compile_queryset, stand_in
from .door import TaskConflict
from .models import AsyncTask, EventSource, TaskStatus, TaskWords

CALLBACK_STATUSES = (TaskStatus.PROCESSING, TaskStatus.COMPLETED, TaskStatus.FAILED)
STEP_MAX_CHARS = 255
MESSAGE_MAX_CHARS = 4000
SEQUENCE_MAX = 2**63 - 1  # a bigint

__all__ = ["CallbackError", "TaskConflict", "apply_callback", "validate_callback"]


class CallbackError(ValueError):
    """A callback body the protocol refuses: answered `status` (400 unless a
    task type's hook says otherwise, e.g. 422 for unusable files), nothing changes."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


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
    offset = payload.get("offset")
    if offset is not None:
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise CallbackError("offset must be a non-negative integer")
        if not delta:
            raise CallbackError("offset is only allowed with a delta")
        clean["offset"] = offset
    sequence = payload.get("sequence")
    if sequence is not None:
        if (
            isinstance(sequence, bool)
            or not isinstance(sequence, int)
            or not 0 <= sequence <= SEQUENCE_MAX
        ):
            raise CallbackError(f"sequence must be an integer from 0 to {SEQUENCE_MAX}")
        clean["sequence"] = sequence
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
    elif status == TaskStatus.PROCESSING and "sequence" in clean:
        # Only progress is ordered: an ending ends the task whatever came before.
        fields["sequence"] = clean["sequence"]
    elif status == TaskStatus.FAILED:
        error = clean.get("error")
        if error is None:
            error = {"message": TaskWords.FAILURE_WITHOUT_DETAILS}
        if "status_message" in clean:
            # The workflow's words of a failure are for the admin only.
            said = clean["status_message"]
            error = (
                {**error, "status_message": said}
                if isinstance(error, dict)
                else {
                    "message": error,
                    "status_message": said,
                }
            )
        fields["error_details"] = error
        fields["status_message"] = TaskWords.WORKFLOW_FAILED
    return {"status": status, **fields}


_TASK = stand_in(21)


@lru_cache(maxsize=4)
def _kind_query(alias):
    """A task's type and status (what a completed callback's output is checked
    against), compiled once per database."""
    queryset = AsyncTask.objects.using(alias).filter(pk=_TASK).values("task_type", "status")
    return compile_queryset(queryset.order_by(), {_TASK})


def task_kind(task_id) -> tuple[str, str]:
    """(task_type, status) of the task; AsyncTask.DoesNotExist when there is none."""
    task_id = int(task_id)
    # An id no row can have (nor a stand-in) is no task, as the ORM says.
    possible = 0 < task_id <= SEQUENCE_MAX
    rows = _kind_query(AsyncTask.objects.db).rows({_TASK: task_id}) if possible else []
    if not rows:
        raise AsyncTask.DoesNotExist(f"no task {task_id}")
    return rows[0]["task_type"], rows[0]["status"]


def apply_callback(task_id, payload, source=EventSource.CALLBACK) -> tuple[AsyncTask, bool]:
    """Validate and apply a callback body. Returns (task, applied).

    Raises CallbackError (bad body), TaskConflict (not allowed now) or
    AsyncTask.DoesNotExist (unknown task).
    """
    task_type = status = None
    if isinstance(payload, dict) and payload.get("status") == TaskStatus.COMPLETED:
        # Whether an output is usable depends on the task's type.
        task_type, status = task_kind(task_id)
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
        if _older(conflict.task, clean):
            return conflict.task, False  # a newer callback was applied already
        if conflict.task.status == TaskStatus.CANCELLED and not conflict.task.n8n_execution_id:
            # Stopped before n8n told its execution id: keep it, and stop n8n now.
            if "execution_id" in clean:
                from .executions import learn_execution_id

                learn_execution_id(task_id, clean["execution_id"])
        raise


def _older(task, clean) -> bool:
    """Whether `clean` is a `processing` callback older (by its `sequence`)
    than the last one applied to the unfinished `task`."""
    last = task.callback_sequence
    return (
        "sequence" in clean
        and not task.is_terminal
        and last is not None
        and clean["sequence"] <= last
    )


def _apply_delta(task_id, clean, change, source) -> AsyncTask:
    """A `processing` callback with streamed text: append it to the partial reply.

    A callback that carries nothing but the text (and its `offset`), for a
    task already processing, changes no status, version or event (a reply
    streams in hundreds of pieces); otherwise the change comes in the same
    transaction, unless the piece is a replay (its `offset` says the text
    already holds it): then the callback is an old one, and changes nothing.
    """
    offset = clean.get("offset")
    # A piece's place in the text is its `offset`; `sequence` orders the
    # step and message a callback sets, so a piece with nothing else is text only.
    only_text = set(clean) <= {"status", "delta", "offset", "sequence"}
    if only_text:
        change = {key: value for key, value in change.items() if key != "sequence"}
    if only_text:
        # One statement, no transaction: the usual piece of a streaming reply.
        appended = door.append_partial(task_id, clean["delta"], offset=offset)
        if appended.status == TaskStatus.PROCESSING:
            return AsyncTask(pk=task_id, status=appended.status)
    with transaction.atomic():
        if only_text:
            return door.change(task_id, source=source, **change)
        appended = door.append_partial(task_id, clean["delta"], offset=offset)
        if appended.replayed:
            return AsyncTask.objects.get(pk=task_id)
        try:
            return door.change(task_id, source=source, **change)
        except TaskConflict as conflict:
            if _older(conflict.task, clean):
                return conflict.task  # the text is new, the step an older one
            raise


# --- the body, parsed ----------------------------------------------------------
# Parse untrusted JSON into values every database and page can hold.
#
# `json.loads` accepts things that later fail far from the request: `NaN`,
# `Infinity` and `1e400` (not JSON numbers; PostgreSQL's jsonb refuses them),
# `\\u0000` (PostgreSQL text and jsonb refuse NUL), lone surrogates such as
# `\\ud800` (not encodable as UTF-8), and nesting deep enough to exhaust the
# recursion of whatever walks the value next (templates, `json.dumps`, the
# admin). `loads()` refuses each with a `JSONRejected` whose message says which,
# so the webhook answers 400 instead of 500 (and a retried callback does not
# fail the same way forever).


class JSONRejected(ValueError):
    """The body is not JSON this app accepts; the message says why, in plain words."""


def _reject_constant(name):
    raise JSONRejected(f"numbers must be finite: {name} is not accepted")


def _finite_float(text):
    number = float(text)
    if not math.isfinite(number):
        raise JSONRejected(f"numbers must be finite: {text[:40]} is out of range")
    return number


def _check_string(text, where):
    if "\x00" in text:
        raise JSONRejected(f"{where} may not contain NUL characters (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONRejected(
            f"{where} may not contain lone surrogates (\\ud800-\\udfff without a pair)"
        ) from None


def check_value(value, max_depth):
    """Walk `value` without recursion; raise JSONRejected for a bad string or depth."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item, "strings")
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise JSONRejected(f"the JSON is nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key, "object keys")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise JSONRejected("numbers must be finite")


def parse(raw, max_depth):
    """Parse `raw` (bytes or str) as JSON: numbers finite, nesting within what
    the parser can walk (JSONRejected otherwise). Strings are not checked yet:
    `check_value` does that for the part that is used."""
    try:
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except JSONRejected:
        raise
    except RecursionError:
        # The C parser counts its own depth against the interpreter's recursion
        # limit and stops cleanly: such a body is far past max_depth anyway.
        raise JSONRejected(f"the JSON is nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise JSONRejected("the body is not JSON") from None


def loads(raw, max_depth):
    """Parse `raw` (bytes or str); JSONRejected for anything the app would choke on."""
    value = parse(raw, max_depth)
    check_value(value, max_depth)
    return value


def check_body(value) -> None:
    """A callback body that did not come over HTTP (reconciliation reads it
    from n8n's API): the webhook's rules for strings, numbers and depth, and
    its size limit counted as the body's compact JSON. JSONRejected otherwise."""
    check_value(value, settings.TASK_WEBHOOK_MAX_DEPTH)
    limit = settings.TASK_WEBHOOK_MAX_BYTES
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > limit:
        raise JSONRejected(f"the body is larger than {limit} bytes")


def clean_text(text, max_chars) -> str:
    """A text from outside made storable: NUL removed, lone surrogates replaced,
    at most `max_chars` characters."""
    text = str(text)[:max_chars].replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")


# --- the callback token -------------------------------------------------------
# Per-task callback tokens.
#
# A token is an HMAC of the task id under the project's SECRET_KEY (with a salt
# of its own), so it is worth nothing for any other task and needs no storage.
# n8n keeps the dispatch body, token included, in its execution data: a leaked
# token can only report on its own task.

SALT = "tasks.callback-token.v1"


def make_token(task_id) -> str:
    return salted_hmac(SALT, f"async-task:{int(task_id)}", algorithm="sha256").hexdigest()


def check_token(task_id, token) -> bool:
    """Constant-time comparison of a presented token with the task's own."""
    if not token or not isinstance(token, str):
        return False
    return constant_time_compare(make_token(task_id), token)
