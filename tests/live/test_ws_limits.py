"""Websocket limits: sockets per user (close code 4429), a bounded `sync`
(`sync.reset` past a page), a per-socket frame budget, and consumers' database
work that does not stall other sockets."""

import asyncio
import threading

import pytest

from chat import consumers as chat_consumers
from chat.models import Message
from live import throttle
from tests import factories
from tests.ws_support import FRAME_TIMEOUT, communicator, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_layer")]


@pytest.fixture(autouse=True)
def _fresh_slots(monkeypatch):
    monkeypatch.setattr(throttle, "store", None)


async def frame(socket):
    return await socket.receive_json_from(timeout=FRAME_TIMEOUT)


# --- sockets per user ----------------------------------------------------------------------


async def test_the_socket_past_the_limit_is_closed_with_4429(alice_cookie, settings):
    settings.WS_PER_USER_LIMIT = 2
    held = [await open_socket("/ws/tasks/", alice_cookie) for _ in range(2)]
    extra = await open_socket("/ws/tasks/", alice_cookie)
    assert (await frame(extra))["type"] == "error"
    closed = await extra.receive_output(timeout=FRAME_TIMEOUT)
    assert closed == {"type": "websocket.close", "code": 4429}
    for socket in held:  # the first two still work
        await socket.send_json_to({"type": "ping"})
        assert await frame(socket) == {"type": "pong"}
        await socket.disconnect()


async def test_closing_a_socket_frees_its_slot(alice_cookie, settings):
    settings.WS_PER_USER_LIMIT = 1
    first = await open_socket("/ws/tasks/", alice_cookie)
    await first.disconnect()
    second = await open_socket("/ws/tasks/", alice_cookie)
    await second.send_json_to({"type": "ping"})
    assert await frame(second) == {"type": "pong"}
    await second.disconnect()


async def test_the_limit_is_per_user(alice_cookie, mallory_cookie, settings):
    settings.WS_PER_USER_LIMIT = 1
    mine = await open_socket("/ws/tasks/", alice_cookie)
    theirs = await open_socket("/ws/tasks/", mallory_cookie)
    await theirs.send_json_to({"type": "ping"})
    assert await frame(theirs) == {"type": "pong"}
    await mine.disconnect()
    await theirs.disconnect()


async def test_chat_sockets_count_too(user, alice_cookie, settings):
    settings.WS_PER_USER_LIMIT = 1
    conversation = await asyncio.to_thread(factories.conversation, user)
    first = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    extra = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await frame(extra)
    assert (await extra.receive_output(timeout=FRAME_TIMEOUT))["code"] == 4429
    await first.disconnect()


async def test_a_slot_not_kept_alive_expires():
    slots = throttle.LocalSlots()
    assert await slots.acquire(1, "a", limit=1, ttl=0.2)
    assert not await slots.acquire(1, "b", limit=1, ttl=0.2)
    await asyncio.sleep(0.3)  # "a"'s process died: nobody refreshed it
    assert await slots.acquire(1, "b", limit=1, ttl=0.2)


# --- bounded sync --------------------------------------------------------------------------


def many_messages(user, count):
    conversation = factories.conversation(user)
    Message.objects.bulk_create(
        Message(conversation=conversation, role="user", content=f"m{i}") for i in range(count)
    )
    return conversation


async def test_a_client_a_page_behind_gets_the_messages(user, alice_cookie, settings):
    settings.CHAT_PAGE_SIZE = 5
    conversation = await asyncio.to_thread(many_messages, user, 5)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await socket.send_json_to({"type": "sync", "after_message_id": 0})
    kinds = [(await frame(socket))["type"] for _ in range(5)]
    assert kinds == ["message.created"] * 5
    await socket.disconnect()


async def test_a_client_further_behind_gets_sync_reset_alone(user, alice_cookie, settings):
    settings.CHAT_PAGE_SIZE = 5
    conversation = await asyncio.to_thread(many_messages, user, 6)
    socket = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await socket.send_json_to({"type": "sync", "after_message_id": 0})
    await socket.send_json_to({"type": "ping"})
    assert await frame(socket) == {"type": "sync.reset"}
    assert await frame(socket) == {"type": "pong"}
    await socket.disconnect()


def test_the_page_script_reloads_on_sync_reset_and_backs_off_on_4429():
    from tests.support import BASE_DIR

    script = "\n".join(p.read_text() for p in (BASE_DIR / "static").rglob("*.js"))
    assert '"sync.reset"' in script and "location.reload()" in script
    assert "4429" in script


# --- frame budget --------------------------------------------------------------------------


async def test_frames_past_the_budget_are_dropped_with_one_error(alice_cookie, settings):
    settings.WS_FRAME_BURST = 3
    settings.WS_FRAME_RATE = 0.5
    socket = await open_socket("/ws/tasks/", alice_cookie)
    for _ in range(10):
        await socket.send_json_to({"type": "ping"})
    answers = [await frame(socket) for _ in range(4)]
    assert answers[:3] == [{"type": "pong"}] * 3
    assert answers[3]["type"] == "error" and "slow down" in answers[3]["error"]
    assert await socket.receive_nothing(timeout=0.3)
    await asyncio.sleep(2.1)  # one token back
    await socket.send_json_to({"type": "ping"})
    assert await frame(socket) == {"type": "pong"}
    await socket.disconnect()


def test_the_token_bucket_refills_at_its_rate():
    budget = throttle.FrameBudget(rate=10, burst=2)
    assert budget.take() and budget.take() and not budget.take()
    budget.stamp -= 0.1
    assert budget.take()


# --- a slow sync does not stall others -----------------------------------------------------


async def test_a_slow_sync_does_not_stall_another_sockets_handshake(
    user, other_user, alice_cookie, mallory_cookie, monkeypatch
):
    conversation = await asyncio.to_thread(many_messages, user, 1)
    original = chat_consumers.sync_answer
    release = threading.Event()

    def slow_sync(*args, **kwargs):
        release.wait(10)  # blocked until the other socket is through (or 10 s)
        return original(*args, **kwargs)

    monkeypatch.setattr(chat_consumers, "sync_answer", slow_sync)
    slow = await open_socket(f"/ws/chat/{conversation.pk}/", alice_cookie)
    await slow.send_json_to({"type": "sync", "after_message_id": 0})
    await asyncio.sleep(0.2)  # the sync is now sleeping in its thread

    other_conversation = await asyncio.to_thread(factories.conversation, other_user)
    other = communicator(f"/ws/chat/{other_conversation.pk}/", mallory_cookie)
    try:
        connected, _ = await other.connect(timeout=5)
        assert connected
        await other.send_json_to({"type": "ping"})
        assert await other.receive_json_from(timeout=5) == {"type": "pong"}
        assert not release.is_set(), "the other socket waited for the slow sync"
    finally:
        release.set()
    await other.disconnect()
    await slow.receive_json_from(timeout=FRAME_TIMEOUT)  # the slow sync still answers
    await slow.disconnect()
