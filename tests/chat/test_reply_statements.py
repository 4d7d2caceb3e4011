"""The statements a stored reply runs, compiled once (chat/replies/tasktypes.py):
each returns or writes what the ORM's own query does, and each shape has its own."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When

from chat.models import Conversation, Message, Role
from chat.replies import tasktypes
from tests import factories

pytestmark = pytest.mark.django_db


def orm_known(task, question_id):
    """The read as the ORM wrote it before it was compiled once."""
    return list(
        Message.objects.filter(Q(async_task=task, role=Role.ASSISTANT) | Q(pk=question_id))
        .annotate(answered=Exists(Message.objects.filter(parent_id=OuterRef("pk"))))
        .values("pk", "role", "async_task_id", "conversation_id", "answered")
    )


def by_pk(rows):
    return sorted(rows, key=lambda row: row["pk"])


def test_the_known_read_returns_what_the_orm_query_returns(user):
    conversation = factories.conversation(user)
    task = factories.task(user)
    other = factories.task(user)
    question = factories.message(conversation, async_task=task)
    factories.message(conversation, "noise", async_task=other)
    reply = factories.message(conversation, "hi", role=Role.ASSISTANT, async_task=task)
    factories.message(conversation, "on the reply", parent=reply)
    factories.message(conversation, "another reply", role=Role.ASSISTANT, async_task=other)
    for question_id in (question.pk, reply.pk, None, 999_999):
        expected = by_pk(orm_known(task, question_id))
        assert by_pk(tasktypes.known_rows(task, question_id)) == expected
    rows = tasktypes.known_rows(task, question.pk)
    assert {row["pk"] for row in rows} == {question.pk, reply.pk}
    assert all(type(row["answered"]) is bool for row in rows)


def test_the_known_read_has_one_statement_per_shape_without_an_order():
    with_question = tasktypes._known_query(connection.alias, True).sql
    without = tasktypes._known_query(connection.alias, False).sql
    assert with_question != without
    assert "ORDER BY" not in with_question and "ORDER BY" not in without


def orm_touch(conversation_id, now, question_id=None, reply_id=None):
    leaf = F("current_leaf_id")
    if question_id is not None:
        leaf = Case(
            When(current_leaf_id=question_id, then=Value(reply_id)),
            default=leaf,
            output_field=Conversation._meta.get_field("current_leaf_id"),
        )
    return Conversation.objects.filter(pk=conversation_id).update(
        updated_at=now, current_leaf_id=leaf
    )


@pytest.mark.parametrize("on_branch", [True, False], ids=["on-branch", "off-branch"])
@pytest.mark.parametrize("leaf_on_question", [True, False], ids=["leaf-on-question", "elsewhere"])
def test_the_conversation_update_writes_what_the_orm_update_writes(
    user, on_branch, leaf_on_question
):
    now = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    results = []
    for update in (orm_touch, tasktypes.touch_conversation):
        conversation = factories.conversation(user)
        question = factories.message(conversation)
        elsewhere = factories.message(conversation, "another branch")
        reply = factories.message(conversation, "hi", role=Role.ASSISTANT, parent=question)
        Conversation.objects.filter(pk=conversation.pk).update(
            current_leaf_id=question.pk if leaf_on_question else elsewhere.pk
        )
        args = (question.pk, reply.pk) if on_branch else ()
        count = update(conversation.pk, now, *args)
        conversation.refresh_from_db()
        leaf = {question.pk: "question", elsewhere.pk: "elsewhere", reply.pk: "reply"}
        results.append((count, conversation.updated_at, leaf[conversation.current_leaf_id]))
    assert results[0] == results[1]
    assert results[1][1] == now


def test_the_conversation_update_of_a_deleted_conversation_updates_nothing(user):
    conversation = factories.conversation(user)
    gone = conversation.pk
    conversation.delete()
    now = datetime(2031, 5, 6, tzinfo=UTC)
    assert tasktypes.touch_conversation(gone, now) == 0
    assert tasktypes.touch_conversation(gone, now, 1, 2) == 0


def test_the_conversation_update_has_one_statement_per_shape():
    on_branch = tasktypes._touch_statement(connection.alias, True).sql
    off_branch = tasktypes._touch_statement(connection.alias, False).sql
    assert on_branch != off_branch
    assert "CASE" in on_branch and "CASE" not in off_branch


def test_a_reply_s_steps_are_read_as_the_orm_reads_them(user, django_assert_num_queries):
    from chat.templatetags.chat_tags import task_steps
    from tasks import door
    from tasks.models import AsyncTask, EventSource, TaskStatus

    task = factories.task(user)
    door.record_creation(task)
    door.change(task.pk, source=EventSource.CALLBACK, status=TaskStatus.PROCESSING)
    door.change(task.pk, source=EventSource.CALLBACK, current_step="search")
    done = door.change(
        task.pk, source=EventSource.CALLBACK, status=TaskStatus.COMPLETED, output_data={}
    )
    expected = list(AsyncTask.objects.get(pk=task.pk).events.all())
    assert len(expected) >= 3
    tasktypes.load_steps(done)
    with django_assert_num_queries(0):
        loaded = list(done.events.all())
        steps = task_steps(done)
    fields = ("pk", "task_id", "version", "status", "current_step", "status_message", "source")
    assert [[getattr(e, f) for f in fields] + [e.created_at] for e in loaded] == [
        [getattr(e, f) for f in fields] + [e.created_at] for e in expected
    ]
    assert steps == task_steps(AsyncTask.objects.get(pk=task.pk))
    assert "ORDER BY" in tasktypes._steps_query(connection.alias).sql  # as the ORM orders them


def test_a_completed_reply_s_frame_reads_its_steps_once(  # its fragment: none again
    user, client, django_capture_on_commit_callbacks
):

    from tests.task_support import chat_task

    task = chat_task(user)
    queries = _completed(client, task, django_capture_on_commit_callbacks)
    events = [q["sql"] for q in queries.captured_queries if "async_task_events" in q["sql"]]
    reads = [sql for sql in events if sql.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1


@pytest.mark.parametrize("with_parent", [True, False], ids=["on-branch", "own-branch"])
def test_a_reply_s_insert_stores_what_the_orm_save_stores(user, with_parent):
    from django.forms.models import model_to_dict

    task = factories.task(user)
    conversation = factories.conversation(user)
    question = factories.message(conversation, async_task=task)
    made = []
    for store in (lambda m: m.save(touch_conversation=False), tasktypes.insert_reply):
        message = Message(
            conversation_id=conversation.pk,
            role=Role.ASSISTANT,
            content="A **reply** with `code`",
            thinking="some thought",
            async_task=task,
            metadata={"assistant": {"id": 3, "name": "Ada"}, "b": [1, 2]},
            parent_id=question.pk if with_parent else None,
            created_at=datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        )
        message.starts_branch = True
        store(message)
        assert message.pk is not None and not message._state.adding
        made.append(message)
    orm, compiled = made
    columns = [f.attname for f in Message._meta.concrete_fields if not f.primary_key]
    stored = [{name: getattr(Message.objects.get(pk=m.pk), name) for name in columns} for m in made]
    assert stored[0] == stored[1]
    assert model_to_dict(compiled, exclude=["id"]) == model_to_dict(orm, exclude=["id"])
    assert stored[1]["content_html"] and stored[1]["preview_text"]


def test_a_reply_s_insert_returns_only_its_id():
    sql = tasktypes._insert_statement(connection.alias)
    assert sql.count("RETURNING") == 1
    assert sql.split("RETURNING")[1].strip().endswith('"id"')


def test_a_completed_callback_is_a_bounded_number_of_statements(
    user, client, django_capture_on_commit_callbacks
):
    """Before the commit: the task's type, the door's change (with its event,
    one statement on PostgreSQL), the reply's read, INSERT and conversation
    UPDATE; after it, the reply's steps for its frame."""

    from tests.task_support import chat_task

    task = chat_task(user)
    # As a send makes it: the task names its question (the reply answers it).
    question = Message.objects.get(async_task=task)
    task.input_data["message_id"] = question.pk
    task.save(update_fields=["input_data"])
    Conversation.objects.filter(pk=question.conversation_id).update(current_leaf_id=question.pk)
    queries = _completed(client, task, django_capture_on_commit_callbacks)
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.parent_id == question.pk
    assert Conversation.objects.get(pk=question.conversation_id).current_leaf_id == reply.pk
    door = 1 if connection.vendor == "postgresql" else 2  # SQLite: the UPDATE, its event
    assert len(queries.captured_queries) == 1 + door + 3 + 1, [
        q["sql"][:70] for q in queries.captured_queries
    ]


def _completed(client, task, capture_on_commit):
    """POST a `completed` callback for `task` (its commit hooks run): the
    statements it made."""
    from django.test.utils import CaptureQueriesContext

    from tests.task_support import auth, webhook_url

    body = {"status": "completed", "output": {"content": "The **reply**", "thinking": ""}}
    with CaptureQueriesContext(connection) as queries:
        with capture_on_commit(execute=True):
            response = client.post(
                webhook_url(task.pk), body, content_type="application/json", **auth(task.pk)
            )
    assert response.status_code == 200
    return queries
