"""Websocket helpers shared by the tests.

Two ways in: Channels' WebsocketCommunicator straight into the ASGI
application (`communicator`, `open_socket`), and a real client (`websockets`)
against a Daphne process of tests/support.py (`real_socket`, `next_frame`).
Both carry a signed-in user's session cookie and the Origin the server accepts.
"""

import asyncio
import json

import pytest
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import (
    DEFAULT_CHANNEL_LAYER,
    InMemoryChannelLayer,
    channel_layers,
    get_channel_layer,
)
from channels.testing import WebsocketCommunicator
from django.test import Client

HOST = (b"host", b"127.0.0.1:8000")
ORIGIN = (b"origin", b"http://127.0.0.1:8000")  # the same scheme, host and port
FRAME_TIMEOUT = 5  # seconds to wait for a frame through the ASGI application
REAL_FRAME_TIMEOUT = 10  # … and through a real server process


def session_cookie(user) -> str:
    """The Cookie header value of a signed-in session of `user`."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


# --- through the ASGI application --------------------------------------------------------


def communicator(path, cookie=None, origin=ORIGIN, host=HOST, extra=()):
    """A not yet connected socket; `origin=None` sends none."""
    from chatproject.asgi import application

    headers = [host, *extra]
    if origin:
        headers.append(origin)
    if cookie:
        headers.append((b"cookie", cookie.encode() if isinstance(cookie, str) else cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def open_socket(path, cookie, **headers):
    socket = communicator(path, cookie, **headers)
    connected, _ = await socket.connect(timeout=FRAME_TIMEOUT)
    assert connected, f"{path} refused the socket"
    return socket


async def frames(socket, count):
    return [await socket.receive_json_from(timeout=FRAME_TIMEOUT) for _ in range(count)]


async def sync(socket, **content):
    await socket.send_json_to({"type": "sync", **content})


def fresh_channel_layer():
    """Sockets of an earlier test (another event loop) must not linger in
    groups; on Redis, the layer's locks belong to that loop too (a receive it
    left locked fails the next test's with "bound to a different event
    loop"), so the test gets a layer of its own."""
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        async_to_sync(layer.flush)()
    else:
        channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)


@pytest.fixture
def fresh_layer():
    fresh_channel_layer()
    yield


@pytest.fixture
def no_dispatch(monkeypatch):
    """For tests that move their tasks themselves, one transition at a time:
    dispatch (tested in the tasks tests) would race them from its thread
    pool; without it a task waits as it does for an absent worker."""
    from tasks.outbound import dispatch

    monkeypatch.setattr(dispatch, "schedule_dispatch", lambda task_id: None)


@database_sync_to_async
def send_user_message(conversation_id, text="hello"):
    """A user message and its chat task in one transaction, like the composer."""
    from django.db import transaction

    from chat.models import Conversation, Message, Role
    from chat.replies import tasktypes
    from chat.services import publish_message
    from tasks import services

    with transaction.atomic():
        conversation = Conversation.objects.get(pk=conversation_id)
        task = services.create_task(
            user=conversation.user,
            task_type=tasktypes.CHAT,
            input_data={"conversation_id": conversation.pk, "message": text},
        )
        message = Message.objects.create(
            conversation=conversation, role=Role.USER, content=text, async_task=task
        )
        publish_message(message.pk)
    return message.pk, task.pk


@pytest.fixture
def alice_cookie(user):
    return session_cookie(user)


@pytest.fixture
def mallory_cookie(other_user):
    return session_cookie(other_user)


# --- through a real server process --------------------------------------------------------


def real_socket(server, path, cookie, origin=None):
    """`async with real_socket(server, path, cookie) as socket:` on a support.Server."""
    return websockets.connect(
        f"ws://127.0.0.1:{server.port}{path}",
        origin=origin or server.base_url,
        additional_headers={"Cookie": cookie},
        proxy=None,
        open_timeout=REAL_FRAME_TIMEOUT,
    )


async def next_frame(socket):
    return json.loads(await asyncio.wait_for(socket.recv(), REAL_FRAME_TIMEOUT))


async def next_of_type(socket, kind):
    """The next frame of `kind` on either kind of socket, skipping the others."""
    while True:
        if isinstance(socket, WebsocketCommunicator):
            frame = await socket.receive_json_from(timeout=FRAME_TIMEOUT)
        else:
            frame = await next_frame(socket)
        if frame["type"] == kind:
            return frame
