"""One structured log line per dispatch attempt, callback and task change,
carrying the task id, n8n's execution id, the outcome and the timing."""

import logging

import pytest

from tasks import services
from tasks.outbound import dispatch
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db(transaction=True)

WEBHOOK = "/webhook/chat-reply"


def records(caplog, event):
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def test_a_dispatch_attempt_logs_its_outcome_and_timing(dispatch_settings, fake_n8n, user, caplog):
    caplog.set_level(logging.INFO)
    fake_n8n.expect_request(WEBHOOK, method="POST").respond_with_json({"executionId": "77"})
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "dispatched"
    [line] = records(caplog, "task.dispatch")
    assert line.task_id == task.pk
    assert line.execution_id == "77"
    assert line.outcome == "accepted"
    assert line.recorded == "dispatched"
    assert line.http_status == 200
    assert line.attempt == 1
    assert 0 <= line.duration_ms < 10_000
    assert line.levelno == logging.INFO


def test_a_refused_dispatch_logs_a_warning_with_the_reason(
    dispatch_settings, fake_n8n, user, caplog
):
    caplog.set_level(logging.INFO)
    refused = fake_n8n.expect_request(WEBHOOK, method="POST")
    refused.respond_with_json({"message": "not registered"}, status=404)
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "failed"
    [line] = records(caplog, "task.dispatch")
    assert line.outcome == "refused"
    assert line.http_status == 404
    assert "no active workflow" in line.error
    assert line.levelno == logging.WARNING


def test_a_callback_logs_its_answer_and_the_execution_id(client, user, caplog):
    caplog.set_level(logging.INFO)
    task = chat_task(user)
    response = post_callback(client, task.pk, {"status": "processing", "execution_id": 5})
    assert response.status_code == 200
    [line] = records(caplog, "task.callback")
    assert line.task_id == task.pk
    assert line.http_status == 200
    assert line.outcome == "applied"
    assert line.status == "processing"
    assert line.execution_id == "5"
    assert line.duration_ms >= 0


def test_a_refused_callback_logs_a_warning_without_the_body(client, user, caplog):
    caplog.set_level(logging.INFO)
    task = chat_task(user)
    response = post_callback(client, task.pk, {"status": "processing"}, token_for=task.pk + 1)
    assert response.status_code == 401
    [line] = records(caplog, "task.callback")
    assert line.http_status == 401
    assert line.outcome == "refused"
    assert line.levelno == logging.WARNING


def test_every_state_change_logs_one_line_after_the_commit(client, user, caplog):
    caplog.set_level(logging.INFO)
    task = chat_task(user)
    post_callback(client, task.pk, {"status": "processing", "current_step": "thinking"})
    post_callback(
        client, task.pk, {"status": "completed", "execution_id": "9", "output": {"content": "hi"}}
    )
    lines = records(caplog, "task.change")
    assert [(r.status, r.source) for r in lines] == [
        ("processing", "callback"),
        ("completed", "callback"),
    ]
    assert lines[0].current_step == "thinking"
    assert lines[1].execution_id == "9"
    assert lines[1].version > lines[0].version
    assert all(r.task_id == task.pk for r in lines)


def test_creating_a_task_logs_it(user, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(dispatch, "schedule_dispatch", lambda task_id: None)  # not sent here
    task = services.create_task(user=user, task_type="chat", input_data={"message": "x"})
    [line] = records(caplog, "task.created")
    assert line.task_id == task.pk
    assert line.task_type == "chat"
