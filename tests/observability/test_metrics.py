"""`GET /metrics`: Prometheus text behind METRICS_TOKEN, and the counters moving.

The view and the record functions run in this process (prometheus-client's
own registry); the sums over several processes are in
tests/e2e/test_metrics_multiprocess.py.
"""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from observability import metrics

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
