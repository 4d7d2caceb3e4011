"""Publishing from a server thread reaches the loop that serves the sockets.

`tasks.live.loop_of_calling_thread` is the one place that reads asgiref's
internals; if an asgiref upgrade moves them, these tests fail instead of
frames silently going nowhere."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from live import publish as live


async def test_a_sync_to_async_thread_knows_the_loop_that_runs_it():
    running = asyncio.get_running_loop()
    found = await sync_to_async(live.loop_of_calling_thread)()
    assert found is running


def test_a_plain_thread_has_no_calling_loop():
    assert live.loop_of_calling_thread() is None


@pytest.mark.parametrize("thread_sensitive", [True, False])
async def test_a_send_from_a_request_thread_reaches_a_group(settings, thread_sensitive):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("live.test", channel)
    frame = {"type": "live.frame", "frame": {"type": "ping"}}
    await sync_to_async(live.send, thread_sensitive=thread_sensitive)([("live.test", frame)])
    received = await asyncio.wait_for(layer.receive(channel), timeout=2)
    assert received == frame


async def _slow_layer(settings, monkeypatch, seconds):
    """The in-memory layer, its group_send taking `seconds`; returns what it sent."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    taken = []
    original = layer.group_send

    async def group_send(group, message):
        await asyncio.sleep(seconds)
        await original(group, message)
        taken.append(message["frame"]["type"])

    monkeypatch.setattr(layer, "group_send", group_send)
    return taken


@pytest.mark.django_db(transaction=True)
async def test_a_frame_built_after_the_commit_waits_for_the_frames_queued_before(
    settings, monkeypatch
):
    """A request thread's build after the commit (a reply's message frame)
    starts once the layer took what the thread queued before (its task.status
    frame), so the two never compete for the interpreter."""
    taken = await _slow_layer(settings, monkeypatch, 0.01)
    seen_by_build = []

    def request():
        live.send([("live.test", {"type": "live.frame", "frame": {"type": "task.status"}})])

        def build():
            seen_by_build.append(list(taken))
            return [("live.test", {"type": "live.frame", "frame": {"type": "message.created"}})]

        live.send_on_commit(build)  # no transaction: runs now
        connection.close()

    await sync_to_async(request)()
    for _ in range(100):
        if len(taken) == 2:
            break
        await asyncio.sleep(0.01)
    assert seen_by_build == [["task.status"]]
    assert taken == ["task.status", "message.created"]


@pytest.mark.django_db(transaction=True)
async def test_the_wait_for_queued_frames_is_bounded(settings, monkeypatch):
    """A layer that hangs delays a build after the commit by QUEUED_WAIT_SECONDS at most."""
    import time

    taken = await _slow_layer(settings, monkeypatch, 1.0)
    monkeypatch.setattr(live, "QUEUED_WAIT_SECONDS", 0.05)
    built_after = []

    def request():
        started = time.monotonic()
        live.send([("live.test", {"type": "live.frame", "frame": {"type": "task.status"}})])
        live.send_on_commit(lambda: built_after.append(time.monotonic() - started) or [])
        connection.close()

    await sync_to_async(request)()
    assert taken == []
    assert 0.04 <= built_after[0] < 0.5
