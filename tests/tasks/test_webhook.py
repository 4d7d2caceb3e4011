"""POST /tasks/{id}/webhook/: the callbacks that apply (200), and what an applied
change does; the refusals are in tests/tasks/test_webhook_refusals.py."""

import pytest

from chat.models import Message, Role
from tasks.models import AsyncTask, TaskStatus, TaskWords
from tests import factories
from tests.task_support import chat_task, post_callback

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
    assert task.status_message == TaskWords.WORKFLOW_FAILED
    assert task.processing_completed_at is not None
    assert not assistant_messages(task).exists()


def test_failed_callback_accepts_an_error_string(client, user):
    task = chat_task(user)
    response = post_callback(client, task.pk, {"status": "failed", "error": "boom"})
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.error_details == "boom"
    assert task.status_message == TaskWords.WORKFLOW_FAILED


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


# --- CSRF, publishing, genericity ----------------------------------------------------------


def test_webhook_is_csrf_exempt(user):
    from django.test import Client

    task = chat_task(user)
    strict = Client(enforce_csrf_checks=True)
    assert post_callback(strict, task.pk, {"status": "processing"}).status_code == 200


def test_every_applied_change_bumps_the_version_by_one_and_publishes_after_commit(
    client, user, django_capture_on_commit_callbacks
):
    task = chat_task(user)
    versions = [AsyncTask.objects.get(pk=task.pk).version]
    for payload in (
        {"status": "processing", "current_step": "a"},
        {"status": "processing", "current_step": "b", "status_message": "Halfway"},
    ):
        with django_capture_on_commit_callbacks() as callbacks:
            assert post_callback(client, task.pk, payload).status_code == 200
        assert callbacks, "a publish is registered for after the commit"
        versions.append(AsyncTask.objects.get(pk=task.pk).version)
    with django_capture_on_commit_callbacks() as callbacks:
        assert post_callback(client, task.pk, COMPLETED).status_code == 200
    versions.append(AsyncTask.objects.get(pk=task.pk).version)
    assert versions == [1, 2, 3, 4]
    assert len(callbacks) >= 2  # the task frame and the new message


def test_a_deleted_conversation_still_completes_the_task_without_a_message(client, user):
    task = chat_task(user)
    factories.Conversation.objects.filter(pk=task.input_data["conversation_id"]).delete()
    assert post_callback(client, task.pk, COMPLETED).status_code == 200
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert not Message.objects.filter(role=Role.ASSISTANT).exists()
