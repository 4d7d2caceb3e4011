"""Stop asks n8n to stop the execution through its public API, off the request
path, and records the answer; no answer ever undoes the cancel."""

import pytest

from tasks.models import AsyncTask
from tests import support
from tests.task_support import chat_task, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

JSON = {"HTTP_ACCEPT": "application/json"}


def stop_answer(task_id):
    return wait_for(
        lambda: AsyncTask.objects.get(pk=task_id).metadata.get("n8n_stop"),
        timeout=10,
        what="the stop answer to be recorded",
    )


def test_stop_calls_n8ns_stop_api_with_the_key(settings, fake_n8n, user_client, user):
    settings.N8N_API_KEY = "the-api-key"
    stop = fake_n8n.expect_request("/api/v1/executions/77/stop", method="POST")
    stop.respond_with_json({"status": "canceled"})
    task = chat_task(user, status="processing", n8n_execution_id="77")
    response = user_client.post(f"/tasks/{task.pk}/cancel/", **JSON)
    assert response.status_code == 200
    answer = stop_answer(task.pk)
    [(request, _response)] = fake_n8n.log
    assert request.path == "/api/v1/executions/77/stop"
    assert request.headers.get("X-N8N-API-KEY") == "the-api-key"
    assert answer["outcome"] == "stopped"
    assert answer["n8n_status"] == "canceled"
    assert AsyncTask.objects.get(pk=task.pk).status == "cancelled"


def test_an_n8n_without_the_stop_endpoint_is_recorded_and_the_task_stays_cancelled(
    settings, fake_n8n, user_client, user
):
    settings.N8N_API_KEY = "k"
    stop = fake_n8n.expect_request("/api/v1/executions/5/stop", method="POST")
    stop.respond_with_json({"message": "not found"}, status=404)
    task = chat_task(user, status="processing", n8n_execution_id="5")
    assert user_client.post(f"/tasks/{task.pk}/cancel/", **JSON).status_code == 200
    answer = stop_answer(task.pk)
    assert answer["http_status"] == 404
    assert answer["outcome"].startswith("not found")
    assert AsyncTask.objects.get(pk=task.pk).status == "cancelled"


def test_an_unreachable_n8n_is_recorded_and_never_fatal(settings, user_client, user):
    settings.N8N_BASE_URL = f"http://127.0.0.1:{support.free_port()}"
    settings.N8N_API_KEY = "k"
    task = chat_task(user, status="processing", n8n_execution_id="5")
    assert user_client.post(f"/tasks/{task.pk}/cancel/", **JSON).status_code == 200
    answer = stop_answer(task.pk)
    assert answer["outcome"] == "failed" and answer["http_status"] is None
    assert AsyncTask.objects.get(pk=task.pk).status == "cancelled"


def test_without_an_api_key_n8n_is_not_asked(settings, fake_n8n, user_client, user):
    settings.N8N_API_KEY = ""
    fake_n8n.expect_request("/api/v1/executions/5/stop", method="POST").respond_with_json({})
    task = chat_task(user, status="processing", n8n_execution_id="5")
    assert user_client.post(f"/tasks/{task.pk}/cancel/", **JSON).status_code == 200
    from tasks import executions

    assert executions.stop_execution(task.pk) is None
    assert fake_n8n.log == []
    assert "n8n_stop" not in AsyncTask.objects.get(pk=task.pk).metadata


def test_n8n_is_asked_once_per_execution_however_many_paths_get_there(settings, fake_n8n, user):
    """The Stop's own attempt and a late-learnt execution id may both arrive."""
    from tasks import executions

    settings.N8N_API_KEY = "k"
    stop = fake_n8n.expect_request("/api/v1/executions/12/stop", method="POST")
    stop.respond_with_json({"status": "canceled"})
    task = chat_task(user, status="cancelled", n8n_execution_id="12")
    assert executions.stop_execution(task.pk)["outcome"] == "stopped"
    assert executions.stop_execution(task.pk) is None
    assert [request.path for request, _response in fake_n8n.log] == ["/api/v1/executions/12/stop"]
