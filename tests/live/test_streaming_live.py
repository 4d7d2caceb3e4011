"""`message.delta` frames on both sockets, and `sync` mid-stream, through the
real ASGI stack (WebsocketCommunicator) after real commits."""

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests import factories
from tests.task_support import post_callback
from tests.ws_support import FRAME_TIMEOUT, next_of_type, open_socket, send_user_message, sync

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_layer", "no_dispatch"),
]


@pytest.fixture
def conversation(user):
    return factories.conversation(user)


@database_sync_to_async
def callback(task_id, payload):
    response = post_callback(Client(), task_id, payload)
    assert response.status_code == 200, response.content
    return response


async def test_a_delta_reaches_the_conversation_and_the_tasks_socket(conversation, alice_cookie):
    _message_id, task_id = await send_user_message(conversation.pk)
    chat = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    tasks = await open_socket("/ws/tasks/", alice_cookie)
    await callback(task_id, {"status": "processing", "delta": "Bonjour 🌍"})
    expected = {
        "type": "message.delta",
        "task_id": task_id,
        "conversation_id": conversation.pk,
        "offset": 0,
        "text": "Bonjour 🌍",
        "thinking": False,
        "visible_offset": 0,
    }
    assert await next_of_type(chat, "message.delta") == expected
    assert await next_of_type(tasks, "message.delta") == expected
    await callback(task_id, {"status": "processing", "delta": "!"})
    second = await next_of_type(chat, "message.delta")
    assert (second["offset"], second["text"]) == (9, "!")  # code points, not UTF-16
    await chat.disconnect()
    await tasks.disconnect()


async def test_sync_mid_stream_answers_all_the_text_so_far(conversation, alice_cookie):
    message_id, task_id = await send_user_message(conversation.pk)
    for piece in ("One, ", "two, ", "three"):
        await callback(task_id, {"status": "processing", "delta": piece})
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await sync(socket, after_message_id=message_id)
    status = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
    assert status["type"] == "task.status" and status["task"]["id"] == task_id
    assert await socket.receive_json_from(timeout=FRAME_TIMEOUT) == {
        "type": "message.delta",
        "task_id": task_id,
        "conversation_id": conversation.pk,
        "offset": 0,
        "text": "One, two, three",
        "thinking": False,
        "visible_offset": 0,
    }
    tasks = await open_socket("/ws/tasks/", alice_cookie)
    await sync(tasks)
    assert (await next_of_type(tasks, "message.delta"))["text"] == "One, two, three"
    await socket.disconnect()
    await tasks.disconnect()


async def test_sync_after_the_reply_sends_the_message_not_the_stream(conversation, alice_cookie):
    message_id, task_id = await send_user_message(conversation.pk)
    await callback(task_id, {"status": "processing", "delta": "Draft"})
    await callback(task_id, {"status": "completed", "output": "Final **reply**"})
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await sync(socket, after_message_id=message_id)
    await socket.send_json_to({"type": "ping"})
    kinds = []
    while True:
        frame = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
        if frame["type"] == "pong":
            break
        kinds.append(frame["type"])
        if frame["type"] == "message.created":
            assert frame["message"]["content"] == "Final **reply**"
    assert kinds == ["message.created"]
    await socket.disconnect()
