"""A task's history: one `async_task_events` row per change, written by the door.

Progress within one step (`processing` with the same `current_step` as the
change before) updates that step's row instead of adding one, and at most
TASK_EVENTS_MAX_PER_TASK rows are kept per task (the final one always is).

On PostgreSQL the change and its event are one statement (`with_event`): the
door's conditional `UPDATE … RETURNING` becomes the first part of a query
whose data-modifying parts coalesce or insert the event, so a `processing`
callback costs one round trip and needs no transaction of its own. Elsewhere
(SQLite) `record` writes the event after the update, in the door's
transaction. Both follow the same rules, and the same tests run on both.

Every change writes at most one row and bumps `version` by one (other saves
bump it too), so a task has never more events than its version before the
change: the cap needs counting only past that.
"""

from django.conf import settings

from .models import AsyncTaskEvent, TaskStatus

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


def with_event(update_sql, params, source, columns) -> tuple[str, list]:
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


def record_creation(task, source) -> None:
    """The first event of a task (called where it is created)."""
    _new(task, source, created_at=task.created_at)


def record(task, source) -> None:
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
