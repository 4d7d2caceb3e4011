"""Limits hold across server processes: two real Daphne processes sharing Redis
(the cache) and the database count one budget per user and per address."""

import asyncio
import json

import pytest
import requests
import websockets
from django.test import Client

from tests import factories, support
from tests.ws_support import real_socket, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-Passphrase-42"


@pytest.fixture
def two_servers(redis_url, transactional_db):
    env = {
        "REDIS_URL": redis_url,
        "TASKS_WORKER_IN_PROCESS": "0",
        "CHAT_RATE_LIMIT": "1/m",
        "CONVERSATION_RATE_LIMIT": "3/h",
        "DEV_RUNNER_STEP_SECONDS": "0",
        "DEV_RUNNER_WORD_SECONDS": "0",
    }
    with support.Server(env=env) as a, support.Server(env=env) as b:
        yield a, b


def signed_in(server, user):
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    session.get(f"{server.base_url}/chat/", timeout=10)  # sets the CSRF cookie
    return session


def post(session, url, data, **headers):
    headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session.post(url, data=data, headers=headers, allow_redirects=False, timeout=10)


def test_conversations_created_on_two_servers_share_one_budget(two_servers, user):
    a, b = two_servers
    sessions = [signed_in(a, user), signed_in(b, user)]
    answers = [
        post(sessions[n % 2], f"{(a, b)[n % 2].base_url}/chat/new/", {"title": f"c{n}"})
        for n in range(4)
    ]
    assert [r.status_code for r in answers] == [303, 303, 303, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0


def test_a_send_on_one_server_uses_the_budget_on_the_other(two_servers, user):
    a, b = two_servers
    first, second = factories.conversation(user), factories.conversation(user)
    on_a, on_b = signed_in(a, user), signed_in(b, user)
    json = {"Accept": "application/json"}
    sent = post(on_a, f"{a.base_url}/chat/{first.pk}/messages/", {"content": "hi"}, **json)
    assert sent.status_code == 201
    refused = post(on_b, f"{b.base_url}/chat/{second.pk}/messages/", {"content": "hi"}, **json)
    assert refused.status_code == 429
    assert refused.json()["retry_after"] == int(refused.headers["Retry-After"])
    assert second.messages.count() == 0


def test_failed_logins_on_two_servers_add_up(two_servers, user):
    a, b = two_servers

    def login(server, password):
        session = requests.Session()
        session.get(f"{server.base_url}/accounts/login/", timeout=10)
        return post(
            session,
            f"{server.base_url}/accounts/login/",
            {"username": user.username, "password": password},
        )

    for n in range(4):
        assert login((a, b)[n % 2], "wrong").status_code == 200
    assert login(a, "wrong").status_code == 429
    assert login(b, PASSWORD).status_code == 429


@pytest.fixture
def two_socket_servers(redis_url, transactional_db):
    env = {
        "REDIS_URL": redis_url,
        "TASKS_WORKER_IN_PROCESS": "0",
        "WS_PER_USER_LIMIT": "2",
        "WS_SLOT_TTL_SECONDS": "3",
    }
    with support.Server(env=env) as a, support.Server(env=env) as b:
        yield a, b


def test_sockets_per_user_are_counted_across_servers_and_a_crash_leaks_none(
    two_socket_servers, user
):
    a, b = two_socket_servers
    cookie = session_cookie(user)

    def connect(server):
        return real_socket(server, "/ws/tasks/", cookie)

    async def ping(socket):
        await socket.send('{"type": "ping"}')
        return json.loads(await asyncio.wait_for(socket.recv(), 10))

    async def refused_with_4429(server):
        async with connect(server) as socket:
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "error"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 10)
            return closed.value.rcvd.code == 4429

    async def scenario():
        held = [await connect(a), await connect(a)]
        for socket in held:
            assert await ping(socket) == {"type": "pong"}
        assert await refused_with_4429(b)
        # Process A dies without closing anything: its slots expire (3 s here).
        a.process.kill()
        a.process.wait()
        await asyncio.sleep(4.5)
        async with connect(b) as socket:
            assert await ping(socket) == {"type": "pong"}

    asyncio.run(scenario())
