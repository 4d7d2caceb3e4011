"""The websocket endpoints, spoken to through the real ASGI stack (origin check,
session auth, routing) with Channels' WebsocketCommunicator.

Publishing runs where the app runs it: after a real commit (transactional
database), from a sync thread, onto the loop that holds the sockets, through
the configured channel layer (in-memory here, Redis when REDIS_URL is set).
"""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import transaction
from django.template.loader import render_to_string

from chat.models import Conversation, Message, Role
from chat.services import message_frame, publish_message
from tasks import door
from tasks.models import EventSource, TaskStatus
from tests import factories
from tests.contract_names import MESSAGE_FRAME_KEYS
from tests.ws_support import (
    FRAME_TIMEOUT,
    communicator,
    frames,
    open_socket,
    send_user_message,
    sync,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("fresh_layer", "no_dispatch"),
]


@pytest.fixture
def conversation(user):
    return factories.conversation(user)


# --- committed changes, made the way the app makes them ----------------------


@database_sync_to_async
def move_task(task_id, **fields):
    """A change made the way every change is made: through the door, which
    publishes it and runs the task type's hooks (a completed chat task's reply)."""
    door.change(task_id, source=EventSource.ADMIN, **fields)


@database_sync_to_async
def add_message(conversation_id, content, role=Role.ASSISTANT, publish=True):
    with transaction.atomic():
        message = Message.objects.create(
            conversation_id=conversation_id, role=role, content=content
        )
        if publish:
            publish_message(message.pk)
    return message.pk


@database_sync_to_async
def add_task(user_id, status=TaskStatus.PENDING, conversation_id=None):
    input_data = {"conversation_id": conversation_id} if conversation_id else {}
    owner = get_user_model().objects.get(pk=user_id)
    return factories.task(owner, status=status, input_data=input_data).pk


@database_sync_to_async
def expected_message_frame(message_id):
    return message_frame(Message.objects.select_related("async_task").get(pk=message_id))


# --- refusals -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/chat/{id}/", "/ws/tasks/"])
async def test_anonymous_user_is_refused_before_accept(conversation, path):
    socket = communicator(path.format(id=conversation.pk))
    connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
    assert connected is False


async def test_another_users_conversation_is_refused(conversation, mallory_cookie):
    socket = communicator(f"/ws/chat/{conversation.pk}/", mallory_cookie)
    connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
    assert connected is False


async def test_unknown_conversation_is_refused(conversation, alice_cookie):
    socket = communicator(f"/ws/chat/{conversation.pk + 1000}/", alice_cookie)
    connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
    assert connected is False


@pytest.mark.parametrize("origin", [(b"origin", b"http://evil.example"), None])
async def test_foreign_or_missing_origin_is_refused(conversation, alice_cookie, origin):
    socket = communicator(f"/ws/chat/{conversation.pk}/", alice_cookie, origin=origin)
    connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
    assert connected is False


async def test_owner_is_accepted_on_both_endpoints(conversation, alice_cookie):
    for path in (f"/ws/chat/{conversation.pk}/", "/ws/tasks/"):
        socket = await open_socket(path, alice_cookie)
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from(timeout=FRAME_TIMEOUT) == {"type": "pong"}
        await socket.disconnect()


# --- frames for each transition -------------------------------------------------


async def test_new_message_frame_carries_the_pages_fragment(conversation, alice_cookie):
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    message_id = await add_message(conversation.pk, "**hi** there")
    frame = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
    assert frame["type"] == "message.created"
    assert set(frame["message"]) == MESSAGE_FRAME_KEYS
    assert frame["message"]["id"] == message_id
    assert frame["message"]["conversation_id"] == conversation.pk
    assert frame["message"]["content"] == "**hi** there"
    assert frame == await expected_message_frame(message_id)
    message = await database_sync_to_async(Message.objects.get)(pk=message_id)
    page_fragment = await database_sync_to_async(render_to_string)(
        "chat/_message.html", {"message": message}
    )
    assert frame["html"] == page_fragment
    assert f'id="message-{message_id}"' in frame["html"]
    await socket.disconnect()


async def test_every_transition_reaches_the_conversation_and_the_owner(conversation, alice_cookie):
    chat_socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    task_socket = await open_socket("/ws/tasks/", alice_cookie)

    message_id, task_id = await send_user_message(conversation.pk, "what is n8n?")
    pending, created = await frames(chat_socket, 2)
    assert pending["type"] == "task.status"
    assert pending["task"]["id"] == task_id
    assert pending["task"]["status"] == "pending"
    assert created["type"] == "message.created"
    assert created["message"]["id"] == message_id
    assert created["message"]["async_task_id"] == task_id

    await move_task(
        task_id,
        status=TaskStatus.PROCESSING,
        current_step="generating",
        status_message="Thinking about it",
    )
    (processing,) = await frames(chat_socket, 1)
    assert processing["task"]["status"] == "processing"
    assert processing["task"]["current_step"] == "generating"
    assert processing["task"]["status_message"] == "Thinking about it"
    assert processing["task"]["version"] > pending["task"]["version"]

    await move_task(task_id, status=TaskStatus.COMPLETED, output_data={"content": "A tool."})
    by_type = {frame["type"]: frame for frame in await frames(chat_socket, 2)}
    completed, reply = by_type["task.status"], by_type["message.created"]
    assert completed["task"]["status"] == "completed"
    assert completed["task"]["version"] > processing["task"]["version"]
    assert reply["type"] == "message.created"
    assert reply["message"]["role"] == "assistant"
    assert reply["message"]["content"] == "A tool."
    assert reply["message"]["async_task_id"] == task_id

    # The owner's task socket saw the same task frames, and no messages.
    seen = await frames(task_socket, 3)
    assert [f["task"]["status"] for f in seen] == ["pending", "processing", "completed"]
    assert {f["type"] for f in seen} == {"task.status"}
    assert await task_socket.receive_nothing(timeout=0.2)
    assert await chat_socket.receive_nothing(timeout=0.2)
    await chat_socket.disconnect()
    await task_socket.disconnect()


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.TIMEOUT])
async def test_failed_and_timed_out_tasks_are_published(conversation, alice_cookie, status):
    _, task_id = await send_user_message(conversation.pk)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await move_task(task_id, status=status, status_message="it went wrong")
    frame = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
    assert frame["type"] == "task.status"
    assert frame["task"]["status"] == status.value
    assert frame["task"]["status_message"] == "it went wrong"
    await socket.disconnect()


async def test_a_socket_never_receives_another_users_rows(
    conversation, alice_cookie, mallory_cookie, other_user
):
    mallory_conversation = await database_sync_to_async(factories.conversation)(other_user)
    mallory_chat = await open_socket(f"/ws/chat/{mallory_conversation.pk}/", mallory_cookie)
    mallory_tasks = await open_socket("/ws/tasks/", mallory_cookie)
    alice_tasks = await open_socket("/ws/tasks/", alice_cookie)

    _, task_id = await send_user_message(conversation.pk, "private")
    await move_task(task_id, status=TaskStatus.COMPLETED, output_data="secret reply")
    assert [f["task"]["id"] for f in await frames(alice_tasks, 2)] == [task_id, task_id]

    assert await mallory_chat.receive_nothing(timeout=0.3)
    assert await mallory_tasks.receive_nothing(timeout=0.1)
    for socket in (mallory_chat, mallory_tasks, alice_tasks):
        await socket.disconnect()


async def test_a_conversation_socket_gets_only_its_own_conversation(
    conversation, alice_cookie, user
):
    second = await database_sync_to_async(factories.conversation)(user, title="second")
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await send_user_message(second.pk, "elsewhere")
    await add_message(second.pk, "elsewhere too")
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


# --- sync: what a reconnecting page is missing --------------------------------


async def test_sync_replays_exactly_the_missed_messages_then_unfinished_tasks(
    conversation, alice_cookie, user
):
    seen_id = await add_message(conversation.pk, "seen", role=Role.USER, publish=False)
    missed = [await add_message(conversation.pk, f"missed {i}", publish=False) for i in range(3)]
    message_id, pending_id = await send_user_message(conversation.pk, "waiting")
    processing_id = await add_task(user.pk, TaskStatus.PROCESSING, conversation.pk)
    await add_task(user.pk, TaskStatus.COMPLETED, conversation.pk)
    await add_task(user.pk, TaskStatus.PENDING)  # the user's, but not this conversation's

    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await sync(socket, after_message_id=seen_id)
    replay = await frames(socket, 6)
    assert [f["type"] for f in replay] == ["message.created"] * 4 + ["task.status"] * 2
    assert [f["message"]["id"] for f in replay[:4]] == [*missed, message_id]
    assert replay[0] == await expected_message_frame(missed[0])
    assert [f["task"]["id"] for f in replay[4:]] == sorted([pending_id, processing_id])
    assert await socket.receive_nothing(timeout=0.3)

    # A second sync from the newest id sends only the unfinished tasks again.
    await sync(socket, after_message_id=message_id)
    again = await frames(socket, 2)
    assert [f["type"] for f in again] == ["task.status", "task.status"]
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_sync_from_zero_sends_the_whole_conversation(conversation, alice_cookie):
    ids = [await add_message(conversation.pk, f"m{i}", publish=False) for i in range(3)]
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await sync(socket, after_message_id=0)
    assert [f["message"]["id"] for f in await frames(socket, 3)] == ids
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_sync_sends_named_tasks_that_finished_while_offline(
    conversation, alice_cookie, user, other_user
):
    _, task_id = await send_user_message(conversation.pk)
    await move_task(task_id, status=TaskStatus.FAILED, status_message="n8n said no")
    foreign_id = await add_task(other_user.pk, TaskStatus.FAILED)

    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await sync(socket, after_message_id=10**9, task_ids=[task_id, foreign_id])
    (frame,) = await frames(socket, 1)
    assert frame["task"]["id"] == task_id
    assert frame["task"]["status"] == "failed"
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


async def test_a_message_published_after_sync_arrives_once(conversation, alice_cookie):
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await sync(socket, after_message_id=0)
    # A socket handles its frames in order: the pong means the sync is answered
    # (on a loaded machine 0.2 s of silence did not).
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=FRAME_TIMEOUT) == {"type": "pong"}
    message_id = await add_message(conversation.pk, "late reply")
    (frame,) = await frames(socket, 1)
    assert frame["message"]["id"] == message_id
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_task_socket_sync_sends_the_users_unfinished_tasks_only(
    alice_cookie, user, other_user
):
    first = await add_task(user.pk, TaskStatus.PENDING)
    second = await add_task(user.pk, TaskStatus.PROCESSING)
    done = await add_task(user.pk, TaskStatus.TIMEOUT)
    await add_task(other_user.pk, TaskStatus.PENDING)
    socket = await open_socket("/ws/tasks/", alice_cookie)

    await sync(socket)
    assert [f["task"]["id"] for f in await frames(socket, 2)] == [first, second]
    assert await socket.receive_nothing(timeout=0.2)

    await sync(socket, task_ids=[done])
    assert [f["task"]["id"] for f in await frames(socket, 3)] == [first, second, done]
    await socket.disconnect()


# --- bad frames are answered, not crashed on --------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "subscribe"}',
        "not json",
        "[1, 2]",
        '{"type": "sync", "after_message_id": "x"}',
        '{"type": "sync", "after_message_id": -1}',
        '{"type": "sync", "after_message_id": 0, "task_ids": "1"}',
        '{"type": "sync", "task_ids": [true]}',
    ],
)
async def test_a_bad_frame_gets_an_error_frame_and_the_socket_stays(
    conversation, alice_cookie, text
):
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await socket.send_to(text_data=text)
    error = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
    assert error["type"] == "error"
    assert error["error"]
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=FRAME_TIMEOUT) == {"type": "pong"}
    await socket.disconnect()


async def test_sync_on_a_conversation_deleted_meanwhile_closes_the_socket(
    conversation, alice_cookie
):
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await database_sync_to_async(Conversation.objects.filter(pk=conversation.pk).delete)()
    await sync(socket, after_message_id=0)
    assert (await socket.receive_json_from(timeout=FRAME_TIMEOUT))["type"] == "error"
    assert (await socket.receive_output(timeout=FRAME_TIMEOUT))["type"] == "websocket.close"
    await socket.disconnect()


@pytest.mark.parametrize("path", ["/ws/chat/{id}/", "/ws/tasks/"])
async def test_an_unreachable_channel_layer_closes_the_socket_with_4503(
    conversation, alice_cookie, settings, path
):
    """A Redis outage: no failed handshake (HTTP 500) but a close code the page
    takes as "reconnect later"."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},  # nothing listens
        }
    }
    channel_layers.backends.clear()
    try:
        socket = communicator(path.format(id=conversation.pk), alice_cookie)
        connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
        assert connected
        closed = await socket.receive_output(timeout=FRAME_TIMEOUT)
        assert closed == {"type": "websocket.close", "code": 4503}
    finally:
        channel_layers.backends.clear()
