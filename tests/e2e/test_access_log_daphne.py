"""Daphne started as docs/OPERATIONS.md says (`-v 0 --no-server-name`), DEBUG
off and `LOG_FORMAT=json`: no `Server` header, and each request or socket is
one JSON line of the app's access log, without its query string; Daphne writes
no access line of its own."""

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
import websockets

from tests import support

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sekrit-query-token"


def access_lines(log_path, path):
    lines = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("logger") == "chatproject.access" and entry.get("path") == path:
            lines.append(entry)
    return lines


def wait_for_lines(log_path, path, count=1, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = access_lines(log_path, path)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return access_lines(log_path, path)


def test_production_daphne_sends_no_server_header_and_logs_json_access_lines(tmp_path):
    log_path = tmp_path / "daphne.log"
    env = {
        "DEBUG": "0",
        "SECRET_KEY": "a-real-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "LOG_FORMAT": "json",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
    }
    with support.Server(env=env, log_path=log_path) as server:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"{server.base_url}/metrics?token={SECRET}", timeout=10)
        assert answer.value.code == 404
        assert answer.value.headers.get("Server") is None

        async def refused_socket():
            url = f"ws://127.0.0.1:{server.port}/ws/tasks/?token={SECRET}"
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(url, origin=server.base_url):
                    pass
            return refused.value.response

        handshake = asyncio.run(refused_socket())
        assert handshake.status_code == 403
        assert "Server" not in handshake.headers

        [http_line] = wait_for_lines(log_path, "/metrics")
        [socket_line] = wait_for_lines(log_path, "/ws/tasks/")
    assert (http_line["method"], http_line["http_status"], http_line["level"]) == (
        "GET",
        404,
        "INFO",
    )
    assert http_line["client"] == "127.0.0.1"
    assert http_line["duration_ms"] >= 0
    assert (socket_line["method"], socket_line["http_status"]) == ("WEBSOCKET", 403)
    assert SECRET not in log_path.read_text(errors="replace")
