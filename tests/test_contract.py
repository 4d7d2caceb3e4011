"""The outside contract (docs/PROTOCOL.md, README) checked where other tests leave gaps.

Only public surfaces: HTTP (the test client or a real Daphne process), the
tables by their contract names with plain SQL, websockets through the ASGI
application, the `tasks_worker` command, and the dispatch JSON as a real HTTP
server on 127.0.0.1 receives it.
"""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from chatproject.asgi import application
from tasks.models import AsyncTask
from tests import factories, support
from tests.contract_names import DISPATCH_KEYS, MESSAGE_FRAME_KEYS, TASK_FRAME_KEYS
from tests.task_support import FakeN8n

JSON = {"HTTP_ACCEPT": "application/json"}


def sql(query, params=()):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        if cursor.description is None:
            return []
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def one(query, params=()):
    [row] = sql(query, params)
    return row


def as_json(value):
    """A JSON column read with plain SQL: text on SQLite (and raw jsonb), or decoded."""
    return json.loads(value) if isinstance(value, str) else value


def task_row(task_id):
    return one("SELECT * FROM async_tasks WHERE id = %s", [task_id])


# --- Tables: columns, types, nullability, database defaults ---------------------------

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


@pytest.mark.django_db
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


@pytest.mark.django_db
@pytest.mark.parametrize("table", sorted(SCHEMA))
def test_every_not_null_column_a_writer_may_omit_has_a_database_default(table):
    missing = [
        name
        for name, (_type, nullable, default) in columns(table).items()
        if not nullable and name not in NAMED_BY_WRITER[table] and default is None
    ]
    assert missing == []


@pytest.mark.django_db
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


@pytest.mark.django_db
def test_a_message_inserted_with_plain_sql_gets_its_defaults(user):
    conversation = factories.conversation(user)
    sql(
        "INSERT INTO chat_messages (conversation_id, role, content) VALUES (%s, %s, %s)",
        [conversation.pk, "assistant", "from a script"],
    )
    row = one("SELECT * FROM chat_messages WHERE conversation_id = %s", [conversation.pk])
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


@pytest.mark.django_db
def test_a_task_inserted_with_plain_sql_reads_as_pending_with_nulls(user):
    sql(
        "INSERT INTO async_tasks (task_type, workflow_id, input_data, created_by) "
        "VALUES (%s, %s, %s, %s)",
        ["chat", "chat-reply", json.dumps({"message": "hi"}), user.pk],
    )
    row = one("SELECT * FROM async_tasks WHERE created_by = %s", [user.pk])
    assert row["status"] == "pending"
    assert row["version"] == 1
    assert as_json(row["metadata"]) == {}
    assert row["output_data"] is None
    assert row["processing_started_at"] is None and row["processing_completed_at"] is None
    assert row["created_at"] is not None
    # the owner sees it through /tasks/{id}/
    client = Client()
    client.force_login(user)
    response = client.get(f"/tasks/{row['id']}/")
    assert response.status_code == 200
    assert "pending" in json.dumps(response.json())


# --- Configuration defaults -------------------------------------------------------------

CONTRACT_VARIABLES = (
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "REDIS_URL",
    "PUBLIC_BASE_URL",
    "N8N_BASE_URL",
    "N8N_WEBHOOK_SECRET",
    "N8N_CHAT_WORKFLOW",
    "TASK_TIMEOUT_SECONDS",
    "TASK_WEBHOOK_MAX_BYTES",
)

PRINT_SETTINGS = """
import json
from django.conf import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "SECRET_KEY": s.SECRET_KEY,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "CSRF_TRUSTED_ORIGINS": s.CSRF_TRUSTED_ORIGINS,
    "DATABASE_ENGINE": s.DATABASES["default"]["ENGINE"],
    "DATABASE_NAME": str(s.DATABASES["default"]["NAME"]),
    "LAYER": s.CHANNEL_LAYERS["default"]["BACKEND"],
    "PUBLIC_BASE_URL": s.PUBLIC_BASE_URL,
    "N8N_BASE_URL": s.N8N_BASE_URL,
    "N8N_WEBHOOK_SECRET": s.N8N_WEBHOOK_SECRET,
    "N8N_CHAT_WORKFLOW": s.N8N_CHAT_WORKFLOW,
    "TASK_TIMEOUT_SECONDS": s.TASK_TIMEOUT_SECONDS,
    "TASK_WEBHOOK_MAX_BYTES": s.TASK_WEBHOOK_MAX_BYTES,
}))
"""


def settings_in_a_fresh_process(**env):
    clean = {k: v for k, v in os.environ.items() if k not in CONTRACT_VARIABLES}
    clean.pop("DJANGO_SETTINGS_MODULE", None)
    clean.update(env)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PRINT_SETTINGS],
        cwd=support.BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    (support.BASE_DIR / ".env").exists(), reason="a local .env overrides the defaults"
)
def test_configuration_defaults():
    values = settings_in_a_fresh_process(SECRET_KEY="a-production-secret-" + "x" * 40)
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1"]
    assert values["CSRF_TRUSTED_ORIGINS"] == []
    assert values["DATABASE_ENGINE"] == "django.db.backends.sqlite3"
    assert values["DATABASE_NAME"] == str(support.BASE_DIR / "db.sqlite3")
    assert values["LAYER"] == "channels.layers.InMemoryChannelLayer"
    assert values["PUBLIC_BASE_URL"] == "http://127.0.0.1:8000"
    assert values["N8N_BASE_URL"] == ""
    assert values["N8N_WEBHOOK_SECRET"] == ""
    assert values["N8N_CHAT_WORKFLOW"] == "chat-reply"
    assert values["TASK_TIMEOUT_SECONDS"] == 120
    assert values["TASK_WEBHOOK_MAX_BYTES"] == 1048576


@pytest.mark.skipif(
    (support.BASE_DIR / ".env").exists(), reason="a local .env overrides the defaults"
)
def test_configuration_from_the_environment():
    values = settings_in_a_fresh_process(
        DEBUG="1",
        ALLOWED_HOSTS="chat.example.com,.example.org",
        CSRF_TRUSTED_ORIGINS="https://chat.example.com",
        DATABASE_URL="postgres://app@db.example.com:5432/chat",
        REDIS_URL="redis://127.0.0.1:6379/9",
        PUBLIC_BASE_URL="https://chat.example.com/",
        N8N_BASE_URL="http://n8n.example.com:5678",
        N8N_WEBHOOK_SECRET="s3cret",
        N8N_CHAT_WORKFLOW="my-chat",
        TASK_TIMEOUT_SECONDS="30",
        TASK_WEBHOOK_MAX_BYTES="2048",
    )
    assert values["DEBUG"] is True
    assert values["SECRET_KEY"]  # the development key, accepted with DEBUG on
    assert values["ALLOWED_HOSTS"] == ["chat.example.com", ".example.org"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://chat.example.com"]
    assert values["DATABASE_ENGINE"] == "django.db.backends.postgresql"
    assert values["LAYER"] == "channels_redis.core.RedisChannelLayer"
    assert values["PUBLIC_BASE_URL"] == "https://chat.example.com"
    assert values["N8N_BASE_URL"] == "http://n8n.example.com:5678"
    assert values["N8N_WEBHOOK_SECRET"] == "s3cret"
    assert values["N8N_CHAT_WORKFLOW"] == "my-chat"
    assert values["TASK_TIMEOUT_SECONDS"] == 30
    assert values["TASK_WEBHOOK_MAX_BYTES"] == 2048


# --- Send → dispatch → callback, through HTTP only -----------------------------------------


@pytest.fixture
def n8n_settings(settings):
    settings.PUBLIC_BASE_URL = "https://chat.example.test"
    settings.N8N_WEBHOOK_SECRET = "header-auth-secret"
    settings.TASK_DISPATCH_BACKOFF_SECONDS = 0.01
    settings.TASK_DISPATCH_CONNECT_TIMEOUT = 2.0
    settings.TASK_DISPATCH_READ_TIMEOUT = 5.0
    return settings


@pytest.mark.django_db
def test_a_sent_message_reaches_n8n_and_its_callback_becomes_the_reply(
    n8n_settings, user, client, capsys
):
    n8n_settings.N8N_CHAT_WORKFLOW = "reply-flow"
    n8n_settings.TASK_TIMEOUT_SECONDS = 77
    client.force_login(user)
    response = client.post("/chat/new/", {"title": "Trip", "content": "Where to go?"})
    assert response.status_code == 303
    conversation_id = int(response["Location"].rstrip("/").split("/")[-1])
    assert response["Location"] == f"/chat/{conversation_id}/"
    first = one("SELECT * FROM chat_messages WHERE conversation_id = %s", [conversation_id])
    # The first message waits for a reply: the next send is refused with 409 JSON.
    refused = client.post(f"/chat/{conversation_id}/messages/", {"content": "more"}, **JSON)
    assert refused.status_code == 409 and "error" in refused.json()

    with FakeN8n([(200, {"executionId": "exec-1"}, 0)]) as n8n:
        n8n_settings.N8N_BASE_URL = n8n.base_url
        call_command("tasks_worker", "--once")
    assert "dispatched 1" in capsys.readouterr().out
    [request] = n8n.requests
    task_id = first["async_task_id"]
    assert request["path"] == "/webhook/reply-flow"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["content-type"].startswith("application/json")
    assert headers["authorization"] == "Bearer header-auth-secret"
    assert headers["idempotency-key"] == f"task-{task_id}"
    body = request["body"]
    assert set(body) == DISPATCH_KEYS
    assert body["task_id"] == task_id
    assert (body["task_type"], body["workflow_id"]) == ("chat", "reply-flow")
    assert body["timeout_seconds"] == 77
    assert body["callback_url"] == f"https://chat.example.test/tasks/{task_id}/webhook/"
    assert body["input"] == {
        "conversation_id": conversation_id,
        "session_id": str(conversation_id),
        "message_id": first["id"],
        "message": "Where to go?",
        "history": [],
    }
    row = task_row(task_id)
    assert (row["status"], row["current_step"], row["n8n_execution_id"]) == (
        "processing",
        "dispatched",
        "exec-1",
    )
    assert row["processing_started_at"] is not None
    assert row["workflow_id"] == "reply-flow"

    # n8n answers through the callback URL with the token it was given.
    path = body["callback_url"].removeprefix("https://chat.example.test")
    answer = Client().post(
        path,
        data=json.dumps(
            {"status": "completed", "output": {"content": "Lisbon.", "thinking": "sunny"}}
        ),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {body['callback_token']}",
    )
    assert answer.status_code == 200
    assert answer.json() == {"task_id": task_id, "status": "completed"}
    replies = sql(
        "SELECT content, thinking, async_task_id FROM chat_messages "
        "WHERE conversation_id = %s AND role = 'assistant'",
        [conversation_id],
    )
    assert replies == [{"content": "Lisbon.", "thinking": "sunny", "async_task_id": task_id}]
    row = task_row(task_id)
    assert row["status"] == "completed"
    assert as_json(row["output_data"]) == {"content": "Lisbon.", "thinking": "sunny"}
    assert row["processing_completed_at"] is not None
    detail = client.get(f"/tasks/{task_id}/")
    assert detail.status_code == 200
    assert detail["Content-Type"].startswith("application/json")
    assert detail.json()["task"]["status"] == "completed"
    assert set(detail.json()["task"]) == TASK_FRAME_KEYS

    # The next message carries the history, oldest first, and is dispatched too.
    sent = client.post(f"/chat/{conversation_id}/messages/", {"content": "And then?"}, **JSON)
    assert sent.status_code == 201
    assert {"message", "task"} <= set(sent.json())
    with FakeN8n([(202, {"execution_id": 99}, 0)]) as n8n:
        n8n_settings.N8N_BASE_URL = n8n.base_url
        call_command("tasks_worker", "--once")
    [request] = n8n.requests
    assert request["body"]["input"]["history"] == [
        {"role": "user", "content": "Where to go?"},
        {"role": "assistant", "content": "Lisbon."},
    ]
    assert request["body"]["input"]["message_id"] == sent.json()["message"]["id"]
    assert task_row(sent.json()["task"]["id"])["n8n_execution_id"] == "99"


@pytest.mark.django_db
def test_no_authorization_header_is_sent_without_a_secret(n8n_settings, user):
    n8n_settings.N8N_WEBHOOK_SECRET = ""
    client = Client()
    client.force_login(user)
    conversation = factories.conversation(user)
    assert client.post(f"/chat/{conversation.pk}/messages/", {"content": "hi"}).status_code == 303
    with FakeN8n([(200, {}, 0)]) as n8n:
        n8n_settings.N8N_BASE_URL = n8n.base_url
        call_command("tasks_worker", "--once")
    [request] = n8n.requests
    assert "authorization" not in {k.lower() for k in request["headers"]}


@pytest.mark.django_db
def test_a_4xx_answer_fails_the_task_with_stage_status_and_body(n8n_settings, user):
    client = Client()
    client.force_login(user)
    conversation = factories.conversation(user)
    body = client.post(f"/chat/{conversation.pk}/messages/", {"content": "hi"}, **JSON).json()
    with FakeN8n([(404, {"message": "webhook not registered"}, 0)]) as n8n:
        n8n_settings.N8N_BASE_URL = n8n.base_url
        call_command("tasks_worker", "--once")
    assert len(n8n.requests) == 1  # not retried
    row = task_row(body["task"]["id"])
    assert row["status"] == "failed"
    details = as_json(row["error_details"])
    assert details["stage"] == "dispatch"
    assert details["http_status"] == 404
    assert "webhook not registered" in details["body"]
    # the page offers a retry
    page = client.get(f"/chat/{conversation.pk}/").content.decode()
    assert f'action="/chat/{conversation.pk}/messages/{body["message"]["id"]}/retry/"' in page


# --- The callback that overtakes the dispatch answer (real server) -------------------------


def calling_back(callbacks, answers):
    """An `on_request` for FakeN8n: n8n posting callbacks before it answers."""

    def call_back(body):
        for payload in callbacks:
            response = requests.post(
                body["callback_url"],
                json=payload,
                headers={"Authorization": f"Bearer {body['callback_token']}"},
                timeout=20,
            )
            answers.append((response.status_code, response.json()))

    return call_back


@pytest.fixture
def app_server(transactional_db):
    with support.Server(env={"TASKS_WORKER_IN_PROCESS": "0"}) as server:
        yield server


@pytest.mark.parametrize(
    "callbacks, expected",
    [
        (
            [{"status": "processing", "current_step": "generating", "execution_id": "cb-7"}],
            ("processing", "generating", "cb-7"),
        ),
        (
            [{"status": "completed", "output": "Done early.", "execution_id": "cb-8"}],
            ("completed", "", "cb-8"),
        ),
    ],
)
def test_a_callback_before_the_dispatch_answer_wins(
    app_server, n8n_settings, user, callbacks, expected
):
    n8n_settings.PUBLIC_BASE_URL = app_server.base_url
    # A committed pending task (made without the web's own dispatcher, which would race).
    conversation = factories.conversation(user)
    task_id = factories.task(
        user, input_data={"conversation_id": conversation.pk, "message": "hi", "history": []}
    ).pk
    factories.message(conversation, "hi", async_task_id=task_id)
    answers = []
    on_request = calling_back(callbacks, answers)
    with FakeN8n([(200, {"executionId": "from-the-answer"}, 0)], on_request) as n8n:
        n8n_settings.N8N_BASE_URL = n8n.base_url
        call_command("tasks_worker", "--once")
    assert [status for status, _ in answers] == [200]
    row = task_row(task_id)
    assert (row["status"], row["current_step"], row["n8n_execution_id"]) == expected
    assert row["processing_started_at"] is not None
    if expected[0] == "completed":
        assert one(
            "SELECT count(*) AS n FROM chat_messages WHERE async_task_id = %s AND role = %s",
            [task_id, "assistant"],
        ) == {"n": 1}


# --- The webhook's answers -----------------------------------------------------------------


def _token(task_id):
    from tasks import tokens  # the token n8n receives in the dispatch body

    return tokens.make_token(task_id)


@pytest.mark.django_db
def test_an_unknown_task_is_404_whatever_the_token_and_body(client, user):
    missing = factories.task(user).pk + 1000
    for body in ("not json", json.dumps({"status": "completed", "output": "x"}), "[]"):
        response = client.post(
            f"/tasks/{missing}/webhook/",
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {_token(missing)}",
        )
        assert response.status_code == 404, body
        assert "error" in response.json()


@pytest.mark.django_db
def test_every_webhook_answer_is_json(client, user, settings):
    settings.TASK_WEBHOOK_MAX_BYTES = 200
    task = factories.task(user, input_data={"conversation_id": 1})
    url = f"/tasks/{task.pk}/webhook/"
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_token(task.pk)}"}

    def post(payload, **extra):
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return client.post(url, data=data, content_type="application/json", **extra)

    answers = {
        401: post({"status": "processing"}),
        404: client.post(
            "/tasks/999999/webhook/", data="{}", content_type="application/json", **auth
        ),
        405: client.get(url, **auth),
        413: post({"status": "processing", "status_message": "x" * 300}, **auth),
        400: post({"status": "processing", "current_step": 5}, **auth),
        200: post({"status": "failed", "error": "boom"}, **auth),
    }
    answers[409] = post({"status": "processing"}, **auth)
    for status, response in answers.items():
        assert response.status_code == status
        assert response["Content-Type"].startswith("application/json"), status
        assert isinstance(response.json(), dict), status
    assert answers[200].json() == {"task_id": task.pk, "status": "failed"}
    assert answers[409].json()["status"] == "failed"
    assert "error" in answers[409].json()
    # repeated terminal status: 200, nothing changes
    version = task_row(task.pk)["version"]
    again = post({"status": "failed", "error": "again"}, **auth)
    assert again.status_code == 200
    assert task_row(task.pk)["version"] == version
    assert as_json(task_row(task.pk)["error_details"]) == "boom"


@pytest.mark.django_db
def test_every_applied_callback_grows_the_version_by_one(client, user):
    task = factories.task(user)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {_token(task.pk)}"}
    versions = [task_row(task.pk)["version"]]
    for payload in (
        {"status": "processing", "current_step": "a"},
        {"status": "processing", "current_step": "b", "status_message": "Halfway"},
        {"status": "completed", "output": {"content": "Done."}},
    ):
        response = client.post(
            f"/tasks/{task.pk}/webhook/",
            data=json.dumps(payload),
            content_type="application/json",
            **auth,
        )
        assert response.status_code == 200
        versions.append(task_row(task.pk)["version"])
    assert versions == [versions[0] + i for i in range(4)]


# --- Websockets ------------------------------------------------------------------------------

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
HOST = (b"host", b"127.0.0.1:8000")
FRAME_TIMEOUT = 5


@pytest.fixture
def _fresh_layer():
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        async_to_sync(layer.flush)()


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(path, cookie):
    socket = WebsocketCommunicator(
        application,
        path,
        headers=[HOST, ORIGIN, (b"cookie", cookie)],
    )
    connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
    assert connected, path
    return socket


@database_sync_to_async
def callback(task_id, payload):
    response = Client().post(
        f"/tasks/{task_id}/webhook/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {_token(task_id)}",
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
async def test_frames_have_exactly_the_contract_keys_and_sync_replays(user, _fresh_layer):
    @database_sync_to_async
    def setup():
        conversation = factories.conversation(user)
        task = factories.task(
            user,
            input_data={"conversation_id": conversation.pk, "session_id": str(conversation.pk)},
        )
        message = factories.message(conversation, "hello?", async_task=task)
        return conversation.pk, task.pk, message.pk, session_cookie(user)

    conversation_id, task_id, message_id, cookie = await setup()
    chat = await open_socket(f"/ws/chat/{conversation_id}/", cookie)
    tasks = await open_socket("/ws/tasks/", cookie)
    try:
        await callback(
            task_id, {"status": "processing", "current_step": "generating", "status_message": "…"}
        )
        for socket in (chat, tasks):
            frame = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
            # "html" is our addition: the task type's status line, as the page shows it.
            assert set(frame) == {"type", "task", "html"}
            assert frame["type"] == "task.status"
            assert f'id="task-{task_id}"' in frame["html"]
            assert set(frame["task"]) == TASK_FRAME_KEYS
            assert frame["task"]["id"] == task_id
            assert (frame["task"]["status"], frame["task"]["current_step"]) == (
                "processing",
                "generating",
            )
            assert frame["task"]["version"] == 2

        await callback(task_id, {"status": "completed", "output": {"content": "Hi!"}})
        frames = [await chat.receive_json_from(timeout=FRAME_TIMEOUT) for _ in range(2)]
        by_type = {frame["type"]: frame for frame in frames}
        assert set(by_type) == {"task.status", "message.created"}
        assert by_type["task.status"]["task"]["status"] == "completed"
        assert by_type["task.status"]["task"]["version"] == 3
        created = by_type["message.created"]
        assert set(created) == {"type", "message", "html"}
        assert set(created["message"]) == MESSAGE_FRAME_KEYS
        assert created["message"]["role"] == "assistant"
        assert created["message"]["content"] == "Hi!"
        assert created["message"]["conversation_id"] == conversation_id
        assert created["message"]["async_task_id"] == task_id
        assert f'id="message-{created["message"]["id"]}"' in created["html"]
        frame = await tasks.receive_json_from(timeout=FRAME_TIMEOUT)
        assert frame["task"]["status"] == "completed"

        # A client that saw up to the user's message gets exactly the reply,
        # and no task frame (none is unfinished).
        await chat.send_json_to({"type": "sync", "after_message_id": message_id})
        replay = await chat.receive_json_from(timeout=FRAME_TIMEOUT)
        assert replay["type"] == "message.created"
        assert replay["message"] == created["message"]
        await chat.send_json_to({"type": "ping"})
        assert await chat.receive_json_from(timeout=FRAME_TIMEOUT) == {"type": "pong"}
    finally:
        await chat.disconnect()
        await tasks.disconnect()


# --- The worker command, as a process ----------------------------------------------------


def test_tasks_worker_once_dispatches_and_times_out_then_exits(transactional_db, user):
    sql(
        "INSERT INTO async_tasks (task_type, workflow_id, input_data, created_by) "
        "VALUES (%s, %s, %s, %s)",
        ["chat", "chat-reply", json.dumps({"message": "from a Postgres node"}), user.pk],
    )
    fresh = one("SELECT id FROM async_tasks WHERE created_by = %s", [user.pk])["id"]
    overdue = factories.task(user, status="processing")
    in_time = factories.task(user, status="processing")
    AsyncTask.objects.filter(pk=overdue.pk).update(  # setup only
        created_at=timezone.now() - timedelta(seconds=121)
    )
    AsyncTask.objects.filter(pk=in_time.pk).update(
        created_at=timezone.now() - timedelta(seconds=100)
    )
    with FakeN8n([(200, {"executionId": "e-1"}, 0)]) as n8n:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": support.served_database_url(),
                "DEBUG": "1",
                "N8N_BASE_URL": n8n.base_url,
                "PUBLIC_BASE_URL": "http://app.example.test",
                "TASK_TIMEOUT_SECONDS": "120",
            }
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "tasks_worker", "--once"],
            cwd=support.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert "expired 1" in result.stdout and "dispatched 1" in result.stdout
    [request] = n8n.requests
    assert request["body"]["task_id"] == fresh
    assert request["body"]["callback_url"] == f"http://app.example.test/tasks/{fresh}/webhook/"
    assert request["body"]["input"] == {"message": "from a Postgres node"}
    assert task_row(fresh)["status"] == "processing"
    assert task_row(in_time.pk)["status"] == "processing"
    row = task_row(overdue.pk)
    assert row["status"] == "timeout"
    assert row["processing_completed_at"] is not None
