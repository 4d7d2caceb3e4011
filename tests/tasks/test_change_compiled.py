"""The door's change UPDATE, compiled by the ORM once per shape with stand-ins
(tasks/door.py `_change_statement`, with tasks/compiled.py `compile_update`):
the statement and the row it writes are the ORM's own, whatever the values,
and a new shape is a new statement."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.sql import UpdateQuery
from django.test import override_settings
from django.utils import timezone

from tasks import door
from tasks.models import REOPENABLE, AsyncTask, AsyncTaskEvent, TaskStatus, statuses_before
from tests.task_support import chat_task

pytestmark = pytest.mark.django_db

NOW = timezone.now()
UNFINISHED = [s.value for s in TaskStatus.unfinished()]

# (status, fields, reopen, only from, expect_version, sequence)
SHAPES = [
    ("processing", {"current_step": "generating", "status_message": "Thinking"}, 0, None, None, None),  # noqa: E501
    ("processing", {"current_step": "generating"}, 0, None, None, 7),
    ("completed", {"output_data": {"content": "hi", "n": [1, None]}, "status_message": ""}, 0, None, 3, None),  # noqa: E501
    ("failed", {"error_details": {"message": "x"}, "status_message": "no", "n8n_execution_id": "17"}, 0, None, None, None),  # noqa: E501
    ("failed", {"error_details": None, "restarted_at": NOW, "attempts": 2}, 0, None, None, None),
    ("pending", {"last_error": "", "metadata": {"a": 1}, "next_attempt_at": NOW}, 1, None, None, None),  # noqa: E501
    (None, {"status_message": "later", "claimed_until": None}, 0, ["processing"], None, None),
    ("cancelled", {"status_message": "stopped", "processing_completed_at": NOW}, 0, None, 1, None),
]  # fmt: skip


def compiled(task_id, status, fields, allowed=None, version=None, sequence=None, now=NOW):
    allowed = statuses_before(status) if allowed is None else allowed
    return door._compiled_change(task_id, status, fields, now, False, allowed, version, sequence)


def allowed_for(status, reopen, only):
    if reopen:
        allowed = [s.value for s in REOPENABLE]
    elif status is not None:
        allowed = statuses_before(status)
    else:
        allowed = list(UNFINISHED)
    return [s for s in allowed if only is None or s in only]


def orm_statement(task_id, status, fields, reopen, allowed, version, sequence):
    """The same change compiled by the ORM as `change()` did before (fields in
    the compiled statement's order)."""
    ordered = {name: fields[name] for name in sorted(fields)}
    filters, values, conditions = door._change_query(
        task_id, status, ordered, NOW, reopen, allowed, version, sequence
    )
    query = AsyncTask.objects.filter(*conditions, **filters).query.chain(UpdateQuery)
    query.add_update_values(values)
    return query.get_compiler(AsyncTask.objects.db).as_sql()


def _plain(param):
    """A parameter as compared: its type and value (psycopg's Jsonb unwrapped)."""
    inner = getattr(param, "obj", param)
    if isinstance(inner, dict):
        inner = json.dumps(inner, sort_keys=True)
    return type(param), inner


def plain(params):
    return [_plain(p) for p in params]


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_the_compiled_change_is_the_orms_own_statement(shape):
    status, fields, reopen, only, version, sequence = SHAPES[shape]
    allowed = allowed_for(status, reopen, only)
    for task_id, given in ((41, fields), (42, {k: v for k, v in fields.items()})):
        compiled = door._compiled_change(
            task_id, status, given, NOW, reopen, allowed, version, sequence
        )
        assert compiled is not None
        sql, params = orm_statement(task_id, status, given, reopen, allowed, version, sequence)
        assert compiled[0] == sql
        assert plain(compiled[1]) == plain(params)


def test_other_values_of_one_shape_fill_the_same_statement():
    later = NOW + timedelta(seconds=5)
    first = compiled(1, "failed", {"error_details": {"a": 1}, "restarted_at": NOW}, version=4)
    second = compiled(
        2, "failed", {"error_details": {"b": [2]}, "restarted_at": later}, version=9, now=later
    )
    assert first[0] == second[0]
    values = plain(second[1])
    assert _plain(2) in values and _plain(9) in [(int, v) for _t, v in values]
    expected = orm_statement(
        2, "failed", {"error_details": {"b": [2]}, "restarted_at": later}, False,
        statuses_before("failed"), 9, None,
    )  # fmt: skip
    # `now` is NOW in orm_statement: compare all but the change's own time.
    assert len(values) == len(expected[1])


def test_a_new_shape_is_a_new_statement():
    base = compiled(1, "processing", {"current_step": "a"})
    others = [
        compiled(1, "processing", {"current_step": "a"}, version=2),
        compiled(1, "processing", {"current_step": "a"}, sequence=5),
        compiled(1, "processing", {"current_step": None}),
        compiled(1, "processing", {"status_message": "a"}),
        compiled(1, "processing", {"current_step": "a"}, allowed=["processing"]),
        compiled(1, "completed", {"current_step": "a"}),
    ]
    statements = {base[0], *(other[0] for other in others)}
    assert len(statements) == len(others) + 1
    assert '"current_step" = NULL' in others[2][0]


def test_an_expression_or_an_unknown_field_is_left_to_the_orm():
    from django.db.models import F

    assert compiled(1, "processing", {"attempts": F("attempts") + 1}) is None
    assert compiled(1, "processing", {"workflow_id": "x"}) is None
    with pytest.raises(TypeError):
        door.change(1, source="worker", status="processing", workflow_id="x")


def test_a_change_compiles_no_statement_once_its_shape_is_known(user, monkeypatch):
    from django.db.models.sql.compiler import SQLUpdateCompiler

    first, second = chat_task(user), chat_task(user)
    door.change(
        first.pk, source="callback", status="processing", current_step="a", status_message="b"
    )
    compiled = []
    original = SQLUpdateCompiler.as_sql
    monkeypatch.setattr(
        SQLUpdateCompiler, "as_sql", lambda self: compiled.append(1) or original(self)
    )
    door.change(
        second.pk, source="callback", status="processing", current_step="c", status_message="d"
    )
    door.change(
        first.pk, source="callback", status="processing", current_step="e", status_message="f"
    )
    assert compiled == []
    rows = dict(
        AsyncTask.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "current_step")
    )
    assert rows == {first.pk: "e", second.pk: "c"}


def changes(task_id):
    """A task's life through the door, with a value of every kind."""
    door.change(
        task_id, source="dispatch", status="processing", current_step="start", n8n_execution_id="9"
    )
    door.change(
        task_id,
        source="callback",
        status="processing",
        current_step="start",
        status_message="going",
        sequence=3,
    )
    door.change(task_id, source="callback", status="processing", current_step="next", sequence=4)
    door.change(task_id, source="worker", claimed_until=None, status_message="still")
    version = AsyncTask.objects.get(pk=task_id).version
    door.change(
        task_id, source="worker", status="failed", expect_version=version,
        error_details={"message": "gone", "list": [1, {"a": None}]}, status_message="ended",
    )  # fmt: skip
    door.change(
        task_id, source="admin", status="pending", reopen=True,
        last_error="", metadata={"again": True}, restarted_at=NOW,
    )  # fmt: skip
    door.change(task_id, source="dispatch", status="processing", n8n_execution_id="10")
    door.change(
        task_id, source="callback", status="completed",
        output_data={"content": "hi 🌍"}, status_message="",
    )  # fmt: skip


TIMES = {"created_at", "updated_at", "processing_started_at", "processing_completed_at"}


@override_settings(TASK_EVENTS_MAX_PER_TASK=4)
def test_the_compiled_change_writes_what_the_orm_writes(user, monkeypatch):
    compiled, uncompiled = chat_task(user), chat_task(user)
    changes(compiled.pk)
    monkeypatch.setattr(door, "_compiled_change", lambda *args: None)
    changes(uncompiled.pk)
    one, other = (AsyncTask.objects.get(pk=t.pk) for t in (compiled, uncompiled))
    for field in AsyncTask._meta.concrete_fields:
        if field.attname in {"id", "input_data", *TIMES}:
            continue
        assert getattr(one, field.attname) == getattr(other, field.attname), field.name
    for field in TIMES - {"created_at"}:
        assert (getattr(one, field) is None) == (getattr(other, field) is None), field
    columns = ("version", "status", "current_step", "status_message", "source")
    events = [
        list(AsyncTaskEvent.objects.filter(task_id=t.pk).order_by("version").values_list(*columns))
        for t in (compiled, uncompiled)
    ]
    assert events[0] == events[1]
    # The cap of the settings of the moment (4), and the final event always.
    assert len(events[0]) == 5


def test_the_vendor_is_the_compiled_statements():
    """One statement per database: the stand-ins are prepared by the backend."""
    allowed = statuses_before("completed")
    sql, _params = compiled(1, "completed", {"output_data": {"x": 1}}, allowed=allowed)
    assert connection.ops.quote_name("async_tasks") in sql
    assert door._change_statement.cache_info().currsize >= 1
