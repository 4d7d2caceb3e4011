"""POST /tasks/{id}/webhook/: every row of the contract's answers table."""

import json

import pytest

from chat.models import Message, Role
from tasks.models import AsyncTask, TaskStatus
from tests import factories
from tests.task_support import auth, chat_task, post_callback, webhook_url

pytestmark = pytest.mark.django_db

COMPLETED = {
    "status": "completed",
    "output": {"content": "Hi, I am the assistant.", "thinking": "greet back"},
}


def assistant_messages(task):
    return Message.objects.filter(async_task=task, role=Role.ASSISTANT)


def snapshot(task):
    task.refresh_from_db()
    return (task.status, task.version, task.current_step, task.status_message, task.output_data)


# --- 200 -------------------------------------------------------------------------------


def test_processing_callback_is_applied_with_step_message_and_execution_id(client, user):
    task = chat_task(user)
    response = post_callback(
        client,
        task.pk,
        {
            "status": "processing",
            "current_step": "generating",
            "status_message": "Writing…",
            "execution_id": "17",
        },
    )
    assert response.status_code == 200
    assert response.json() == {"task_id": task.pk, "status": "processing"}
    task.refresh_from_db()
    assert (task.status, task.current_step, task.status_message) == (
        "processing",
        "generating",
        "Writing…",
    )
    assert task.n8n_execution_id == "17"
    assert task.processing_started_at is not None
    assert task.processing_completed_at is None
    assert task.version == 2


def test_processing_may_repeat_with_new_steps(client, user):
    task = chat_task(user)
    post_callback(client, task.pk, {"status": "processing", "current_step": "one"})
    started = AsyncTask.objects.get(pk=task.pk).processing_started_at
    response = post_callback(client, task.pk, {"status": "processing", "current_step": "two"})
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.current_step == "two"
    assert task.processing_started_at == started  # set once, when it left pending


def test_completed_callback_stores_output_and_creates_the_assistant_message(client, user):
    task = chat_task(user)
    response = post_callback(client, task.pk, COMPLETED)
    assert response.status_code == 200
    assert response.json() == {"task_id": task.pk, "status": "completed"}
    task.refresh_from_db()
    assert task.output_data == COMPLETED["output"]
    assert task.processing_started_at is not None
    assert task.processing_completed_at is not None
    reply = assistant_messages(task).get()
    assert (reply.content, reply.thinking) == ("Hi, I am the assistant.", "greet back")
    assert reply.conversation_id == task.input_data["conversation_id"]


def test_completed_with_a_plain_string_output_is_taken_as_the_content(client, user):
    task = chat_task(user)
    response = post_callback(client, task.pk, {"status": "completed", "output": "Just text"})
    assert response.status_code == 200
    assert assistant_messages(task).get().content == "Just text"


def test_failed_callback_stores_error_details_and_a_plain_status_message(client, user):
    task = chat_task(user)
    error = {"message": "The model is overloaded", "node": "AI"}
    response = post_callback(client, task.pk, {"status": "failed", "error": error})
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.error_details == error
    assert "The model is overloaded" in task.status_message
    assert task.processing_completed_at is not None
    assert not assistant_messages(task).exists()


def test_failed_callback_accepts_an_error_string(client, user):
    task = chat_task(user)
    response = post_callback(client, task.pk, {"status": "failed", "error": "boom"})
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.error_details == "boom"
    assert "boom" in task.status_message


def test_repeated_completed_is_idempotent_and_the_first_wins(client, user):
    task = chat_task(user)
    assert post_callback(client, task.pk, COMPLETED).status_code == 200
    before = snapshot(task)
    again = {"status": "completed", "output": {"content": "A different reply"}}
    response = post_callback(client, task.pk, again)
    assert response.status_code == 200
    assert response.json() == {"task_id": task.pk, "status": "completed"}
    assert snapshot(task) == before
    assert assistant_messages(task).count() == 1
    assert assistant_messages(task).get().content == "Hi, I am the assistant."


def test_repeated_failed_is_idempotent(client, user):
    task = chat_task(user)
    post_callback(client, task.pk, {"status": "failed", "error": "first"})
    before = snapshot(task)
    response = post_callback(client, task.pk, {"status": "failed", "error": "second"})
    assert response.status_code == 200
    assert snapshot(task) == before
    task.refresh_from_db()
    assert task.error_details == "first"


# --- 400 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("this is not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('"completed"', "not an object"),
        (json.dumps({"status": "done"}), "unknown status"),
        (json.dumps({"status": "timeout"}), "timeout is not a callback status"),
        (json.dumps({}), "missing status"),
        (json.dumps({"status": "processing", "current_step": 3}), "step of the wrong type"),
        (json.dumps({"status": "processing", "status_message": ["x"]}), "message wrong type"),
        (json.dumps({"status": "processing", "execution_id": {"id": 1}}), "execution id type"),
        (json.dumps({"status": "failed", "error": 42}), "error of the wrong type"),
        (json.dumps({"status": "completed"}), "completed without output"),
        (json.dumps({"status": "completed", "output": {"content": "  "}}), "blank content"),
        (json.dumps({"status": "completed", "output": {"thinking": "x"}}), "no content"),
        (json.dumps({"status": "completed", "output": 12}), "output of the wrong type"),
        (json.dumps({"status": "processing", "current_step": "x" * 256}), "step too long"),
    ],
)
def test_bad_body_answers_400_and_changes_nothing(client, user, raw, reason):
    task = chat_task(user)
    before = snapshot(task)
    response = post_callback(client, task.pk, None, raw=raw)
    assert response.status_code == 400, reason
    assert "error" in response.json()
    assert snapshot(task) == before
    assert not assistant_messages(task).exists()


# --- 401 ----------------------------------------------------------------------------------


def test_missing_token_answers_401(client, user):
    task = chat_task(user)
    response = client.post(
        webhook_url(task.pk), data=json.dumps(COMPLETED), content_type="application/json"
    )
    assert response.status_code == 401
    assert "error" in response.json()
    assert snapshot(task)[0] == "pending"


def test_wrong_token_answers_401(client, user):
    task = chat_task(user)
    response = client.post(
        webhook_url(task.pk),
        data=json.dumps(COMPLETED),
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer not-the-token",
    )
    assert response.status_code == 401
    assert snapshot(task)[0] == "pending"


def test_token_in_another_scheme_answers_401(client, user):
    task = chat_task(user)
    token = auth(task.pk)["HTTP_AUTHORIZATION"].split()[1]
    response = client.post(
        webhook_url(task.pk),
        data=json.dumps(COMPLETED),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {token}",
    )
    assert response.status_code == 401


def test_token_of_task_a_is_refused_for_task_b(client, user, other_user):
    task_a = chat_task(user)
    task_b = chat_task(other_user)
    response = post_callback(client, task_b.pk, COMPLETED, token_for=task_a.pk)
    assert response.status_code == 401
    assert snapshot(task_b)[0] == "pending"
    assert not assistant_messages(task_b).exists()
    # and it still works for its own task
    assert post_callback(client, task_a.pk, COMPLETED).status_code == 200


# --- 404 ----------------------------------------------------------------------------------


def test_unknown_task_answers_404_before_the_token_is_checked(client, user):
    task = chat_task(user)
    response = client.post(
        webhook_url(task.pk + 1000), data=json.dumps(COMPLETED), content_type="application/json"
    )
    assert response.status_code == 404
    assert "error" in response.json()


# --- 405 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_methods_other_than_post_answer_405_json(client, user, method):
    task = chat_task(user)
    response = getattr(client, method)(webhook_url(task.pk), **auth(task.pk))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "error" in response.json()


# --- 409 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("terminal", ["completed", "failed", "timeout"])
def test_another_status_for_a_terminal_task_answers_409_with_its_status(client, user, terminal):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(status=terminal)
    before = snapshot(task)
    for status in {"processing", "completed", "failed"} - {terminal}:
        payload = COMPLETED if status == "completed" else {"status": status, "error": "late"}
        response = post_callback(client, task.pk, payload)
        assert response.status_code == 409
        assert response.json()["status"] == terminal
        assert "error" in response.json()
    assert snapshot(task) == before
    assert not assistant_messages(task).exists()


# --- 413 ----------------------------------------------------------------------------------


def test_body_over_the_limit_answers_413_json(client, user, settings):
    settings.TASK_WEBHOOK_MAX_BYTES = 200
    task = chat_task(user)
    payload = {"status": "completed", "output": {"content": "x" * 500}}
    response = post_callback(client, task.pk, payload)
    assert response.status_code == 413
    assert "error" in response.json()
    assert snapshot(task)[0] == "pending"


def test_body_just_under_the_limit_is_accepted(client, user, settings):
    payload = {"status": "completed", "output": {"content": "x" * 100}}
    settings.TASK_WEBHOOK_MAX_BYTES = len(json.dumps(payload))
    task = chat_task(user)
    assert post_callback(client, task.pk, payload).status_code == 200


# --- CSRF, publishing, genericity ----------------------------------------------------------


def test_webhook_is_csrf_exempt(user):
    from django.test import Client

    task = chat_task(user)
    strict = Client(enforce_csrf_checks=True)
    assert post_callback(strict, task.pk, {"status": "processing"}).status_code == 200


def test_every_applied_change_bumps_the_version_and_publishes_after_commit(
    client, user, django_capture_on_commit_callbacks
):
    task = chat_task(user)
    with django_capture_on_commit_callbacks() as callbacks:
        post_callback(client, task.pk, {"status": "processing", "current_step": "a"})
    assert callbacks, "a publish is registered for after the commit"
    with django_capture_on_commit_callbacks() as callbacks:
        post_callback(client, task.pk, COMPLETED)
    task.refresh_from_db()
    assert task.version == 3
    assert len(callbacks) >= 2  # the task frame and the new message


def test_a_deleted_conversation_still_completes_the_task_without_a_message(client, user):
    task = chat_task(user)
    factories.Conversation.objects.filter(pk=task.input_data["conversation_id"]).delete()
    assert post_callback(client, task.pk, COMPLETED).status_code == 200
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert not Message.objects.filter(role=Role.ASSISTANT).exists()
