"""The protocol end to end (docs/PROTOCOL.md), through public surfaces only.

A user's send over HTTP, the dispatch body n8n receives (pytest-httpserver on
127.0.0.1), n8n's callbacks on the webhook, the frames both sockets get and a
`sync` replay, and the page after a reload, checked against the protocol's
names (tests/contract_names.py) and read back from the tables with plain SQL.
Each step's details and refusals are tested in the per-unit files
(test_chat_send, test_dispatch, test_webhook*, test_consumers, test_schema, …).
"""

import json

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.test import Client

from tasks import callbacks
from tests import factories
from tests.contract_names import DISPATCH_KEYS, MESSAGE_FRAME_KEYS, TASK_FRAME_KEYS
from tests.support import as_json, one, sql
from tests.ws_support import FRAME_TIMEOUT, open_socket, session_cookie

JSON = {"HTTP_ACCEPT": "application/json"}


def task_row(task_id):
    return one("SELECT * FROM async_tasks WHERE id = %s", [task_id])


def page_of(user, conversation_id):
    client = Client()
    client.force_login(user)
    return client.get(f"/chat/{conversation_id}/").content.decode()


# --- send → dispatch → callback → reply, over HTTP -----------------------------------------


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
    n8n_settings, fake_n8n, user, client, capsys
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

    webhook = "/webhook/reply-flow"
    fake_n8n.expect_ordered_request(webhook, method="POST").respond_with_json(
        {"executionId": "exec-1"}
    )
    fake_n8n.expect_ordered_request(webhook, method="POST").respond_with_json(
        {"execution_id": 99}, status=202
    )
    call_command("tasks_worker", "--once")
    assert "dispatched 1" in capsys.readouterr().out
    [(request, _response)] = fake_n8n.log
    task_id = first["async_task_id"]
    assert request.path == webhook
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["Authorization"] == "Bearer header-auth-secret"
    assert request.headers["Idempotency-Key"] == f"task-{task_id}"
    body = request.get_json()
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
        "attachments": [],
        "assistant": None,
        "instructions": "",
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
    [reply_id] = [r["id"] for r in sql("SELECT id FROM chat_messages WHERE role = 'assistant'")]
    page = client.get(f"/chat/{conversation_id}/").content.decode()
    assert f'id="message-{reply_id}"' in page and "Lisbon." in page

    # The next message carries the history, oldest first, and is dispatched too.
    sent = client.post(f"/chat/{conversation_id}/messages/", {"content": "And then?"}, **JSON)
    assert sent.status_code == 201
    assert {"message", "task"} <= set(sent.json())
    call_command("tasks_worker", "--once")
    [_first, (request, _response)] = fake_n8n.log
    assert request.get_json()["input"]["history"] == [
        {"role": "user", "content": "Where to go?"},
        {"role": "assistant", "content": "Lisbon."},
    ]
    assert request.get_json()["input"]["message_id"] == sent.json()["message"]["id"]
    assert task_row(sent.json()["task"]["id"])["n8n_execution_id"] == "99"


# --- callbacks → frames on both sockets → sync → page --------------------------------------


@database_sync_to_async
def callback(task_id, payload):
    response = Client().post(
        f"/tasks/{task_id}/webhook/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {callbacks.make_token(task_id)}",
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_layer")
async def test_frames_have_exactly_the_contract_keys_and_sync_replays(user):
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
        # "switches" is our addition, only for a message with other versions
        # (here the reply and the question are both first messages: siblings).
        assert set(created) - {"switches"} == {"type", "message", "html"}
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
    # A reload shows the same reply, with the fragment the frame carried.
    page = await database_sync_to_async(page_of)(user, conversation_id)
    assert f'id="message-{created["message"]["id"]}"' in page
    assert created["html"].strip() in page
