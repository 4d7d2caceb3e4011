"""The websocket Origin check compares scheme, host and port."""

import pytest

from tests.ws_support import communicator

pytestmark = pytest.mark.django_db(transaction=True)


async def handshake(path, cookie, origin, host="127.0.0.1:8000", extra=()):
    origin = (b"origin", origin.encode()) if origin else None
    socket = communicator(path, cookie, origin=origin, host=(b"host", host.encode()), extra=extra)
    connected, _ = await socket.connect(timeout=5)
    await socket.disconnect()
    return connected


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:5678",  # another port of the same host (n8n's editor, say)
        "https://127.0.0.1:8000",  # another scheme
        "http://localhost:8000",  # another host
        "http://127.0.0.1",  # port 80
        "null",
        "",
    ],
)
async def test_an_origin_other_than_the_app_is_refused(alice_cookie, origin):
    assert not await handshake("/ws/tasks/", alice_cookie, origin)


async def test_the_apps_own_origin_is_accepted(alice_cookie):
    assert await handshake("/ws/tasks/", alice_cookie, "http://127.0.0.1:8000")


async def test_a_host_outside_allowed_hosts_gives_no_origin(alice_cookie):
    assert not await handshake(
        "/ws/tasks/", alice_cookie, "http://evil.example:8000", host="evil.example:8000"
    )


async def test_csrf_trusted_origins_are_accepted(alice_cookie, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://chat.example.com"]
    assert await handshake("/ws/tasks/", alice_cookie, "https://chat.example.com")
    assert not await handshake("/ws/tasks/", alice_cookie, "http://chat.example.com")


async def test_behind_a_tls_proxy_the_https_origin_of_the_host_is_accepted(alice_cookie, settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    proto = (b"x-forwarded-proto", b"https")
    assert await handshake(
        "/ws/tasks/",
        alice_cookie,
        "https://chat.example.com",
        host="chat.example.com",
        extra=[proto],
    )
    assert not await handshake(
        "/ws/tasks/",
        alice_cookie,
        "http://chat.example.com",
        host="chat.example.com",
        extra=[proto],
    )
