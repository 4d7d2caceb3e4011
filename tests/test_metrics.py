"""`GET /metrics`: Prometheus text behind METRICS_TOKEN, and the counters moving.

The view and the record functions run in this process (prometheus-client's
own registry); the multiprocess tests start real Daphne processes that share
one PROMETHEUS_MULTIPROC_DIR, the way a deployment runs them.
"""

import asyncio
import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from observability import metrics
from tasks.models import AsyncTask
from tests import factories, support
from tests.task_support import wait_for
from tests.ws_support import real_socket, session_cookie

TOKEN = "metrics-token-for-tests"


def sample(text, name, **labels):
    """The value of one sample in Prometheus text (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client, token=TOKEN):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


# --- the token ---------------------------------------------------------------------


def test_metrics_is_404_while_no_token_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_without_authorization_is_401(client, token):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in response.content.decode()


@pytest.mark.parametrize(
    "header", ["Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer ", TOKEN]
)
def test_metrics_with_a_wrong_token_or_scheme_is_401(client, token, header):
    assert client.get("/metrics", HTTP_AUTHORIZATION=header).status_code == 401


def test_metrics_with_the_token_answers_prometheus_text(client, token):
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    families = {f.name for f in text_string_to_metric_families(response.content.decode())}
    for name in (
        "chatproject_tasks_created_total",
        "chatproject_tasks_finished_total",
        "chatproject_task_dispatch_attempts_total",
        "chatproject_task_dispatch_latency_seconds",
        "chatproject_task_callbacks_total",
        "chatproject_task_callback_publish_latency_seconds",
        "chatproject_websockets_open",
        "chatproject_task_streams_open",
        "chatproject_tasks_worker_pass_seconds",
        "chatproject_tasks_worker_heartbeat_timestamp_seconds",
    ):
        assert name.removesuffix("_total") in families, name


def test_metrics_refuses_other_methods(client, token):
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


# --- the record functions ---------------------------------------------------------


def test_recorded_events_move_their_samples(client, token):
    before = scrape(client)
    metrics.record_task_created("chat")
    metrics.record_task_finished("chat", "failed")
    metrics.record_dispatch_attempt("retryable", 0.2)
    metrics.record_callback(409)
    metrics.record_callback_publish(0.004)
    metrics.record_worker_pass(0.05)
    after = scrape(client)

    def moved(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("chatproject_tasks_created_total", task_type="chat") == 1
    assert moved("chatproject_tasks_finished_total", task_type="chat", status="failed") == 1
    assert moved("chatproject_task_dispatch_attempts_total", outcome="retryable") == 1
    assert (
        moved("chatproject_task_dispatch_latency_seconds_bucket", outcome="retryable", le="0.25")
        == 1
    )
    assert (
        moved("chatproject_task_dispatch_latency_seconds_bucket", outcome="retryable", le="0.1")
        == 0
    )
    assert moved("chatproject_task_callbacks_total", code="409") == 1
    assert moved("chatproject_task_callback_publish_latency_seconds_count") == 1
    assert moved("chatproject_tasks_worker_pass_seconds_count") == 1
    assert sample(after, "chatproject_tasks_worker_heartbeat_timestamp_seconds") > 1.7e9


def test_a_failing_metric_never_raises_into_the_caller(caplog):
    metrics.record_dispatch_attempt("accepted", "not a number")  # observe() raises inside
    assert "recording the metric record_dispatch_attempt failed" in caplog.text


# --- several processes --------------------------------------------------------------


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
