"""The webhook with every request committing for real, as in production.

Every callback takes the same path through the door (tests/tasks/test_webhook.py
runs inside a test transaction); here the statements are counted with
nothing to roll back.
"""

import pytest
from django.db import connection

from tests.task_support import chat_task, post_callback
from tests.tasks import test_webhook

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_processing_callback_is_one_write_and_its_event(client, user, django_assert_num_queries):
    task = chat_task(user)
    # On PostgreSQL one statement: the conditional UPDATE … RETURNING whose
    # data-modifying parts coalesce or insert the event. Elsewhere one
    # transaction: BEGIN, the UPDATE … RETURNING, the try to coalesce with the
    # last event, the event's INSERT, COMMIT (no count: a task this young
    # cannot have reached the cap).
    one_statement = connection.vendor == "postgresql"
    with django_assert_num_queries(1 if one_statement else 5):
        response = post_callback(client, task.pk, {"status": "processing", "current_step": "a"})
    assert response.status_code == 200
    # More progress in the same step: the write and the coalesced event.
    with django_assert_num_queries(1 if one_statement else 4):
        post_callback(client, task.pk, {"status": "processing", "current_step": "a"})
    task.refresh_from_db()
    assert (task.status, task.current_step, task.version) == ("processing", "a", 3)
    assert list(task.events.values_list("current_step", "version")) == [("a", 3)]


def test_a_processing_callback_for_a_finished_task_still_answers_409(client, user):
    task = chat_task(user)
    post_callback(client, task.pk, test_webhook.COMPLETED)
    response = post_callback(client, task.pk, {"status": "processing"})
    assert response.status_code == 409
    assert response.json()["status"] == "completed"


def test_a_completed_callback_stores_the_reply_in_a_bounded_number_of_statements(
    client, user, django_assert_num_queries, monkeypatch
):
    from chat import services as chat_services
    from chat.models import Message
    from tasks.outbound import dispatch
    from tests import factories

    monkeypatch.setattr(dispatch, "schedule_dispatch", lambda task_id: None)
    conversation = factories.conversation(user)
    question = chat_services.send_message(user, conversation, "hello")
    task_id = question.async_task_id
    # The task's type; the change and its event (one statement on PostgreSQL,
    # the UPDATE and the event's INSERT elsewhere) inside BEGIN … COMMIT; one
    # read of what the reply needs; its INSERT; one UPDATE of the conversation;
    # after the commit, the task's steps for the reply's "Details". A first
    # answer has no versions to count.
    one_statement = connection.vendor == "postgresql"
    with django_assert_num_queries(8 if one_statement else 9):
        response = post_callback(client, task_id, test_webhook.COMPLETED)
    assert response.status_code == 200
    reply = Message.objects.get(async_task_id=task_id, role="assistant")
    assert reply.parent_id == question.pk
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == reply.pk


def test_a_piece_of_streamed_text_is_one_statement(client, user, django_assert_num_queries):
    task = chat_task(user)
    post_callback(client, task.pk, {"status": "processing", "current_step": "writing"})
    # The conditional UPDATE … RETURNING that appends and reads the offset.
    with django_assert_num_queries(1):
        response = post_callback(client, task.pk, {"status": "processing", "delta": "Hel"})
    assert response.status_code == 200
    post_callback(client, task.pk, {"status": "processing", "delta": "lo"})
    task.refresh_from_db()
    assert task.partial_text == "Hello"
