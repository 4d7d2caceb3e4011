"""A real Daphne's websocket Origin check: another port of the same host is refused."""

import asyncio

import pytest
import websockets

from tests import factories, support
from tests.ws_support import real_socket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_real_daphne_refuses_another_port_of_the_same_host(user):
    conversation = factories.conversation(user)
    cookie = session_cookie(user)
    with support.Server() as server:
        path = f"/ws/chat/{conversation.pk}/"

        async def opens(origin):
            try:
                async with real_socket(server, path, cookie, origin=origin) as socket:
                    await socket.send('{"type": "ping"}')
                    return "pong" in await asyncio.wait_for(socket.recv(), 5)
            except websockets.InvalidStatus as refused:
                assert refused.response.status_code == 403
                return False

        assert not asyncio.run(opens("http://127.0.0.1:5678"))
        assert asyncio.run(opens(server.base_url))
