"""Queries and UPDATEs compiled once (tasks/compiled.py): the same rows and
the same statement as the ORM's own, for any values, an UPDATE that changes
the row given and no other, and a stand-in that does not reach the SQL is
caught when the statement is compiled."""

from datetime import UTC, datetime

import pytest
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.sql import UpdateQuery

from tasks.compiled import (
    LostStandIn,
    compile_queryset,
    compile_update,
    datetime_stand_in,
    matched_value,
    stand_in,
    text_stand_in,
)
from tasks.models import AsyncTask, AsyncTaskEvent, TaskStatus
from tests.task_support import chat_task

pytestmark = pytest.mark.django_db

_ID, _STATUS = stand_in(1), text_stand_in("status")


def _query(task_id, status):
    events = AsyncTaskEvent.objects.filter(task_id=OuterRef("pk"))
    return (
        AsyncTask.objects.filter(Q(pk=task_id) | Q(status=status))
        .annotate(has_events=Exists(events), steps=Count("events"))
        .order_by("pk")
    )


def test_a_compiled_query_returns_what_the_orm_returns_for_any_values(user):
    tasks = [chat_task(user) for _ in range(3)]
    AsyncTask.objects.filter(pk=tasks[1].pk).update(status="processing")
    compiled = compile_queryset(_query(_ID, _STATUS), {_ID, _STATUS})
    for task_id, status in ((tasks[0].pk, "processing"), (tasks[2].pk, "failed"), (-1, "pending")):
        rows = compiled.instances(AsyncTask, {_ID: task_id, _STATUS: status})
        expected = list(_query(task_id, status))
        assert [r.pk for r in rows] == [e.pk for e in expected]
        for row, want in zip(rows, expected, strict=True):
            assert (row.status, row.created_at, row.input_data) == (
                want.status,
                want.created_at,
                want.input_data,
            )
            assert (bool(row.has_events), row.steps) == (want.has_events, want.steps)
            assert row._state.adding is False


def test_a_stand_in_the_sql_lost_is_refused():
    # `pk` compared with text the compiler drops or keeps as given; a stand-in
    # that is not among the parameters would silently ignore the call's value.
    with pytest.raises(AssertionError, match="lost its stand-ins"):
        compile_queryset(AsyncTask.objects.filter(pk=5), {_ID})


def test_a_callback_reads_the_task_kind_as_the_orm_does(user):
    from tasks.callbacks import _kind_query, task_kind
    from tests import factories

    task = factories.task(user, task_type="chat", status=TaskStatus.PROCESSING)
    expected = AsyncTask.objects.values_list("task_type", "status").get(pk=task.pk)
    assert task_kind(task.pk) == expected
    for missing in (task.pk + 1000, 0, -5, 2**70):
        with pytest.raises(AsyncTask.DoesNotExist):
            task_kind(missing)
    assert "ORDER BY" not in _kind_query(AsyncTask.objects.db).sql


# An UPDATE compiled once (`compile_update`): the ORM's own statement for any
# values, each slot prepared as the field it is written into prepares it.

_UPDATE_STAND_INS = {
    "id": stand_in(1),
    "version": stand_in(2),
    "now": datetime_stand_in(0),
    "output": {text_stand_in("output"): 1},
    "message": text_stand_in("message"),
    "attempts": stand_in(3),
}


def _update(values):
    """The test's UPDATE: its filters and new values from `values` (stand-ins or a call's)."""
    queryset = AsyncTask.objects.filter(
        pk=values["id"], version=values["version"], status__in=TaskStatus.unfinished()
    )
    return queryset, {
        "updated_at": values["now"],
        "output_data": values["output"],
        "status_message": values["message"],
        "attempts": values["attempts"],
        "version": F("version") + 1,
    }


def _fields(**changes):
    """The fields that prepare the slots' values (the others are an id or text)."""
    fields = {"now": "updated_at", "output": "output_data", "attempts": "attempts"} | changes
    return {name: AsyncTask._meta.get_field(field) for name, field in fields.items()}


def _compile_update():
    return compile_update(*_update(_UPDATE_STAND_INS), _UPDATE_STAND_INS, _fields())


def _call(task, **changes):
    values = {
        "id": task.pk,
        "version": task.version,
        "now": datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "output": {"content": "hé 🌍", "n": [1, None]},
        "message": "line\nwith 'quotes'",
        "attempts": 4,
    }
    return values | changes


def _typed(params):
    """Each parameter's type and value (psycopg's Jsonb compared by its JSON)."""
    return [(type(p), matched_value(p)) for p in params]


def test_binding_an_update_fills_each_slot_as_the_orm_prepares_it(user):
    statement = _compile_update()
    assert {name for _index, name, _field in statement.slots} == set(_UPDATE_STAND_INS)
    for number, task in enumerate([chat_task(user), chat_task(user)]):
        values = _call(task, attempts=number + 7, message=f"call {number}")
        queryset, new_values = _update(values)
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(new_values)
        sql, params = query.get_compiler(AsyncTask.objects.db).as_sql()
        bound = statement.bind(values)
        assert statement.sql == sql
        assert _typed(bound) == _typed(params)
        assert _typed(statement.params) != _typed(params)  # the stand-ins are gone


def test_an_update_s_stand_in_the_compiler_lost_fails_at_compile_time():
    queryset, values = _update(_UPDATE_STAND_INS)
    with pytest.raises(LostStandIn, match=r"lost its stand-ins \['missing'\]"):
        compile_update(queryset, values, {**_UPDATE_STAND_INS, "missing": stand_in(9)}, _fields())
    # A stand-in is found as its field prepares it: declared with another
    # field (text), the integer written into `attempts` is not found.
    wrong = _fields(attempts="status_message")
    with pytest.raises(AssertionError, match=r"lost its stand-ins \['attempts'\]"):
        compile_update(queryset, values, _UPDATE_STAND_INS, wrong)


def test_a_compiled_update_changes_exactly_the_row_given(user):
    tasks = [chat_task(user) for _ in range(3)]
    columns = ("pk", "version", "status_message", "output_data", "attempts", "updated_at")
    before = list(AsyncTask.objects.order_by("pk").values_list(*columns))
    statement = _compile_update()
    values = _call(tasks[1])
    assert statement.execute(values) == 1
    after = list(AsyncTask.objects.order_by("pk").values_list(*columns))
    assert [after[0], after[2]] == [before[0], before[2]]
    assert after[1] == (
        tasks[1].pk,
        tasks[1].version + 1,
        values["message"],
        values["output"],
        values["attempts"],
        values["now"],
    )
    # The version it was given is no longer the row's: nothing changes.
    assert statement.execute(_call(tasks[1], message="stale")) == 0
    assert statement.execute(_call(tasks[1], id=tasks[2].pk + 1000)) == 0
    assert list(AsyncTask.objects.order_by("pk").values_list(*columns)) == after


def test_a_compiled_query_works_out_its_converters_once(user, monkeypatch):
    from django.db import connection

    task = chat_task(user)
    compiled = compile_queryset(_query(_ID, _STATUS), {_ID, _STATUS})
    asked = []
    original = type(connection.ops).get_db_converters
    monkeypatch.setattr(
        type(connection.ops),
        "get_db_converters",
        lambda self, expression: asked.append(expression) or original(self, expression),
    )
    first = compiled.rows({_ID: task.pk, _STATUS: "x"})
    count = len(asked)
    assert count == len(compiled.expressions)
    second = compiled.rows({_ID: task.pk, _STATUS: "x"})
    assert len(asked) == count
    assert first == second and first[0]["created_at"] == task.created_at
