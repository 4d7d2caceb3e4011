"""`GET /metrics` summed over processes: real Daphne processes and a `tasks_worker`
sharing one PROMETHEUS_MULTIPROC_DIR, the way a deployment runs them."""

import asyncio
import json
import time

import pytest
import requests

from tasks.models import AsyncTask
from tests import factories, support
from tests.observability.test_metrics import TOKEN, sample
from tests.task_support import wait_for
from tests.ws_support import real_socket, session_cookie


@pytest.fixture
def multiprocess_servers(tmp_path, transactional_db):
    """Two Daphne processes writing their metrics into one directory."""
    env = {
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "TASKS_WORKER_IN_PROCESS": "0",
    }
    with support.Server(env=env) as a, support.Server(env=env) as b:
        yield a, b


def remote_scrape(server):
    response = requests.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text[:300]
    return response.text


async def ping(socket):
    await socket.send(json.dumps({"type": "ping"}))
    assert json.loads(await asyncio.wait_for(socket.recv(), 10)) == {"type": "pong"}


@pytest.mark.django_db(transaction=True)
async def test_open_websockets_are_summed_over_processes(multiprocess_servers, user):
    a, b = multiprocess_servers
    conversation = await asyncio.to_thread(factories.conversation, user)
    cookie = await asyncio.to_thread(session_cookie, user)

    def open_sockets(endpoint):
        text = remote_scrape(b)
        return sample(text, "chatproject_websockets_open", endpoint=endpoint)

    async with (
        real_socket(a, f"/ws/chat/{conversation.pk}/", cookie) as chat_on_a,
        real_socket(b, "/ws/tasks/", cookie) as tasks_on_b,
        real_socket(a, "/ws/tasks/", cookie) as tasks_on_a,
    ):
        for socket in (chat_on_a, tasks_on_b, tasks_on_a):
            await ping(socket)
        assert await asyncio.to_thread(open_sockets, "chat") == 1
        assert await asyncio.to_thread(open_sockets, "tasks") == 2

    async def closed():
        for _ in range(50):
            if await asyncio.to_thread(open_sockets, "tasks") == 0:
                return True
            await asyncio.sleep(0.1)
        return False

    assert await closed()
    assert await asyncio.to_thread(open_sockets, "chat") == 0


@pytest.fixture
def stack(tmp_path, transactional_db):
    """Server A (where users send; its dispatches call back to B), server B, and
    a `tasks_worker` process (its dispatches call back to B too), all writing
    their metrics into one directory. The development runner plays n8n."""
    folder = tmp_path / "metrics"
    env = {
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
        "TASKS_WORKER_IN_PROCESS": "0",
        "DEV_RUNNER_STEP_SECONDS": "0.05",
        "DEV_RUNNER_STREAM": "0",  # two callbacks per reply, as counted below
    }
    b = support.Server(env=env)
    a = support.Server(env={**env, "PUBLIC_BASE_URL": b.base_url})
    with b, a:
        worker = support.Worker(env={**env, "PUBLIC_BASE_URL": b.base_url})
        with worker:
            yield a, b, worker


@pytest.mark.django_db(transaction=True)
def test_counters_add_up_over_two_servers_and_the_worker(stack, user):
    a, b, worker = stack
    started = time.time()
    # A user's message on A: created and dispatched there, called back on B.
    session = requests.Session()
    session.cookies.set("sessionid", session_cookie(user).split("=", 1)[1])
    conversation = factories.conversation(user)
    page = session.get(f"{a.base_url}/chat/{conversation.pk}/")
    assert page.status_code == 200
    response = session.post(
        f"{a.base_url}/chat/{conversation.pk}/messages/",
        data={"content": "count me", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{a.base_url}/chat/{conversation.pk}/"},
        allow_redirects=False,
    )
    assert response.status_code in (302, 303), response.text[:300]
    # A task nobody dispatched (its process died, say): the worker sends it.
    orphan = factories.task(user, workflow_id="chat-reply", input_data={"message": "orphan"})

    def finished():
        statuses = set(AsyncTask.objects.filter(created_by=user).values_list("status", flat=True))
        return statuses == {"completed"} and AsyncTask.objects.filter(created_by=user).count() == 2

    wait_for(finished, 30, what="both tasks completed")
    assert AsyncTask.objects.get(pk=orphan.pk).status == "completed"

    def totals():
        text = remote_scrape(b)
        return {
            "created": sample(text, "chatproject_tasks_created_total", task_type="chat"),
            "finished": sample(
                text, "chatproject_tasks_finished_total", task_type="chat", status="completed"
            ),
            "accepted": sample(
                text, "chatproject_task_dispatch_attempts_total", outcome="accepted"
            ),
            "latency": sample(
                text, "chatproject_task_dispatch_latency_seconds_count", outcome="accepted"
            ),
            "callbacks": sample(text, "chatproject_task_callbacks_total", code="200"),
            "published": sample(text, "chatproject_task_callback_publish_latency_seconds_count"),
            "passes": sample(text, "chatproject_tasks_worker_pass_seconds_count"),
            "heartbeat": sample(text, "chatproject_tasks_worker_heartbeat_timestamp_seconds"),
        }

    def settled():
        found = totals()
        return found if found["callbacks"] >= 4 and found["published"] >= 4 else None

    found = wait_for(settled, 10, what="the callbacks counted")
    assert found["created"] == 1  # the orphan was made by the test, not through the app
    assert found["finished"] == 2
    assert found["accepted"] == 2  # one by A's dispatcher, one by the worker
    assert found["latency"] == 2
    assert found["callbacks"] == 4  # processing + completed, twice, all on B
    assert found["published"] == 4
    assert found["passes"] >= 1
    assert found["heartbeat"] >= started
    # Any process answers the same sums.
    text_a = remote_scrape(a)
    assert sample(text_a, "chatproject_task_dispatch_attempts_total", outcome="accepted") == 2
    assert sample(text_a, "chatproject_task_callbacks_total", code="200") == 4
