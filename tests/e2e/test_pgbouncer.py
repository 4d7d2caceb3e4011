"""The app through a real PgBouncer in transaction mode (DATABASE_POOLER=transaction).

A Daphne process and a task worker reach the test database only through
PgBouncer (deploy/pgbouncer.ini, pool_mode = transaction, 5 server
connections): a password login, a send, the worker's claim and dispatch, the
streamed reply written by the door, its websocket frames, the task's events,
search, export, and the worker timing out an overdue task all work, and
neither process logs an error (a prepared statement or a server-side cursor
outliving its transaction would show there).
"""

import asyncio
import json
import re
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from tests import factories, support
from tests.e2e.pgbouncer_support import PgBouncer, need_pgbouncer
from tests.e2e.test_make_run import _log_in
from tests.ws_support import next_frame, real_socket

# Both fixtures by name, so that CI's SQLite pass deselects these (tests/conftest.py).
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "redis_url"),
]

REPLY_WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def bounced(django_db_setup, django_db_blocker):
    """PgBouncer, one Daphne and one worker, both through it, for this module."""
    import os

    with django_db_blocker.unblock():
        need_pgbouncer()
        redis = os.environ.get("REDIS_URL", "")
        support.need(bool(redis), "needs Redis: set REDIS_URL=redis://… (CI runs with it)")
        with PgBouncer(pool_size=5) as bouncer:
            env = {
                "DATABASE_URL": bouncer.database_url(),
                "DATABASE_POOLER": "transaction",
                "REDIS_URL": redis,
                "TASKS_WORKER_IN_PROCESS": "0",
                "DEV_RUNNER_STEP_SECONDS": "0.05",
                "DEV_RUNNER_WORD_SECONDS": "0.01",
            }
            # Every dispatch is left to the worker: its claim goes through PgBouncer too.
            server = support.Server(env={**env, "TASK_DISPATCH_QUEUE_MAX": "0"})
            with server:
                worker = support.Worker(env={**env, "PUBLIC_BASE_URL": server.base_url})
                with worker:
                    yield {"server": server, "worker": worker, "bouncer": bouncer}
            # Close this process's pooled connections before the test database is dropped.
            from django.db import connections

            connections.close_all()


def _logs_have_no_errors(bounced):
    for process in (bounced["server"], bounced["worker"]):
        text = process.log_path.read_text(errors="replace")
        for marker in ("Traceback", "prepared statement", "cursor", " ERROR "):
            assert marker not in text, f"{process.log_path.name}: {marker!r} in its log"


async def _frames_until_reply(socket):
    seen = []
    deadline = time.monotonic() + REPLY_WAIT_SECONDS
    while time.monotonic() < deadline:
        frame = await next_frame(socket)
        seen.append(frame)
        if frame["type"] == "message.created" and frame["message"].get("role") == "assistant":
            return seen
    raise AssertionError(f"no assistant message.created: {[f['type'] for f in seen]}")


def test_a_conversation_lives_through_pgbouncer(bounced, make_user, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user("bouncer")
    conversation = factories.conversation(user)
    base = bounced["server"].base_url
    session = requests.Session()
    token = _log_in(session, base, "bouncer")
    cookie = f"sessionid={session.cookies['sessionid']}"

    async def send_and_watch():
        path = f"/ws/chat/{conversation.pk}/"
        async with real_socket(bounced["server"], path, cookie) as socket:
            await socket.send(json.dumps({"type": "ping"}))
            assert (await next_frame(socket))["type"] == "pong"
            answer = await asyncio.to_thread(
                session.post,
                f"{base}/chat/{conversation.pk}/messages/",
                data={"content": "Which pooler sits between us, xylophone?"},
                headers={"X-CSRFToken": token, "Referer": f"{base}/chat/"},
                timeout=10,
            )
            assert answer.status_code in (200, 201, 302), answer.text[:300]
            return await _frames_until_reply(socket)

    frames = asyncio.run(send_and_watch())
    kinds = [frame["type"] for frame in frames]
    assert "message.delta" in kinds, kinds  # the streamed reply, written by the door
    [task] = support.sql("SELECT id, status FROM async_tasks WHERE created_by = %s", [user.pk])
    assert task["status"] == "completed"
    events = support.one(
        "SELECT count(*) AS n FROM async_task_events WHERE task_id = %s", [task["id"]]
    )
    assert events["n"] >= 2  # at least processing and completed
    page = session.get(f"{base}/chat/{conversation.pk}/", timeout=10)
    assert "message--assistant" in page.text
    found = session.get(f"{base}/chat/search/", params={"q": "xylophone"}, timeout=10)
    assert found.status_code == 200
    assert re.search(rf"/chat/{conversation.pk}/", found.text)
    exported = session.get(
        f"{base}/chat/{conversation.pk}/export/", params={"format": "json"}, timeout=10
    )
    assert exported.status_code == 200
    roles = [message["role"] for message in exported.json()["messages"]]
    assert roles == ["user", "assistant"]
    _logs_have_no_errors(bounced)


def test_the_worker_times_out_an_overdue_task_through_pgbouncer(bounced, user):
    task = factories.task(user, status="processing", created_at=timezone.now() - timedelta(hours=1))
    deadline = time.monotonic() + REPLY_WAIT_SECONDS
    status = None
    while time.monotonic() < deadline:
        status = support.one("SELECT status FROM async_tasks WHERE id = %s", [task.pk])["status"]
        if status == "timeout":
            break
        time.sleep(0.2)
    assert status == "timeout"
    _logs_have_no_errors(bounced)
