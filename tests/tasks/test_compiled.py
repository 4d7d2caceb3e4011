"""Queries compiled once (tasks/compiled.py): the same rows as the ORM's own
query, for any values, and a stand-in that does not reach the SQL is caught."""

import pytest
from django.db.models import Count, Exists, OuterRef, Q

from tasks.compiled import compile_queryset, stand_in, text_stand_in
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
