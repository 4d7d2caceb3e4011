"""What a user reads about a task comes from the server's own words (N7).

A workflow's error text (an API key fragment, the provider's host, an
internal address) stays in `error_details`, for the admin; the task JSON
(`GET /tasks/{id}/`) and the `task` object of `task.status` frames carry only
`TaskWords`. A `processing` callback's `status_message` is the workflow
author's chosen progress line and is shown as given.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks import frames
from tasks.models import AsyncTask, TaskWords
from tasks.outbound import reconcile
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db

SECRET = "Incorrect API key sk-proj-7f3A9 for api.example-llm.com via 10.0.3.7:8443"


def shown(user_client, task):
    """The task as the user's page and sockets get it: its JSON and its frames."""
    task.refresh_from_db()
    answer = user_client.get(f"/tasks/{task.pk}/").json()
    frame_texts = json.dumps([send for send in frames.task_sends(task)], default=str)
    return json.dumps(answer), frame_texts


@pytest.mark.parametrize(
    "body",
    [
        {"status": "failed", "error": {"message": SECRET}},
        {"status": "failed", "error": SECRET},
        {"status": "failed", "error": {"message": "x"}, "status_message": SECRET},
        {"status": "failed", "status_message": SECRET},
    ],
)
def test_a_failed_callbacks_words_stay_with_the_admin(client, user_client, user, body):
    task = chat_task(user)
    assert post_callback(client, task.pk, body).status_code == 200
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.status_message == TaskWords.WORKFLOW_FAILED
    assert SECRET in json.dumps(task.error_details)  # kept for the admin
    for text in shown(user_client, task):
        assert "sk-proj" not in text and "10.0.3.7" not in text and "example-llm" not in text


def test_a_failed_execution_found_by_reconciliation_shows_the_servers_words(
    fake_n8n, settings, user_client, user
):
    settings.N8N_API_KEY = "k"
    fake_n8n.expect_request("/api/v1/executions/77").respond_with_json(
        {"id": "77", "status": "error", "data": {"resultData": {"error": {"message": SECRET}}}}
    )
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(
        status="processing", n8n_execution_id="77", updated_at=timezone.now() - timedelta(60)
    )
    assert reconcile.reconcile_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status_message == TaskWords.WORKFLOW_FAILED
    assert task.error_details["message"] == SECRET
    for text in shown(user_client, task):
        assert "sk-proj" not in text


def test_a_processing_callbacks_progress_line_is_shown_as_written(client, user_client, user):
    task = chat_task(user)
    body = {"status": "processing", "current_step": "search", "status_message": "Reading 3 pages…"}
    assert post_callback(client, task.pk, body).status_code == 200
    answer, _frames = shown(user_client, task)
    assert json.loads(answer)["task"]["status_message"] == "Reading 3 pages…"
