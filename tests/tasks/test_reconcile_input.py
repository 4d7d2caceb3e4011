"""Reconciliation reads n8n's answer under the webhook's input rules (N8).

What the `Result` node holds is a callback body that never came: it goes
through the callbacks' parser and cleaner and their size limit, so a value no
database or page could hold fails the task once, in plain words, instead of
failing the worker's job on every pass until the task times out.
"""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks.models import AsyncTask, TaskWords
from tasks.outbound import reconcile
from tests.task_support import chat_task

pytestmark = pytest.mark.django_db

KEY = "api-key-for-tests"


def execution_json(result_json: str, status="success", error_json=None) -> str:
    """An execution as n8n's API answers it, the Result item spliced in raw."""
    error = f', "error": {error_json}' if error_json else ""
    return (
        '{"id": "77", "status": "' + status + '", "data": {"resultData": {"runData": {'
        '"Webhook": [{"data": {"main": [[{"json": {}}]]}}], '
        '"Result": [{"data": {"main": [[{"json": ' + result_json + "}]]}}]}" + error + "}}}"
    )


@pytest.fixture
def serve(fake_n8n, settings):
    def serve(raw):
        settings.N8N_API_KEY = KEY
        fake_n8n.expect_request("/api/v1/executions/77", method="GET").respond_with_data(
            raw, content_type="application/json"
        )
        fake_n8n.expect_request(re.compile("/api/v1/executions/.*")).respond_with_json(
            {"message": "Not Found"}, status=404
        )
        return fake_n8n

    return serve


def quiet_task(user):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(
        status="processing",
        n8n_execution_id="77",
        updated_at=timezone.now() - timedelta(seconds=60),
    )
    return task


def completed(content_json):
    return '{"status": "completed", "output": {"content": ' + content_json + ', "thinking": ""}}'


BAD_RESULTS = {
    "nul": completed(r'"a\u0000b"'),
    "lone surrogate": completed(r'"a\ud800b"'),
    "nan": '{"status": "completed", "output": {"content": "x", "n": NaN}}',
    "deep": completed('"x"')[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}",
}


@pytest.mark.parametrize("name", BAD_RESULTS)
def test_a_result_the_webhook_would_refuse_fails_the_task_once(serve, user, name):
    serve(execution_json(BAD_RESULTS[name]))
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "failed"  # never raises
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.status_message == TaskWords.RESULT_UNUSABLE
    assert task.error_details["stage"] == "n8n result"
    assert task.error_details["execution_id"] == "77"
    json.dumps(task.error_details)  # the reason is plain text
    # The next pass has nothing left to do.
    assert reconcile.reconcile_task(task.pk) == "skipped"


def test_a_result_over_the_webhooks_size_limit_is_refused(serve, user, settings):
    settings.TASK_WEBHOOK_MAX_BYTES = 100_000
    thinking = "t" * 500_000
    body = '{"status": "completed", "output": {"content": "hi", "thinking": "' + thinking + '"}}'
    serve(execution_json(body))
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status == "failed"
    assert "100000 bytes" in task.error_details["reason"]
    assert not task.messages.filter(role="assistant").exists()


def test_an_answer_over_the_reconcile_limit_is_not_read_whole(serve, user, settings):
    settings.TASK_RECONCILE_MAX_BYTES = 50_000
    serve(execution_json(completed('"%s"' % ("y" * 60_000))))
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "failed"
    task.refresh_from_db()
    assert "50000 bytes" in task.error_details["reason"]


def test_a_deep_execution_outside_the_result_fails_the_task_cleanly(serve, user):
    # The whole answer cannot be parsed (nested past the interpreter's limit).
    serve('{"id": "77", "status": "running", "data": ' + "[" * 5000 + "]" * 5000 + "}")
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status == "failed"


def test_n8ns_error_words_are_cleaned_before_they_are_kept(serve, user):
    error = r'{"message": "a\u0000b\ud800c"}'
    serve(execution_json('{"status": "running"}', status="error", error_json=error))
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "failed"
    task.refresh_from_db()
    message = task.error_details["message"]
    assert "\x00" not in message
    message.encode("utf-8")  # no lone surrogate left


def test_a_good_result_still_completes(serve, user):
    serve(execution_json(completed('"found it"')))
    task = quiet_task(user)
    assert reconcile.reconcile_task(task.pk) == "completed"
    task.refresh_from_db()
    assert task.status == "completed"
