"""Publishing from a server thread reaches the loop that serves the sockets.

`tasks.live.loop_of_calling_thread` is the one place that reads asgiref's
internals; if an asgiref upgrade moves them, these tests fail instead of
frames silently going nowhere."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

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
