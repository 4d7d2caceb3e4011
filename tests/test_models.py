"""The three tables: constraints, timestamps, cascades, database defaults."""

import datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat.models import Conversation, Message
from tasks.models import AsyncTask, TaskStatus
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


def test_task_inserted_with_plain_sql_is_a_valid_pending_task(user):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO async_tasks (task_type, workflow_id, input_data, created_by) "
            "VALUES (%s, %s, %s, %s)",
            ["chat", "chat-reply", '{"message": "hi"}', user.pk],
        )
    task = AsyncTask.objects.get()
    assert task.status == TaskStatus.PENDING
    assert task.version == 1
    assert task.metadata == {}
    assert task.input_data == {"message": "hi"}
    assert task.created_at is not None
    assert task.current_step == ""


def test_conversation_inserted_with_plain_sql_gets_its_defaults(user):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO chat_conversations (user_id) VALUES (%s)", [user.pk])
    conversation = Conversation.objects.get()
    assert conversation.is_archived is False
    assert conversation.metadata == {}
    assert conversation.title == ""
    assert conversation.created_at is not None and conversation.updated_at is not None


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


def test_every_task_save_bumps_its_version(user):
    task = factories.task(user)
    assert task.version == 1
    task.status_message = "edited"
    task.save()
    assert task.version == 2
    task.save()
    task.refresh_from_db()
    assert task.version == 3


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


def test_json_columns_are_jsonb_on_postgresql(postgres_only):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_name IN ('chat_conversations', 'chat_messages', 'async_tasks') "
            "AND column_name IN ('metadata', 'input_data', 'output_data', 'error_details', 'id')"
        )
        types = {(table, column): kind for table, column, kind in cursor.fetchall()}
    assert types[("async_tasks", "input_data")] == "jsonb"
    assert types[("async_tasks", "output_data")] == "jsonb"
    assert types[("chat_conversations", "metadata")] == "jsonb"
    assert types[("chat_messages", "id")] == "bigint"
    assert types[("async_tasks", "id")] == "bigint"


def test_message_inserted_with_plain_sql_gets_its_defaults(user):
    conversation = factories.conversation(user)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO chat_messages (conversation_id) VALUES (%s)", [conversation.pk])
    message = Message.objects.get()
    assert (message.role, message.content, message.thinking, message.metadata) == (
        "user",
        "",
        "",
        {},
    )
    assert message.created_at is not None and message.async_task_id is None
