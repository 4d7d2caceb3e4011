"""Streaming across two real Daphne processes sharing the database and Redis:
a reply streamed through process B is seen live, and resumed by `sync`, on A."""

import json

import pytest

from tests.e2e import test_multiprocess
from tests.e2e.test_multiprocess import callback
from tests.ws_support import next_frame, next_of_type, real_socket

# The two-process fixtures of tests/e2e/test_multiprocess.py.
two_servers = test_multiprocess.two_servers
chat = test_multiprocess.chat

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_delta_through_b_reaches_a_socket_on_a(two_servers, chat):
    a, b = two_servers
    task_id = chat["task"].pk
    async with real_socket(a, f"/ws/chat/{chat['conversation'].pk}/", chat["cookie"]) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        assert await next_frame(socket) == {"type": "pong"}
        await callback(b, task_id, status="processing", delta="Streamed via B")
        frame = await next_of_type(socket, "message.delta")
    assert (frame["task_id"], frame["offset"], frame["text"]) == (task_id, 0, "Streamed via B")


async def test_sync_on_a_mid_stream_resumes_what_b_received(two_servers, chat):
    a, b = two_servers
    task_id = chat["task"].pk
    for piece in ("Half ", "way ", "there"):
        await callback(b, task_id, status="processing", delta=piece)
    path = f"/ws/chat/{chat['conversation'].pk}/"
    async with real_socket(a, path, chat["cookie"]) as socket:
        after = chat["message"].pk
        await socket.send(json.dumps({"type": "sync", "after_message_id": after}))
        # B coalesces its frames for up to 50 ms, so a live frame of an earlier
        # piece may still reach the new socket around the sync's answer: the
        # page places pieces by offset, and so does this test.
        frame = await next_of_type(socket, "message.delta")
        while frame["offset"] != 0:
            frame = await next_of_type(socket, "message.delta")
        assert (frame["offset"], frame["text"]) == (0, "Half way there")
        # …and goes on live from where it stands.
        await callback(b, task_id, status="processing", delta="!")
        more = await next_of_type(socket, "message.delta")
        while more["offset"] + len(more["text"]) <= 14:
            more = await next_of_type(socket, "message.delta")
    assert (more["offset"], more["text"]) == (14, "!")
