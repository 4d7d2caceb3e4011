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
from django.core.exceptions import EmptyResultSet
from django.db import connections, transaction
from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Concat, Length
from django.db.models.lookups import Exact, GreaterThanOrEqual
from django.db.models.sql import InsertQuery, UpdateQuery
from django.utils import timezone

from observability import metrics

from . import frames, registry
from .compiled import (
    CompiledUpdate,
    LostStandIn,
    compile_update,
    datetime_stand_in,
    stand_in,
    text_stand_in,
)
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


def _update_returning(filters, values, source, conditions=(), compiled=None) -> AsyncTask | None:
    """The change as one conditional UPDATE … RETURNING the row, and its event.
    `compiled`: the UPDATE as `_change_statement` built it, its values given
    (`filters`, `values` and `conditions` are then not compiled again)."""
    queryset = (
        AsyncTask.objects.all()
        if compiled is not None
        else AsyncTask.objects.filter(*conditions, **filters)
    )
    if _one_statement():
        rows = queryset.update_returning(values, compose=_with_event(source), compiled=compiled)
    else:
        rows = queryset.update_returning(values, compiled=compiled)
        if rows:
            _add_event(rows[0], source)
    return rows[0] if rows else None


def change(
    task_id,
    *,
    source,
    status=None,
    expect_version=None,
    only_from=None,
    reopen=False,
    sequence=None,
    **fields,
) -> AsyncTask:
    """Apply one change of a task. Returns the task as written.

    `status` (optional) must be allowed after the current one; `only_from`
    narrows the statuses the task may be in; `expect_version` makes the write
    conditional on the version the caller read (a caller that computed the
    change from the row). `reopen` is "dispatch again": failed/timeout →
    pending, the only way back. Raises TaskConflict when the task is in
    another state, AsyncTask.DoesNotExist when there is no such task.
    `sequence` (a callback's, docs/PROTOCOL.md) makes the write conditional on
    it being greater than the last one applied, and stores it: an older
    callback replayed after a newer one raises TaskConflict instead of moving
    the task back to its step.
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
    compiled = _compiled_change(
        task_id, status, fields, now, reopen, allowed, expect_version, sequence
    )
    filters, values, conditions = {}, {}, ()
    if compiled is None:  # a value the compiled statements do not take (an expression)
        filters, values, conditions = _change_query(
            task_id, status, fields, now, reopen, allowed, expect_version, sequence
        )
    hooked = status in TaskStatus.terminal()
    one_statement = _one_statement()
    # A change without a hook is one statement on PostgreSQL: no transaction
    # of its own (in a caller's, it joins that one).
    atomic = nullcontext() if one_statement and not hooked else transaction.atomic(savepoint=False)
    with atomic:
        task = _update_returning(filters, values, source, conditions, compiled)
        if task is not None:
            # The task's frame first: after the commit it goes out before
            # whatever the hook publishes (a reply's message frame, rendered
            # then), so the status reaches pages without waiting for that.
            frames.publish_task(task)
            if status == TaskStatus.COMPLETED:
                _run_hook(task, "on_completed")
            elif status in TaskStatus.ended_badly():
                _run_hook(task, "on_failed")
            transaction.on_commit(lambda: _observe(task, source, status), robust=True)
    if task is None:
        # Raised outside the atomic block, so a caller's transaction stays usable.
        raise TaskConflict(AsyncTask.objects.get(pk=task_id))
    return task


def _change_query(task_id, status, fields, now, reopen, allowed, expect_version, sequence):
    """The filters, values and conditions of one change, as the ORM takes them."""
    filters = {"pk": task_id, "status__in": allowed}
    if expect_version is not None:
        filters["version"] = expect_version
    values = _values(status, fields, now, reopen=reopen)
    conditions = ()
    if sequence is not None:
        conditions = (Q(callback_sequence__isnull=True) | Q(callback_sequence__lt=sequence),)
        values["callback_sequence"] = sequence
    return filters, values, conditions


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
    task's bound) at code point `offset`, for a task in `status`; `full` when
    the partial text has reached its bound (more would be dropped)."""

    offset: int
    text: str
    status: str
    full: bool = False
    # With an offset: the text already held the whole piece (a replay, or a
    # piece past a gap, which waits for the missing one).
    replayed: bool = False


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


def append_partial(task_id, text, offset=None) -> Appended:
    """Append streamed text to an unfinished task's partial reply.

    The task's partial text is bounded (its type's `partial_max_chars`): what
    goes past the bound is dropped, and the final `completed` callback decides
    about the whole reply anyway. A piece that fits (nearly always) costs one
    conditional `UPDATE … RETURNING`, which appends and reads the new length
    (and the type's `delta_annotations`) under the row's lock, so two appends
    never compute the same offset; one that reaches the bound is clipped with
    the row locked. With `offset` (the code point where the piece begins, as
    its sender counted) the piece is a retry-safe one: only its part past the
    text's end is appended; one that the text already holds is a replay, and
    one that begins past the end (a piece is missing) is not appended either,
    until the missing piece comes (both `replayed`). Raises TaskConflict
    when the task is finished (a stopped reply grows no more),
    AsyncTask.DoesNotExist when there is no such task.
    """
    alias = AsyncTask.objects.db
    statement = _append_statement(alias, _bounds_key(), offset is not None)
    params = statement.bind({"text": text, "length": len(text), "id": task_id, "offset": offset})
    task = _append_returning(AsyncTask.objects.using(alias), text, compiled=(statement.sql, params))
    if task is None:
        return _append_clipped(task_id, text, offset)
    offset = task.partial_length - len(text)
    frames.publish_delta(task, offset, text)
    full = task.partial_length >= registry.partial_max_chars_for(task.task_type)
    return Appended(offset, text, task.status, full)


def _append_returning(queryset, text, compiled=None):
    """Append `text` to the partial reply of `queryset`'s task and return the
    row as a `message.delta` frame needs it (the new length, and the task
    types' `delta_annotations`), in one statement; None when no row matched.
    `compiled`: the UPDATE as `_append_statement` built it, its values given."""
    extra, params = _delta_returning(queryset.db, _registry_key())
    values = None if compiled else {"partial_text": Concat(F("partial_text"), Value(text))}
    rows = queryset.update_returning(
        values,
        fields=("task_type", "status", "created_by_id", "input_data"),
        extra=(("partial_length", "LENGTH(partial_text)"), *extra),
        extra_params=params,
        compiled=compiled,
    )
    return rows[0] if rows else None


# Stand-ins for a piece's values in the append's UPDATE compiled once
# (`_append_statement`, tasks/compiled.py).
_APPEND_STAND_INS = {
    "text": text_stand_in("piece"),
    "length": stand_in(1),
    "id": stand_in(2),
    "offset": stand_in(3),
}


@lru_cache(maxsize=16)
def _append_statement(alias, _bounds, with_offset) -> CompiledUpdate:
    """The conditional UPDATE of `append_partial` (room for the piece, the
    task unfinished, with `with_offset` the text's length equal to the
    piece's offset), compiled by the ORM once per database, set of task
    types and their bounds, with stand-ins where a piece's values go: a
    streamed piece costs no compilation."""
    stand_ins = dict(_APPEND_STAND_INS)
    queryset = AsyncTask.objects.using(alias).filter(
        GreaterThanOrEqual(_room_expression(), stand_ins["length"]),
        pk=stand_ins["id"],
        status__in=TaskStatus.unfinished(),
    )
    if with_offset:
        queryset = queryset.filter(Exact(Length("partial_text"), stand_ins["offset"]))
    else:
        del stand_ins["offset"]
    values = {"partial_text": Concat(F("partial_text"), Value(stand_ins["text"]))}
    return compile_update(queryset, values, stand_ins)


# Stand-ins for a change's values in its UPDATE compiled once per shape
# (`_change_statement`, tasks/compiled.py): `now` is written as `updated_at`.
_CHANGE_STAND_INS = {"now": datetime_stand_in(0), "id": stand_in(1)}
_CHANGE_VERSION, _CHANGE_SEQUENCE = stand_in(2), stand_in(3)
_NOW_FIELD = "updated_at"


def _stand_in(field, number):
    """A value of `field`'s type no change ever writes, or None (not compiled)."""
    kind = field.get_internal_type()
    if kind in ("CharField", "TextField"):
        return text_stand_in(field.name)
    if kind == "DateTimeField":
        return datetime_stand_in(number + 1)
    if kind == "JSONField":
        return {text_stand_in("stand-in"): field.name}
    if kind in ("IntegerField", "BigIntegerField", "PositiveIntegerField"):
        return stand_in(100 + number)
    return None


def _compiled_change(task_id, status, fields, now, reopen, allowed, expect_version, sequence):
    """The change's UPDATE as (sql, params), from the statement compiled once
    for its shape; None for a change with a value that is an expression or of
    a field without a stand-in (then the ORM compiles it)."""
    if not fields.keys() <= CHANGE_FIELDS:
        return None
    names = tuple(sorted(fields))
    for name in names:
        value = fields[name]
        if hasattr(value, "resolve_expression"):
            return None
    shape = (
        str(status) if status is not None else None,
        bool(reopen),
        tuple(str(s) for s in allowed),
        expect_version is not None,
        sequence is not None,
        tuple((name, fields[name] is None) for name in names),
    )
    statement = _change_statement(AsyncTask.objects.db, shape)
    if statement is None:
        return None
    given = {"now": now, "id": task_id, "version": expect_version, "sequence": sequence}
    return statement.sql, statement.bind({**fields, **given})


@lru_cache(maxsize=256)
def _change_statement(alias, shape) -> CompiledUpdate | None:
    """The conditional UPDATE of `change()` for one shape (the new status,
    reopen, the statuses allowed before, whether the version and a sequence
    are given, the fields set and which of them are None), compiled by the ORM
    once per database and shape, with stand-ins where a change's values go
    (each field's value prepared by its field). None when a stand-in did not
    come out as a parameter of its own, or nothing is allowed before."""
    status, reopen, allowed, with_version, with_sequence, given = shape
    stand_ins = dict(_CHANGE_STAND_INS)
    prepared_by = {"now": AsyncTask._meta.get_field(_NOW_FIELD)}
    fields = {}
    for number, (name, is_none) in enumerate(given):
        field = AsyncTask._meta.get_field(name)
        value = None if is_none else _stand_in(field, number)
        if value is None and not is_none:
            return None
        fields[name] = value
        if value is not None:
            stand_ins[name], prepared_by[name] = value, field
    if with_version:
        stand_ins["version"] = _CHANGE_VERSION
    if with_sequence:
        stand_ins["sequence"] = _CHANGE_SEQUENCE
    filters, values, conditions = _change_query(
        stand_ins["id"],
        status,
        fields,
        stand_ins["now"],
        reopen,
        list(allowed),
        stand_ins.get("version"),
        stand_ins.get("sequence"),
    )
    queryset = AsyncTask.objects.using(alias).filter(*conditions, **filters)
    try:
        return compile_update(queryset, values, stand_ins, prepared_by)
    except (EmptyResultSet, LostStandIn):  # the ORM's path says so, or compiles it
        return None


def _bounds_key():
    """The task types and their partial text bounds (settings may change them)."""
    bounds = tuple((name, registry.partial_max_chars_for(name)) for name in registry.names())
    return _registry_key(), bounds, settings.TASK_PARTIAL_TEXT_MAX_CHARS


def _registry_key():
    return tuple((name, id(registry.get(name))) for name in registry.names())


@lru_cache(maxsize=16)
def _delta_returning(alias, _registry):
    """The task types' `delta_annotations` as (attribute, SQL) pairs and their
    parameters, compiled once per database and set of task types."""
    query = AsyncTask.objects.using(alias).all().query.chain(UpdateQuery)
    compiler = query.get_compiler(alias)
    extra, params = [], []
    for name, expression in registry.delta_annotations().items():
        sql, expression_params = compiler.compile(
            expression.resolve_expression(query, allow_joins=False)
        )
        extra.append((name, sql))
        params.extend(expression_params)
    return tuple(extra), tuple(params)


def _append_clipped(task_id, text, offset=None) -> Appended:
    """A piece that does not fit whole, or whose offset is not the text's end
    (or a finished or unknown task)."""
    replayed = False
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
            if offset is not None:
                covered = task.partial_length - offset
                replayed = covered < 0 or covered >= len(text)
                text = "" if replayed else text[covered:]
            piece = text[: max(task.room, 0)]
            if piece:
                appended = _append_returning(AsyncTask.objects.filter(pk=task_id), piece)
                frames.publish_delta(appended, task.partial_length, piece)
    if conflict is not None:
        raise TaskConflict(AsyncTask.objects.get(pk=task_id))
    full = task.room - len(piece) <= 0
    return Appended(task.partial_length, piece, task.status, full, replayed)


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


def claim_reconciliation(task_id, now, quiet_since) -> bool:
    """Take a processing task for one question to n8n: one conditional UPDATE
    (not asked since `quiet_since`), so of any number of workers exactly one
    asks n8n about it per TASK_RECONCILE_AFTER_SECONDS (bookkeeping only)."""
    claimed = (
        AsyncTask.objects.filter(pk=task_id, status=TaskStatus.PROCESSING)
        .filter(Q(reconciled_at__isnull=True) | Q(reconciled_at__lt=quiet_since))
        .update(reconciled_at=now)
    )
    return claimed == 1


def create(
    *, task_type, workflow_id, input_data, created_by, metadata=None, source, along=()
) -> AsyncTask:
    """Store a new pending task and its first event (in the caller's transaction).

    `along`: the caller's own writes that name the new task, as (sql, params)
    pairs whose SQL says `{task_id}` where the task's id goes (a message that
    asks for the task, say). On PostgreSQL they join the INSERT's statement as
    data-modifying parts, so the task, its event and these are one round trip;
    elsewhere each runs after the INSERT with the id in its place.
    """
    task = AsyncTask(
        task_type=task_type,
        workflow_id=workflow_id,
        input_data=input_data,
        created_by=created_by,
        metadata=metadata or {},
    )
    if _one_statement():
        _insert_with_event(task, source, along)
    else:
        task.save(force_insert=True)
        record_creation(task, source)
        with connections[AsyncTask.objects.db].cursor() as cursor:
            for sql, params in along:
                cursor.execute(sql.format(task_id=int(task.pk)), params)
    return task


def _insert_with_event(task, source, along=()) -> None:
    """PostgreSQL: the task's INSERT (built by the ORM's compiler, as `save()`
    builds it), its first event and the caller's `along` as one statement."""
    alias = AsyncTask.objects.db
    fields = [f for f in AsyncTask._meta.local_concrete_fields if not f.primary_key]
    query = InsertQuery(AsyncTask)
    query.insert_values(fields, [task])
    ((insert_sql, params),) = query.get_compiler(using=alias).as_sql()
    params = [*params, str(source)]
    parts = ""
    for number, (part_sql, part_params) in enumerate(along):
        parts += f",\na{number} AS ({part_sql.format(task_id='(SELECT id FROM t)')})"
        params += part_params
    sql = (
        f"WITH t AS ({insert_sql} RETURNING id, version, status, current_step,"
        " status_message, created_at),\n"
        "e AS (INSERT INTO async_task_events"
        " (task_id, version, status, current_step, status_message, created_at, source)"
        " SELECT id, version, status, current_step, status_message, created_at, %s FROM t)"
        f"{parts}\nSELECT id FROM t"
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        task.pk = cursor.fetchone()[0]
    task._state.adding = False
    task._state.db = alias


def _run_hook(task, name):
    kind = registry.get(task.task_type)
    hook = getattr(kind, name, None) if kind else None
    if hook is not None:
        hook(task)


# --- the change's event ---------------------------------------------------------
# A task's history: one `async_task_events` row per change, written by the door.
#
# The rule, written once below for both databases: progress within one step
# (`processing` with the same `current_step` as the change before) updates that
# step's row instead of adding one (_EVENT_MERGE), and at most
# TASK_EVENTS_MAX_PER_TASK rows are kept per task, the final one always
# (_EVENT_ADD). `c` is the changed row. On PostgreSQL the change and its event
# are one statement (the UPDATE … RETURNING becomes the first part of a query
# whose data-modifying parts merge or add the event), so a `processing`
# callback costs one round trip and needs no transaction of its own; on SQLite,
# which has no data-modifying CTEs, the same two statements follow the UPDATE
# in the door's transaction, reading the changed row back by its id.
#
# Every change writes at most one row and bumps `version` by one, so a task has
# never more events than its version before the change: the cap needs
# counting only past that.

_TERMINAL = tuple(str(s) for s in TaskStatus.terminal())

_EVENT_MERGE = """
UPDATE async_task_events AS e
SET version = c.version, status_message = c.status_message
FROM {changed} c
WHERE c.status = %s AND e.task_id = c.id AND e.version = c.version - 1
  AND e.status = %s AND e.current_step = c.current_step
"""

_EVENT_ADD = """
INSERT INTO async_task_events
  (task_id, version, status, current_step, status_message, created_at, source)
SELECT c.id, c.version, c.status, c.current_step, c.status_message, c.updated_at, %s
FROM {changed} c
WHERE {not_merged}
  AND (c.status IN ({terminal}) OR c.version <= %s
       OR (SELECT COUNT(*) FROM async_task_events x WHERE x.task_id = c.id) < %s)
"""

_TERMINAL_PLACES = ", ".join(["%s"] * len(_TERMINAL))


def _merge_params():
    processing = str(TaskStatus.PROCESSING)
    return [processing, processing]


def _add_params(source):
    cap = settings.TASK_EVENTS_MAX_PER_TASK
    return [str(source), *_TERMINAL, cap, cap]


def _with_event(source):
    """For PostgreSQL: wrap the door's UPDATE and the event rule into one statement."""

    def compose(update_sql, params, columns):
        merge = _EVENT_MERGE.format(changed="changed")
        add = _EVENT_ADD.format(
            changed="changed",
            not_merged="NOT EXISTS (SELECT 1 FROM merged)",
            terminal=_TERMINAL_PLACES,
        )
        sql = (
            f"WITH changed AS ({update_sql} RETURNING *),\n"
            f"merged AS ({merge} RETURNING e.id),\n"
            f"added AS ({add} RETURNING id)\n"
            f"SELECT {columns} FROM changed"
        )
        return sql, [*params, *_merge_params(), *_add_params(source)]

    return compose


# The changed row, read back by its id (SQLite).
_CHANGED_BY_ID = (
    "(SELECT id, status, version, current_step, status_message, updated_at"
    " FROM async_tasks WHERE id = %s)"
)


def _add_event(task, source) -> None:
    """For SQLite: the same rule as two statements after the UPDATE."""
    connection = connections[AsyncTask.objects.db]
    with connection.cursor() as cursor:
        if task.status == TaskStatus.PROCESSING:  # the merge's own first condition
            merge = _EVENT_MERGE.format(changed=_CHANGED_BY_ID)
            cursor.execute(merge, [task.pk, *_merge_params()])
            if cursor.rowcount:
                return
        add = _EVENT_ADD.format(
            changed=_CHANGED_BY_ID, not_merged="1 = 1", terminal=_TERMINAL_PLACES
        )
        source_param, *rest = _add_params(source)
        cursor.execute(add, [source_param, task.pk, *rest])


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
