"""The app's own access log: one line per HTTP request and websocket connection,
through Python logging (`chatproject.access`), the path without its query string."""

import logging

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator

from chatproject.asgi import application
from observability.access import AccessLog


def access_records(caplog):
    return [r for r in caplog.records if r.name == "chatproject.access"]


async def plain_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_an_http_request_is_one_line_without_its_query_string(caplog):
    caplog.set_level(logging.INFO, logger="chatproject.access")
    communicator = HttpCommunicator(AccessLog(plain_app), "GET", "/healthz?token=sekrit")
    response = await communicator.get_response()
    assert response["status"] == 204
    [record] = access_records(caplog)
    assert record.method == "GET"
    assert record.path == "/healthz"
    assert record.http_status == 204
    assert record.duration_ms >= 0
    assert "sekrit" not in record.getMessage()


async def test_an_application_that_raises_is_logged_as_500(caplog):
    caplog.set_level(logging.INFO, logger="chatproject.access")

    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await AccessLog(broken)(
            {"type": "http", "method": "POST", "path": "/x", "client": ("10.0.0.9", 5)},
            None,
            None,
        )
    [record] = access_records(caplog)
    assert (record.http_status, record.client, record.path) == (500, "10.0.0.9", "/x")


async def test_a_path_with_an_escaped_newline_stays_one_line(caplog):
    caplog.set_level(logging.INFO, logger="chatproject.access")
    communicator = HttpCommunicator(AccessLog(plain_app), "GET", "/a%0Afake?q=1")
    await communicator.get_response()
    [record] = access_records(caplog)
    assert "\n" not in record.getMessage()


@pytest.mark.django_db
async def test_the_served_application_logs_http_requests(caplog):
    caplog.set_level(logging.INFO, logger="chatproject.access")
    communicator = HttpCommunicator(
        application, "GET", "/metrics?token=sekrit", headers=[(b"host", b"127.0.0.1")]
    )
    await communicator.get_response()
    [record] = access_records(caplog)
    assert (record.method, record.path, record.http_status) == ("GET", "/metrics", 404)


async def test_the_served_application_logs_a_refused_websocket(caplog):
    caplog.set_level(logging.INFO, logger="chatproject.access")
    communicator = WebsocketCommunicator(
        application, "/ws/tasks/?token=sekrit", headers=[(b"origin", b"http://127.0.0.1:8000")]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.wait()
    [record] = access_records(caplog)
    assert (record.method, record.path, record.http_status) == ("WEBSOCKET", "/ws/tasks/", 403)


def test_the_client_is_the_address_the_app_counts(settings):
    from accounts.limits import scope_client_ip

    settings.CLIENT_IP_HEADER = "X-Real-IP"
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    proxied = {"client": ("127.0.0.1", 1), "headers": [(b"x-real-ip", b"203.0.113.7")]}
    direct = {"client": ("198.51.100.2", 1), "headers": [(b"x-real-ip", b"203.0.113.7")]}
    assert scope_client_ip(proxied) == "203.0.113.7"
    assert scope_client_ip(direct) == "198.51.100.2"
