"""The three tables as a script or an n8n Postgres node sees them: columns,
types, nullability and database defaults read from the database's own
catalogue, and rows written with plain SQL that the app then reads and shows."""

import pytest
from django.db import connection
from django.test import Client

from chat.models import Conversation, Message
from tasks.models import AsyncTask, TaskStatus
from tests import factories
from tests.support import as_json, one, sql

pytestmark = pytest.mark.django_db

# Abstract kinds; what each is called on PostgreSQL and SQLite.
PG_TYPES = {
    "bigint": {"bigint"},
    "int": {"integer"},
    "text": {"text"},
    "varchar": {"character varying"},
    "bool": {"boolean"},
    "timestamp": {"timestamp with time zone"},
    "json": {"jsonb"},
    "fk-user": {"integer", "bigint"},
}
SQLITE_TYPES = {
    "bigint": {"integer", "bigint"},
    "int": {"integer"},
    "text": {"text"},
    "varchar": {"varchar"},
    "bool": {"bool"},
    "timestamp": {"datetime"},
    "json": {"text"},
    "fk-user": {"integer", "bigint"},
}

# column: (kind, nullable: True / False / None for "either")
SCHEMA = {
    "chat_conversations": {
        "id": ("bigint", False),
        "user_id": ("fk-user", False),
        "title": ("text", None),
        "created_at": ("timestamp", False),
        "updated_at": ("timestamp", False),
        "is_archived": ("bool", False),
        "metadata": ("json", False),
    },
    "chat_messages": {
        "id": ("bigint", False),
        "conversation_id": ("bigint", False),
        "role": ("varchar", False),
        "content": ("text", False),
        "thinking": ("text", None),
        "created_at": ("timestamp", False),
        "metadata": ("json", False),
        "async_task_id": ("bigint", True),
    },
    "async_tasks": {
        "id": ("bigint", False),
        "task_type": ("varchar", False),
        "workflow_id": ("varchar", False),
        "input_data": ("json", False),
        "output_data": ("json", True),
        "status": ("varchar", False),
        "current_step": ("varchar", None),
        "status_message": ("text", None),
        "n8n_execution_id": ("varchar", None),
        "created_by": ("fk-user", False),
        "created_at": ("timestamp", False),
        "processing_started_at": ("timestamp", True),
        "processing_completed_at": ("timestamp", True),
        "error_details": ("json", None),
        "metadata": ("json", False),
        "version": ("int", False),
    },
}

# The NOT NULL columns a writer names; every other NOT NULL column has a database default.
NAMED_BY_WRITER = {
    "chat_conversations": {"id", "user_id"},
    "chat_messages": {"id", "conversation_id", "role", "content"},
    "async_tasks": {"id", "task_type", "workflow_id", "created_by"},
}


def columns(table):
    """{name: (type, nullable, default)} read from the database's own catalogue."""
    if connection.vendor == "postgresql":
        rows = sql(
            "SELECT column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_name = %s",
            [table],
        )
        return {
            r["column_name"]: (r["data_type"], r["is_nullable"] == "YES", r["column_default"])
            for r in rows
        }
    rows = sql(f"PRAGMA table_info({table})")
    return {
        r["name"]: (
            r["type"].lower().split("(")[0],
            not r["notnull"] and not r["pk"],
            r["dflt_value"],
        )
        for r in rows
    }


@pytest.mark.parametrize("table", sorted(SCHEMA))
def test_table_has_every_contract_column_with_its_type_and_nullability(table):
    actual = columns(table)
    types = PG_TYPES if connection.vendor == "postgresql" else SQLITE_TYPES
    for name, (kind, nullable) in SCHEMA[table].items():
        assert name in actual, f"{table}.{name} is missing"
        db_type, db_nullable, _default = actual[name]
        assert db_type in types[kind], f"{table}.{name} is {db_type}, expected {kind}"
        if nullable is not None:
            assert db_nullable is nullable, f"{table}.{name} nullable={db_nullable}"


@pytest.mark.parametrize("table", sorted(SCHEMA))
def test_every_not_null_column_a_writer_may_omit_has_a_database_default(table):
    missing = [
        name
        for name, (_type, nullable, default) in columns(table).items()
        if not nullable and name not in NAMED_BY_WRITER[table] and default is None
    ]
    assert missing == []


def test_the_named_database_defaults():
    defaults = {table: {k: v[2] for k, v in columns(table).items()} for table in SCHEMA}
    assert "pending" in defaults["async_tasks"]["status"]
    assert defaults["chat_conversations"]["is_archived"].lower() in ("false", "0", "'0'")
    for table, column in (
        ("chat_conversations", "metadata"),
        ("chat_messages", "metadata"),
        ("async_tasks", "metadata"),
        ("async_tasks", "input_data"),
    ):
        assert "{}" in defaults[table][column], (table, column)
    for table in SCHEMA:
        assert defaults[table]["created_at"], table
    assert defaults["async_tasks"]["version"].strip("'") == "1"


# --- rows written with plain SQL ----------------------------------------------------------


def test_a_conversation_inserted_with_plain_sql_gets_its_defaults(user):
    sql("INSERT INTO chat_conversations (user_id) VALUES (%s)", [user.pk])
    conversation = Conversation.objects.get()
    assert conversation.is_archived is False
    assert conversation.metadata == {}
    assert conversation.title == ""
    assert conversation.created_at is not None and conversation.updated_at is not None


def test_a_message_inserted_with_plain_sql_gets_its_defaults_and_is_shown(user):
    conversation = factories.conversation(user)
    sql("INSERT INTO chat_messages (conversation_id) VALUES (%s)", [conversation.pk])
    message = Message.objects.get()
    assert (message.role, message.content, message.thinking, message.metadata) == (
        "user",
        "",
        "",
        {},
    )
    assert message.created_at is not None and message.async_task_id is None
    # A reply written by a script, naming only what a writer names.
    sql(
        "INSERT INTO chat_messages (conversation_id, role, content) VALUES (%s, %s, %s)",
        [conversation.pk, "assistant", "from a script"],
    )
    row = one(
        "SELECT * FROM chat_messages WHERE conversation_id = %s AND role = %s",
        [conversation.pk, "assistant"],
    )
    assert row["thinking"] in ("", None)
    assert as_json(row["metadata"]) == {}
    assert row["created_at"] is not None
    assert row["async_task_id"] is None
    # and the page shows it
    client = Client()
    client.force_login(user)
    page = client.get(f"/chat/{conversation.pk}/").content.decode()
    assert f'id="message-{row["id"]}"' in page
    assert "from a script" in page


def test_a_task_inserted_with_plain_sql_is_a_valid_pending_task(user):
    sql(
        "INSERT INTO async_tasks (task_type, workflow_id, input_data, created_by) "
        "VALUES (%s, %s, %s, %s)",
        ["chat", "chat-reply", '{"message": "hi"}', user.pk],
    )
    row = one("SELECT * FROM async_tasks WHERE created_by = %s", [user.pk])
    assert row["status"] == "pending"
    assert row["version"] == 1
    assert as_json(row["metadata"]) == {}
    assert row["output_data"] is None
    assert row["processing_started_at"] is None and row["processing_completed_at"] is None
    assert row["created_at"] is not None
    task = AsyncTask.objects.get(pk=row["id"])
    assert task.status == TaskStatus.PENDING
    assert task.input_data == {"message": "hi"}
    assert task.metadata == {}
    assert task.current_step == ""
    # the owner sees it through /tasks/{id}/
    client = Client()
    client.force_login(user)
    response = client.get(f"/tasks/{row['id']}/")
    assert response.status_code == 200
    assert response.json()["task"]["status"] == "pending"
