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
    on_branch = tasktypes._touch_statement(connection.alias, True)[0]
    off_branch = tasktypes._touch_statement(connection.alias, False)[0]
    assert on_branch != off_branch
    assert "CASE" in on_branch and "CASE" not in off_branch
