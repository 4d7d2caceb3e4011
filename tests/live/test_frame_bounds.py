"""Frames bounded by bytes (docs/PROTOCOL.md, "Frames"; docs/SECURITY.md N2,
N3, N17): no server → client frame passes the socket's limit, a `sync`
answer stops at WS_SYNC_MAX_BYTES, and a client frame nested too deep is
answered with an error frame, the socket kept."""

import asyncio
import json

import pytest
from channels.layers import get_channel_layer
from django.db import transaction

from chat.live import conversation_group, message_frame, publish_message
from chat.models import Message, Role
from live import frames as live_frames
from live import throttle
from tests import factories
from tests.contract_names import MESSAGE_FRAME_KEYS
from tests.ws_support import FRAME_TIMEOUT, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_layer")]

# Daphne refuses (and closes with 1011) an outgoing message past this.
DAPHNE_MAX_MESSAGE_BYTES = 1_048_576
# 100,000 characters that HTML and JSON escape: content, thinking and the
# fragment make a frame of 1.4 MB.
QUOTES = '"' * 100_000


@pytest.fixture(autouse=True)
def _fresh_slots(monkeypatch):
    monkeypatch.setattr(throttle, "store", None)


async def raw_frame(socket):
    """The next frame as the server sent it: (its text, its size in bytes)."""
    output = await socket.receive_output(timeout=FRAME_TIMEOUT)
    assert output["type"] == "websocket.send", output
    text = output["text"]
    return text, len(text.encode("utf-8"))


async def still_open(socket):
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=FRAME_TIMEOUT) == {"type": "pong"}


def add_reply(conversation, content, thinking="", publish=False):
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation, role=Role.ASSISTANT, content=content, thinking=thinking
        )
        if publish:
            publish_message(message.pk)
    return message


# --- N2: a message.created too large for the socket ---------------------------------------


async def test_a_reply_too_large_for_one_frame_is_announced_small(user, alice_cookie):
    conversation = await asyncio.to_thread(factories.conversation, user)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    reply = await asyncio.to_thread(add_reply, conversation, QUOTES, QUOTES, True)
    text, size = await raw_frame(socket)
    assert size < DAPHNE_MAX_MESSAGE_BYTES
    frame = json.loads(text)
    assert frame["type"] == "message.created"
    assert frame["too_large"] is True and frame["html"] is None
    assert set(frame["message"]) == MESSAGE_FRAME_KEYS
    assert frame["message"]["id"] == reply.pk
    assert frame["message"]["conversation_id"] == conversation.pk
    assert frame["message"]["role"] == "assistant"
    assert frame["message"]["content"] is None and frame["message"]["thinking"] is None
    assert size < 2_000
    await still_open(socket)
    await socket.disconnect()


async def test_sync_announces_a_too_large_reply_small_too(user, alice_cookie):
    conversation = await asyncio.to_thread(factories.conversation, user)
    reply = await asyncio.to_thread(add_reply, conversation, QUOTES, QUOTES)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await socket.send_json_to({"type": "sync", "after_message_id": 0})
    text, size = await raw_frame(socket)
    frame = json.loads(text)
    assert size < DAPHNE_MAX_MESSAGE_BYTES
    assert frame["message"]["id"] == reply.pk and frame["too_large"] is True
    await still_open(socket)
    await socket.disconnect()


def test_a_frame_that_fits_is_whole_and_says_nothing_of_size(user, settings):
    conversation = factories.conversation(user)
    reply = add_reply(conversation, "a short reply")
    frame = message_frame(reply)
    assert "too_large" not in frame and "a short reply" in frame["html"]
    settings.WS_FRAME_MAX_BYTES = 500
    small = message_frame(reply)
    assert small["too_large"] is True and small["html"] is None
    assert live_frames.encode(small)[1] <= 500


async def test_no_frame_past_the_limit_leaves_the_consumer(user, alice_cookie, settings):
    """Whatever a publisher builds, the socket never sends it whole: a small
    error frame goes instead, and the socket stays open."""
    settings.WS_FRAME_MAX_BYTES = 10_000
    conversation = await asyncio.to_thread(factories.conversation, user)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    huge = {"type": "task.status", "task": {"id": 1}, "html": "é" * 20_000}
    await get_channel_layer().group_send(
        conversation_group(conversation.pk), {"type": "live.frame", "frame": huge}
    )
    text, size = await raw_frame(socket)
    assert size <= 10_000
    assert json.loads(text)["type"] == "error"
    await still_open(socket)
    await socket.disconnect()


def test_frames_are_measured_in_utf8_bytes():
    text, size = live_frames.encode({"text": "é😀"})
    assert size == len(text.encode("utf-8"))
    # A lone surrogate cannot be sent as UTF-8: escaped instead of crashing.
    text, size = live_frames.encode({"text": "\ud800"})
    assert size == len(text.encode("utf-8")) and json.loads(text) == {"text": "\ud800"}


def test_the_message_fragment_is_served_to_its_owner_only(user, other_user, client):
    conversation = factories.conversation(user)
    reply = add_reply(conversation, QUOTES)
    other = factories.conversation(user)
    url = f"/chat/{conversation.pk}/messages/{reply.pk}/"
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert body.lstrip().startswith("<li") and f'id="message-{reply.pk}"' in body
    assert client.get(f"/chat/{other.pk}/messages/{reply.pk}/").status_code == 404
    assert client.get(f"/chat/{conversation.pk}/messages/{reply.pk + 99}/").status_code == 404
    assert client.post(url).status_code == 405
    client.force_login(other_user)
    assert client.get(url).status_code == 404


# --- N3: a sync bounded by bytes ------------------------------------------------------------


def large_replies(user, count, size):
    conversation = factories.conversation(user)
    Message.objects.bulk_create(
        Message(conversation=conversation, role=Role.ASSISTANT, content=f"{i} " + "word " * size)
        for i in range(count)
    )
    return conversation


async def test_a_sync_stops_at_its_byte_budget_with_a_reset(user, alice_cookie, settings):
    settings.WS_SYNC_MAX_BYTES = 200_000
    # 20,000 characters each: a frame of ~65 kB (the text, its escaped source
    # and its HTML), so a few fit in the budget and most do not. (6,000 words
    # made frames of ~99 kB: two fitted only until a fragment grew by 1 kB.)
    conversation = await asyncio.to_thread(large_replies, user, 20, 4_000)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await socket.send_json_to({"type": "sync", "after_message_id": 0})
    total, kinds = 0, []
    while True:
        text, size = await raw_frame(socket)
        kinds.append(json.loads(text)["type"])
        if kinds[-1] == "sync.reset":
            break
        total += size
    assert 0 < total <= 200_000
    assert 2 <= kinds.count("message.created") < 20
    await still_open(socket)
    await socket.disconnect()


async def test_a_sync_within_its_budget_sends_everything(user, alice_cookie, settings):
    settings.WS_SYNC_MAX_BYTES = 2_000_000
    conversation = await asyncio.to_thread(large_replies, user, 5, 6_000)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await socket.send_json_to({"type": "sync", "after_message_id": 0})
    await socket.send_json_to({"type": "ping"})
    kinds = []
    while not kinds or kinds[-1] != "pong":
        kinds.append((await socket.receive_json_from(timeout=FRAME_TIMEOUT))["type"])
    assert kinds == ["message.created"] * 5 + ["pong"]
    await socket.disconnect()


def test_a_sync_renders_no_more_messages_than_it_sends(user, settings, monkeypatch):
    """Frames are built one at a time: past the budget nothing more is rendered."""
    from chat import consumers

    settings.WS_SYNC_MAX_BYTES = 100_000
    conversation = large_replies(user, 30, 6_000)
    built = []
    original = consumers.message_frame
    monkeypatch.setattr(consumers, "message_frame", lambda m: built.append(m.pk) or original(m))
    answer = consumers.sync_answer(conversation, 0)
    sent = [json.loads(text) for text in answer]
    assert sent[-1] == {"type": "sync.reset"}
    assert len(built) == len(sent)  # the one that did not fit, and no other


# --- N17: a client frame nested too deep ------------------------------------------------------


async def test_a_deeply_nested_client_frame_gets_an_error_and_the_socket_stays(alice_cookie):
    socket = await open_socket("/ws/tasks/", alice_cookie)
    deep = "[" * 10_000 + "]" * 10_000
    for text in (deep, '{"type": "sync", "task_ids": ' + deep + "}"):
        await socket.send_to(text_data=text)
        frame = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
        assert frame["type"] == "error"
    await still_open(socket)
    await socket.disconnect()


async def test_a_client_frame_within_the_depth_bound_still_works(alice_cookie):
    socket = await open_socket("/ws/tasks/", alice_cookie)
    await socket.send_to(text_data='{"type": "ping", "x": [[[1]]]}')
    assert await socket.receive_json_from(timeout=FRAME_TIMEOUT) == {"type": "pong"}
    await socket.disconnect()
