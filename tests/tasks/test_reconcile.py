"""Reconciliation: the worker asks n8n's API about tasks whose callbacks stopped."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Message, Role
from tasks.models import AsyncTask, TaskWords
from tasks.outbound import reconcile
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db

KEY = "api-key-for-tests"


@pytest.fixture
def n8n_api(fake_n8n, settings):
    """n8n's public API for executions: GET /api/v1/executions/{id} with the key
    answers the execution; any other execution is 404."""

    def serve(executions):
        settings.N8N_API_KEY = KEY
        for execution_id, found in executions.items():
            fake_n8n.expect_request(
                f"/api/v1/executions/{execution_id}",
                method="GET",
                headers={"X-N8N-API-KEY": KEY},
            ).respond_with_json(found)
        fake_n8n.expect_request(re.compile("/api/v1/executions/.*")).respond_with_json(
            {"message": "Not Found"}, status=404
        )
        return fake_n8n

    return serve


def asked(api):
    return [(request.full_path, request.headers.get("X-N8N-API-KEY")) for request, _ in api.log]


def execution(status, result=None, error=None):
    """An execution as n8n's public API returns it with includeData=true."""
    run_data = {"Webhook": [{"data": {"main": [[{"json": {}}]]}}]}
    if result is not None:
        run_data[reconcile.RESULT_NODE] = [{"data": {"main": [[{"json": result}]]}}]
    data = {"resultData": {"runData": run_data}}
    if error:
        data["resultData"]["error"] = {"message": error}
    return {"id": "77", "finished": status == "success", "status": status, "data": data}


def quiet_task(user):
    """A processing chat task with a known execution, silent for a minute."""
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(
        status="processing",
        n8n_execution_id="77",
        updated_at=timezone.now() - timedelta(seconds=60),
    )
    return task


COMPLETED = {"status": "completed", "output": {"content": "found in n8n", "thinking": ""}}


def test_a_lost_completed_callback_is_recovered_from_n8n(n8n_api, user):
    # n8n's callback failed (the workflow ended in error on the callback node),
    # but the Result node holds the reply.
    api = n8n_api({"77": execution("error", result=COMPLETED, error="ECONNREFUSED")})
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "completed"
    task.refresh_from_db()
    assert task.status == "completed"
    assert task.events.get(status="completed").source == "worker"
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content == "found in n8n"
    assert asked(api) == [("/api/v1/executions/77?includeData=true", KEY)]


def test_a_reconciled_replys_thinking_past_the_limit_is_cut_with_a_note(n8n_api, user, settings):
    settings.CHAT_THINKING_MAX_LENGTH = 4
    result = {"status": "completed", "output": {"content": "found", "thinking": "pondering"}}
    n8n_api({"77": execution("success", result=result)})
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "completed"
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.thinking == "pond\n\n[… thinking cut at 4 characters]"


def test_a_reconciled_reply_is_rendered_before_the_door_locks_its_task(n8n_api, user, monkeypatch):
    from tests.chat.test_rendering import record_renders_and_door_changes

    n8n_api({"77": execution("success", result=COMPLETED)})
    task = quiet_task(user)
    calls = record_renders_and_door_changes(monkeypatch)
    assert reconcile.reconcile_task(task.pk) == "completed"
    assert calls == ["render", "door"]
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content_html == "<p>found in n8n</p>\n"


def test_the_late_callback_after_reconciliation_adds_nothing(n8n_api, client, user):
    n8n_api({"77": execution("success", result=COMPLETED)})
    task = quiet_task(user)
    reconcile.reconcile_task(task.pk)
    response = post_callback(client, task.pk, COMPLETED)
    assert response.status_code == 200  # a repeat of the terminal status
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1


def test_a_callback_first_makes_reconciliation_a_no_op(n8n_api, client, user):
    n8n_api({"77": execution("success", result=COMPLETED)})
    task = quiet_task(user)
    post_callback(client, task.pk, COMPLETED)
    assert reconcile.reconcile_task(task.pk) == "skipped"
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1


def test_a_failed_execution_fails_the_task_with_n8ns_error(n8n_api, user):
    n8n_api({"77": execution("error", error="The model answered 500")})
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.error_details["message"] == "The model answered 500"
    assert task.error_details["stage"] == "n8n"


def test_a_running_execution_is_shown_as_still_running(n8n_api, user):
    n8n_api({"77": execution("running")})
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "running"
    task.refresh_from_db()
    assert (task.status, task.status_message) == ("processing", TaskWords.STILL_RUNNING)


def test_unreachable_or_unknown_executions_change_nothing(n8n_api, settings, user):
    n8n_api({})
    task = quiet_task(user)
    before = AsyncTask.objects.get(pk=task.pk).version
    assert reconcile.reconcile_task(task.pk) == "unknown"  # 404
    settings.N8N_BASE_URL = "http://127.0.0.1:9"
    assert reconcile.reconcile_task(task.pk) == "unreachable"
    assert AsyncTask.objects.get(pk=task.pk).version == before


def test_only_quiet_processing_tasks_with_an_execution_id_are_due(user, settings):
    settings.TASK_RECONCILE_AFTER_SECONDS = 30
    quiet = quiet_task(user)
    recent = chat_task(user)
    AsyncTask.objects.filter(pk=recent.pk).update(status="processing", n8n_execution_id="78")
    no_id = chat_task(user)
    AsyncTask.objects.filter(pk=no_id.pk).update(
        status="processing", updated_at=timezone.now() - timedelta(seconds=60)
    )
    assert list(reconcile.due().values_list("pk", flat=True)) == [quiet.pk]
    AsyncTask.objects.filter(pk=quiet.pk).update(reconciled_at=timezone.now())
    assert not reconcile.due().exists()  # asked lately


def test_without_an_api_key_nothing_is_asked(settings, user):
    settings.N8N_BASE_URL = "http://127.0.0.1:9"
    settings.N8N_API_KEY = ""
    quiet_task(user)
    assert reconcile.schedule() == 0
