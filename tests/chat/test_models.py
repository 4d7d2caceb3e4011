"""The three tables: constraints, timestamps, cascades, names and indexes (their
columns and database defaults: tests/chat/test_schema.py)."""

import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat.models import Conversation, Message
from tasks.models import AsyncTask
from tests import factories

pytestmark = pytest.mark.django_db


def test_database_refuses_a_role_other_than_user_or_assistant(user):
    conversation = factories.conversation(user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Message.objects.create(conversation=conversation, role="system", content="x")
    assert not Message.objects.exists()


def test_database_refuses_a_role_written_with_plain_sql(user):
    conversation = factories.conversation(user)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chat_messages (conversation_id, role, content) VALUES (%s, %s, %s)",
            [conversation.pk, "robot", "x"],
        )


def test_database_refuses_an_unknown_task_status(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.task(user, status="sleeping")
    assert not AsyncTask.objects.exists()


def test_updated_at_moves_on_save_and_created_at_does_not(user):
    conversation = factories.conversation(user)
    past = timezone.now() - datetime.timedelta(hours=1)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=past, updated_at=past)
    conversation.refresh_from_db()
    conversation.title = "Renamed"
    conversation.save()
    conversation.refresh_from_db()
    assert conversation.updated_at > past
    assert conversation.created_at == past


def test_updated_at_moves_when_a_message_is_added(user):
    conversation = factories.conversation(user)
    past = timezone.now() - datetime.timedelta(hours=1)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=past, updated_at=past)
    factories.message(conversation)
    conversation.refresh_from_db()
    assert conversation.updated_at > past
    assert conversation.created_at == past


def test_a_plain_save_never_bumps_the_version_only_the_door_does(user):
    from tasks import door
    from tasks.models import EventSource

    task = factories.task(user)
    assert task.version == 1
    task.status_message = "edited"
    task.save()
    task.refresh_from_db()
    assert task.version == 1
    assert door.change(task.pk, source=EventSource.ADMIN, status_message="x").version == 2


def test_note_writes_bookkeeping_only(user):
    from tasks import door

    task = factories.task(user)
    assert door.note(task.pk, last_error="boom") == 1
    with pytest.raises(ValueError, match="status"):
        door.note(task.pk, status="completed")
    task.refresh_from_db()
    assert (task.status, task.last_error, task.version) == ("pending", "boom", 1)


def test_deleting_a_user_deletes_their_conversations_and_messages(user, other_user):
    mine = factories.conversation(user)
    factories.message(mine)
    theirs = factories.conversation(other_user)
    factories.message(theirs)
    user.delete()
    assert list(Conversation.objects.all()) == [theirs]
    assert Message.objects.filter(conversation=theirs).count() == 1
    assert Message.objects.count() == 1


def test_deleting_a_task_leaves_its_messages_with_a_null_task(user):
    conversation = factories.conversation(user)
    task = factories.task(user)
    message = factories.message(conversation, async_task=task)
    task.delete()
    message.refresh_from_db()
    assert message.async_task_id is None
    assert Message.objects.count() == 1


def test_table_names_follow_the_original_design():
    assert Conversation._meta.db_table == "chat_conversations"
    assert Message._meta.db_table == "chat_messages"
    assert AsyncTask._meta.db_table == "async_tasks"
    assert AsyncTask._meta.get_field("created_by").column == "created_by"
    assert Message._meta.get_field("async_task").column == "async_task_id"


def test_listed_indexes_exist():
    with connection.cursor() as cursor:
        constraints = {}
        for table in ("chat_conversations", "chat_messages", "async_tasks"):
            constraints[table] = [
                tuple(info["columns"])
                for info in connection.introspection.get_constraints(cursor, table).values()
                if info["index"]
            ]
    assert ("user_id", "updated_at") in constraints["chat_conversations"]
    assert ("conversation_id", "created_at") in constraints["chat_messages"]
    for columns in (
        ("status", "created_at"),
        ("created_by", "created_at"),
        ("n8n_execution_id",),
        ("task_type",),
    ):
        assert columns in constraints["async_tasks"], columns
