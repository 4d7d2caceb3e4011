"""The one door through which every change of a task passes.

Callbacks, dispatch answers, the worker's timeouts, the admin's actions, Stop
and "dispatch again" all call `change()`. It

- checks the transition table (`models.ALLOWED_TRANSITIONS`) inside the write
  itself: one conditional `UPDATE … WHERE status IN (statuses allowed before
  the new one) [AND version = the version the caller read] RETURNING *`, so
  nothing can move a task backwards, whoever races it;
- bumps `version` and fills what follows from the status (start and end
  times, claims cleared);
- records who made the change as an `async_task_events` row, in the same
  statement on PostgreSQL, the same transaction elsewhere;
- runs the task type's hooks (`on_completed`, `on_failed`) in that
  transaction, and publishes the new state after the commit.

Dispatch bookkeeping (claims, attempt counters, the attempt history) is not a
change of the task as people see it: `note()` writes it without a version.
Streamed reply text is not either: `append_partial()` adds to the task's
partial reply without a version or an event (a reply streams in hundreds of
pieces) and publishes coalesced `message.delta` frames.
"""

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Concat, Length
from django.db.models.lookups import GreaterThanOrEqual
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from observability import metrics

from . import frames, registry
from .models import (
    REOPENABLE,
    AsyncTask,
    AsyncTaskEvent,
    EventSource,
    TaskStatus,
    statuses_before,
)

logger = logging.getLogger(__name__)

# What `note()` may write: bookkeeping of dispatch, reconciliation and Stop,
# which no page shows and no frame carries.
BOOKKEEPING_FIELDS = frozenset(
    {
        "n8n_execution_id",
        "metadata",
        "attempts",
        "last_error",
        "next_attempt_at",
        "claimed_until",
        "reconciled_at",
    }
)
# The fields a change may set besides `status`: what pages show, and bookkeeping.
CHANGE_FIELDS = {
    "current_step",
    "status_message",
    "output_data",
    "error_details",
    "restarted_at",
    "processing_started_at",
    "processing_completed_at",
    *BOOKKEEPING_FIELDS,
}


class TaskConflict(Exception):
    """The change is not allowed from the task's current state (answered 409)."""

    def __init__(self, task):
        super().__init__(f"task {task.pk} is already {task.status}")
        self.task = task


def _values(status, fields, now, reopen=False) -> dict:
    """The column values of one change: what the caller set, and what follows."""
    unknown = set(fields) - CHANGE_FIELDS
    if unknown:
        raise TypeError(f"not a task change field: {sorted(unknown)}")
    values = dict(fields)
    values["version"] = F("version") + 1
    values["updated_at"] = now
    if status is None:
        return values
    values["status"] = status
    if reopen or status == TaskStatus.COMPLETED:
        # The durable reply is in output_data now (or comes anew): the
        # streamed copy has done its work. A stopped task keeps its text.
        values.setdefault("partial_text", "")
    if reopen:
        return values
    values.setdefault("claimed_until", None)
    values.setdefault("next_attempt_at", None)
    values.setdefault("processing_started_at", Coalesce(F("processing_started_at"), Value(now)))
    if status in TaskStatus.terminal():
        values.setdefault("processing_completed_at", now)
    return values


def _one_statement() -> bool:
    """Whether the change and its event go to the database as one statement."""
    return connections[AsyncTask.objects.db].vendor == "postgresql"


def _update_returning(filters, values, source=None) -> AsyncTask | None:
    """One conditional UPDATE … RETURNING the row, built by the ORM's own compiler;
    with `source`, the change's event is written by the same statement."""
    queryset = AsyncTask.objects.filter(**filters)
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    sql, params = query.get_compiler(queryset.db).as_sql()
    columns = _returned_columns(queryset.db)
    if source is None:
        sql, params = f"{sql} RETURNING {columns}", list(params)
    else:
        sql, params = _with_event(sql, params, source, columns)
    rows = _returned_tasks(sql, params, queryset.db)
    return rows[0] if rows else None


def change(
    task_id,
    *,
    source,
    status=None,
    expect_version=None,
    only_from=None,
    reopen=False,
    **fields,
) -> AsyncTask:
    """Apply one change of a task. Returns the task as written.

    `status` (optional) must be allowed after the current one; `only_from`
    narrows the statuses the task may be in; `expect_version` makes the write
    conditional on the version the caller read (a caller that computed the
    change from the row). `reopen` is "dispatch again": failed/timeout →
    pending, the only way back. Raises TaskConflict when the task is in
    another state, AsyncTask.DoesNotExist when there is no such task.
    """
    now = timezone.now()
    if reopen:
        allowed = [s.value for s in REOPENABLE]
    elif status is not None:
        allowed = statuses_before(status)
    else:
        allowed = [s.value for s in TaskStatus.unfinished()]
    if only_from is not None:
        allowed = [s for s in allowed if s in {str(o) for o in only_from}]
    filters = {"pk": task_id, "status__in": allowed}
    if expect_version is not None:
        filters["version"] = expect_version
    values = _values(status, fields, now, reopen=reopen)
    hooked = status in TaskStatus.terminal()
    one_statement = _one_statement()
    # A change without a hook is one statement on PostgreSQL: no transaction
    # of its own (in a caller's, it joins that one).
    atomic = nullcontext() if one_statement and not hooked else transaction.atomic(savepoint=False)
    with atomic:
        task = _update_returning(filters, values, source if one_statement else None)
        if task is not None:
            if not one_statement:
                _record_event(task, source)
            if status == TaskStatus.COMPLETED:
                _run_hook(task, "on_completed")
            elif status in TaskStatus.ended_badly():
                _run_hook(task, "on_failed")
            frames.publish_task(task)
            transaction.on_commit(lambda: _observe(task, source, status), robust=True)
    if task is None:
        # Raised outside the atomic block, so a caller's transaction stays usable.
        raise TaskConflict(AsyncTask.objects.get(pk=task_id))
    return task


def _observe(task, source, status) -> None:
    """After the commit: one log line per change, and the finished-tasks counter."""
    logger.info(
        "task %s %s",
        task.pk,
        task.status,
        extra={
            "event": "task.change",
            "task_id": task.pk,
            "task_type": task.task_type,
            "version": task.version,
            "status": task.status,
            "current_step": task.current_step,
            "source": str(source),
            "execution_id": task.n8n_execution_id,
        },
    )
    if status is not None and task.is_terminal:
        metrics.record_task_finished(task.task_type, task.status)


@dataclass(frozen=True)
class Appended:
    """What `append_partial` wrote: `text` (maybe shortened, or "" past the
    task's bound) at code point `offset`, for a task in `status`."""

    offset: int
    text: str
    status: str


def _room_expression():
    """How many more characters the task's partial reply may hold (its type's bound)."""
    bound = Case(
        *(
            When(task_type=name, then=Value(registry.partial_max_chars_for(name)))
            for name in registry.names()
        ),
        default=Value(settings.TASK_PARTIAL_TEXT_MAX_CHARS),
    )
    return bound - Length("partial_text")


def append_partial(task_id, text) -> Appended:
    """Append streamed text to an unfinished task's partial reply.

    The task's partial text is bounded (its type's `partial_max_chars`): what
    goes past the bound is dropped, and the final `completed` callback decides
    about the whole reply anyway. A piece that fits (nearly always) costs one
    conditional `UPDATE … RETURNING`, which appends and reads the new length
    under the row's lock, so two appends never compute the same offset; one
    that reaches the bound is clipped with the row locked. Raises TaskConflict
    when the task is finished (a stopped reply grows no more),
    AsyncTask.DoesNotExist when there is no such task.
    """
    queryset = AsyncTask.objects.filter(
        GreaterThanOrEqual(_room_expression(), len(text)),
        pk=task_id,
        status__in=TaskStatus.unfinished(),
    )
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values({"partial_text": Concat(F("partial_text"), Value(text))})
    sql, params = query.get_compiler(queryset.db).as_sql()
    returning = "id, task_type, status, created_by, input_data, LENGTH(partial_text)"
    rows = list(AsyncTask.objects.raw(f"{sql} RETURNING {returning} AS partial_length", params))
    if not rows:
        return _append_clipped(task_id, text)
    task = rows[0]
    offset = task.partial_length - len(text)
    frames.publish_delta(task, offset, text)
    return Appended(offset, text, task.status)


def _append_clipped(task_id, text) -> Appended:
    """A piece that does not fit whole (or a finished or unknown task)."""
    with transaction.atomic(savepoint=False):
        task = (
            AsyncTask.objects.select_for_update()
            .defer("partial_text", "output_data", "metadata", "error_details")
            .annotate(room=_room_expression(), partial_length=Length("partial_text"))
            .filter(pk=task_id)
            .first()
        )
        if task is None:
            raise AsyncTask.DoesNotExist(f"no task {task_id}")
        if task.is_terminal:
            conflict = task
        else:
            conflict = None
            piece = text[: max(task.room, 0)]
            if piece:
                AsyncTask.objects.filter(pk=task_id).update(
                    partial_text=Concat(F("partial_text"), Value(piece))
                )
                frames.publish_delta(task, task.partial_length, piece)
    if conflict is not None:
        raise TaskConflict(AsyncTask.objects.get(pk=task_id))
    return Appended(task.partial_length, piece, task.status)


def note(task_id, **bookkeeping) -> int:
    """Write bookkeeping fields (no version, no event, no frame); any other
    field is a change and goes through `change()`."""
    unknown = set(bookkeeping) - BOOKKEEPING_FIELDS
    if unknown:
        raise ValueError(f"not bookkeeping, use change(): {', '.join(sorted(unknown))}")
    return AsyncTask.objects.filter(pk=task_id).update(**bookkeeping)


def claim(task_id, now, lease) -> bool:
    """Take a dispatchable task for one attempt: one conditional UPDATE, so of
    any number of workers exactly one gets it (bookkeeping only)."""
    claimed = (
        AsyncTask.objects.dispatchable(now)
        .filter(pk=task_id)
        .update(claimed_until=now + lease, attempts=F("attempts") + 1)
    )
    return claimed == 1


def create(*, task_type, workflow_id, input_data, created_by, metadata=None, source) -> AsyncTask:
    """Store a new pending task and its first event (in the caller's transaction)."""
    task = AsyncTask.objects.create(
        task_type=task_type,
        workflow_id=workflow_id,
        input_data=input_data,
        created_by=created_by,
        metadata=metadata or {},
    )
    record_creation(task, source)
    return task


def _run_hook(task, name):
    kind = registry.get(task.task_type)
    hook = getattr(kind, name, None) if kind else None
    if hook is not None:
        hook(task)


# --- the changed row, read back ----------------------------------------------
# The rows of the door's `UPDATE … RETURNING` as AsyncTask instances.
#
# `QuerySet.raw()` would do, but it works out the column mapping and the
# converters anew on every call; for the hottest statement of the app (every
# callback is one) that work is done once per database here, and each row is
# converted the way the ORM converts a query's columns (JSON, times on SQLite).


@lru_cache(maxsize=8)
def _shape(alias):
    """(the column list to return, the attribute names, the converters by index)."""
    connection = connections[alias]
    fields = AsyncTask._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    converters = []
    for index, field in enumerate(fields):
        column = field.get_col(AsyncTask._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    return columns, [field.attname for field in fields], converters


def _returned_columns(alias) -> str:
    """Every column of `async_tasks`, in the order `_returned_tasks()` reads them."""
    return _shape(alias)[0]


def _returned_tasks(sql, params, alias) -> list[AsyncTask]:
    """Run `sql` (which returns `columns(alias)`) and build a task of each row."""
    _columns, names, converters = _shape(alias)
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    built = []
    for row in rows:
        values = list(row)
        for index, column, functions in converters:
            for function in functions:
                values[index] = function(values[index], column, connection)
        built.append(AsyncTask.from_db(alias, names, values))
    return built


# --- the change's event -----------------------------------------------------
# A task's history: one `async_task_events` row per change, written by the door.
#
# Progress within one step (`processing` with the same `current_step` as the
# change before) updates that step's row instead of adding one, and at most
# TASK_EVENTS_MAX_PER_TASK rows are kept per task (the final one always is).
#
# On PostgreSQL the change and its event are one statement (`with_event`): the
# door's conditional `UPDATE … RETURNING` becomes the first part of a query
# whose data-modifying parts coalesce or insert the event, so a `processing`
# callback costs one round trip and needs no transaction of its own. Elsewhere
# (SQLite) `record` writes the event after the update, in the door's
# transaction. Both follow the same rules, and the same tests run on both.
#
# Every change writes at most one row and bumps `version` by one (other saves
# bump it too), so a task has never more events than its version before the
# change: the cap needs counting only past that.

_TERMINAL = tuple(str(s) for s in TaskStatus.terminal())

# {update} is the door's compiled UPDATE (its WHERE holds the transition rule).
_WITH_EVENT = """
WITH changed AS ({update} RETURNING *),
merged AS (
  UPDATE async_task_events e
  SET version = c.version, status_message = c.status_message
  FROM changed c
  WHERE c.status = %s AND e.task_id = c.id AND e.version = c.version - 1
    AND e.status = %s AND e.current_step = c.current_step
  RETURNING e.id
),
added AS (
  INSERT INTO async_task_events
    (task_id, version, status, current_step, status_message, created_at, source)
  SELECT c.id, c.version, c.status, c.current_step, c.status_message, c.updated_at, %s
  FROM changed c
  WHERE NOT EXISTS (SELECT 1 FROM merged)
    AND (c.status IN ({terminal}) OR c.version <= %s
         OR (SELECT COUNT(*) FROM async_task_events x WHERE x.task_id = c.id) < %s)
  RETURNING id
)
SELECT {columns} FROM changed
"""


def _with_event(update_sql, params, source, columns) -> tuple[str, list]:
    """The door's UPDATE and its event as one PostgreSQL statement, which
    returns the changed row's `columns`."""
    cap = settings.TASK_EVENTS_MAX_PER_TASK
    sql = _WITH_EVENT.format(
        update=update_sql, terminal=", ".join(["%s"] * len(_TERMINAL)), columns=columns
    )
    processing = str(TaskStatus.PROCESSING)
    return sql, [*params, processing, processing, str(source), *_TERMINAL, cap, cap]


def _new(task, source, **extra) -> None:
    AsyncTaskEvent.objects.create(
        task_id=task.pk,
        version=task.version,
        status=task.status,
        current_step=task.current_step,
        status_message=task.status_message,
        source=source,
        **extra,
    )


def record_creation(task, source=EventSource.USER) -> None:
    """The first event of a task (called where it is created)."""
    _new(task, source, created_at=task.created_at)


def _record_event(task, source) -> None:
    """The event of a change just written (the door's path on SQLite)."""
    events = AsyncTaskEvent.objects.filter(task_id=task.pk)
    if task.status == TaskStatus.PROCESSING:
        coalesced = events.filter(
            version=task.version - 1,
            status=TaskStatus.PROCESSING,
            current_step=task.current_step,
        ).update(version=task.version, status_message=task.status_message)
        if coalesced:
            return
    cap = settings.TASK_EVENTS_MAX_PER_TASK
    if not task.is_terminal and task.version > cap and events.count() >= cap:
        return  # capped: the final event is always written
    _new(task, source, created_at=task.updated_at)
