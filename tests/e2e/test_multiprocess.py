"""Two real Daphne processes behind one Redis behave as one.

A websocket held by process A receives the frames of a change made through
process B (n8n's webhook), and a sync on A shows what B changed while the
socket was closed. Both processes and this test share the test database.
"""

import asyncio
import json
import os
import sys
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from chat.models import Message, Role
from tests import factories, support
from tests.ws_support import REAL_FRAME_TIMEOUT, next_frame, real_socket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["core", "pubsub"])
def two_servers(request, redis_url, transactional_db):
    """Two Daphne processes sharing Redis, through either channels-redis layer."""
    env = {
        "REDIS_URL": redis_url,
        "TASKS_WORKER_IN_PROCESS": "0",
        "CHANNEL_LAYER_KIND": request.param,
    }
    with support.Server(env=env) as a, support.Server(env=env) as b:
        yield a, b


@pytest.fixture
def chat(user):
    """A conversation with a user message waiting for its reply (committed)."""
    conversation = factories.conversation(user)
    message = factories.message(conversation, "are you there?")
    task = factories.task(
        user,
        status="processing",
        input_data={"conversation_id": conversation.pk, "message_id": message.pk},
        # Long overdue for a worker with a short timeout, still fine for the webhook.
        created_at=timezone.now() - timedelta(hours=1),
    )
    Message.objects.filter(pk=message.pk).update(async_task=task)
    return {
        "conversation": conversation,
        "message": message,
        "task": task,
        "cookie": session_cookie(user),
    }


async def callback(server, task_id, **payload):
    from tasks import callbacks

    def post():
        return requests.post(
            f"{server.base_url}/tasks/{task_id}/webhook/",
            json=payload,
            headers={"Authorization": f"Bearer {callbacks.make_token(task_id)}"},
            timeout=REAL_FRAME_TIMEOUT,
        )

    response = await asyncio.to_thread(post)
    assert response.status_code == 200, response.text
    return response.json()


async def test_webhook_on_b_reaches_sockets_on_a(two_servers, chat):
    a, b = two_servers
    task_id = chat["task"].pk
    conversation_id = chat["conversation"].pk
    async with (
        real_socket(a, f"/ws/chat/{conversation_id}/", chat["cookie"]) as chat_socket,
        real_socket(a, "/ws/tasks/", chat["cookie"]) as task_socket,
    ):
        # The handshake completes once the consumers joined their groups; a
        # ping round trip proves it before B changes anything.
        for socket in (chat_socket, task_socket):
            await socket.send(json.dumps({"type": "ping"}))
            assert await next_frame(socket) == {"type": "pong"}

        await callback(
            b, task_id, status="processing", current_step="generating", status_message="Writing"
        )
        frame = await next_frame(chat_socket)
        assert frame["type"] == "task.status"
        assert frame["task"]["id"] == task_id
        assert frame["task"]["status"] == "processing"
        assert frame["task"]["current_step"] == "generating"
        assert frame["task"]["status_message"] == "Writing"
        assert (await next_frame(task_socket))["task"]["status"] == "processing"

        await callback(b, task_id, status="completed", output={"content": "Yes, from B."})
        completed = [await next_frame(chat_socket), await next_frame(chat_socket)]
        by_type = {f["type"]: f for f in completed}
        assert set(by_type) == {"task.status", "message.created"}
        assert by_type["task.status"]["task"]["status"] == "completed"
        assert by_type["task.status"]["task"]["version"] > frame["task"]["version"]
        reply = by_type["message.created"]
        assert reply["message"]["role"] == Role.ASSISTANT
        assert reply["message"]["content"] == "Yes, from B."
        assert reply["message"]["async_task_id"] == task_id
        assert f'id="message-{reply["message"]["id"]}"' in reply["html"]
        assert (await next_frame(task_socket))["task"]["status"] == "completed"


async def test_sync_on_a_shows_what_b_changed_while_offline(two_servers, chat):
    a, b = two_servers
    task_id = chat["task"].pk
    path = f"/ws/chat/{chat['conversation'].pk}/"
    await callback(b, task_id, status="completed", output="Answered while you slept.")

    async with real_socket(a, path, chat["cookie"]) as socket:
        after = chat["message"].pk
        await socket.send(json.dumps({"type": "sync", "after_message_id": after}))
        reply = await next_frame(socket)
        assert reply["type"] == "message.created"
        assert reply["message"]["content"] == "Answered while you slept."
        # Nothing else is missing: no task is unfinished any more.
        await socket.send(json.dumps({"type": "ping"}))
        assert await next_frame(socket) == {"type": "pong"}


async def test_the_worker_process_publishes_to_sockets_on_a(two_servers, chat):
    """`tasks_worker` runs in a process with no server loop of its own; what it
    changes (here: an overdue task becomes `timeout`) reaches sockets on A."""
    a, _ = two_servers
    task_id = chat["task"].pk
    path = f"/ws/chat/{chat['conversation'].pk}/"
    async with real_socket(a, path, chat["cookie"]) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        assert await next_frame(socket) == {"type": "pong"}

        env = dict(
            os.environ,
            DATABASE_URL=support.served_database_url(),
            DEBUG="1",
            TASK_TIMEOUT_SECONDS="1",
            DJANGO_SETTINGS_MODULE="chatproject.settings",
            CHANNEL_LAYER_KIND=a.extra_env["CHANNEL_LAYER_KIND"],
        )
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            "tasks_worker",
            "--once",
            cwd=support.BASE_DIR,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(worker.communicate(), 60)
        assert worker.returncode == 0, output.decode()
        assert "expired 1" in output.decode()

        frame = await next_frame(socket)
        assert frame["type"] == "task.status"
        assert frame["task"]["id"] == task_id
        assert frame["task"]["status"] == "timeout"


async def test_healthz_stays_ok_while_sockets_are_open(two_servers, chat):
    """The channel-layer probe must not wait behind an open socket's receive."""
    a, _b = two_servers
    path = f"/ws/chat/{chat['conversation'].pk}/"
    async with real_socket(a, path, chat["cookie"]), real_socket(a, "/ws/tasks/", chat["cookie"]):
        answers = []
        for _ in range(10):
            response = await asyncio.to_thread(requests.get, f"{a.base_url}/healthz", timeout=10)
            answers.append((response.status_code, response.json()))
    healthy = {"database": "ok", "channel_layer": "ok", "worker": "unknown"}
    assert answers == [(200, healthy)] * 10
