"""Status only moves forward: every (current, reported) pair through the webhook,
the dispatcher's answers that never move a task back, timeouts, admin actions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.models import Message, Role
from tasks import services
from tasks.models import ALLOWED_TRANSITIONS, AsyncTask, TaskStatus
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db

CALLBACK_STATUSES = ["processing", "completed", "failed"]
PAYLOADS = {
    "processing": {"status": "processing", "current_step": "generating"},
    "completed": {"status": "completed", "output": {"content": "Hello"}},
    "failed": {"status": "failed", "error": {"message": "broke"}},
}


def expected_answer(current, reported):
    if current in TaskStatus.terminal():
        return 200 if current == reported else 409
    return 200


@pytest.mark.parametrize("reported", CALLBACK_STATUSES)
@pytest.mark.parametrize("current", TaskStatus.values)
def test_callback_transition(client, user, current, reported):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(status=current)
    version = AsyncTask.objects.get(pk=task.pk).version
    response = post_callback(client, task.pk, PAYLOADS[reported])
    assert response.status_code == expected_answer(current, reported)
    task.refresh_from_db()
    if current in TaskStatus.unfinished():
        assert reported in ALLOWED_TRANSITIONS[current]
        assert task.status == reported
        assert task.version == version + 1
    else:
        assert task.status == current  # terminal: nothing moves
        assert task.version == version


def test_the_transition_table_is_forward_only():
    order = {
        "pending": 0,
        "processing": 1,
        "completed": 2,
        "failed": 2,
        "timeout": 2,
        "cancelled": 2,
    }
    for current, nexts in ALLOWED_TRANSITIONS.items():
        for new in nexts:
            assert order[new] >= order[current]
            if order[new] == order[current]:
                assert new == current == "processing"
    for terminal in TaskStatus.terminal():
        assert ALLOWED_TRANSITIONS[terminal] == set()


# --- the dispatcher's answer arriving after a callback -------------------------------------


def _claimed(task):
    assert services.claim(task.pk)
    return AsyncTask.objects.get(pk=task.pk)


def test_a_2xx_read_after_a_processing_callback_keeps_the_callbacks_step(client, user):
    task = _claimed(chat_task(user))
    post_callback(
        client,
        task.pk,
        {"status": "processing", "current_step": "generating", "execution_id": "9"},
    )
    accepted = services.DispatchResult("accepted", 200, execution_id="999")
    assert services.record_dispatch(task.pk, accepted) == "ignored"
    task.refresh_from_db()
    assert (task.status, task.current_step, task.n8n_execution_id) == (
        "processing",
        "generating",
        "9",
    )
    assert task.claimed_until is None


def test_a_2xx_read_after_completed_leaves_the_task_completed(client, user):
    task = _claimed(chat_task(user))
    post_callback(client, task.pk, PAYLOADS["completed"])
    services.record_dispatch(task.pk, services.DispatchResult("accepted", 200))
    task.refresh_from_db()
    assert task.status == "completed"
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1


def test_an_error_read_after_a_callback_does_not_fail_the_task(client, user, settings):
    settings.TASK_DISPATCH_MAX_ATTEMPTS = 1
    task = _claimed(chat_task(user))
    post_callback(client, task.pk, PAYLOADS["processing"])
    result = services.DispatchResult("retryable", error="read time-out", kind="timeout")
    assert services.record_dispatch(task.pk, result) == "ignored"
    task.refresh_from_db()
    assert task.status == "processing"
    assert task.metadata["attempts"][-1]["outcome"] == "retryable"


# --- timeouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "processing"])
def test_overdue_unfinished_tasks_become_timeout(user, settings, status):
    settings.TASK_TIMEOUT_SECONDS = 60
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(
        status=status, created_at=timezone.now() - timedelta(seconds=61)
    )
    assert services.expire_overdue() == 1
    task.refresh_from_db()
    assert task.status == "timeout"
    assert task.status_message.startswith("No answer within")
    assert "60 seconds" in task.status_message
    assert task.error_details["stage"] == "timeout"
    assert task.processing_completed_at is not None
    assert task.processing_started_at is not None


def test_tasks_within_their_timeout_and_finished_ones_are_left_alone(user, settings):
    settings.TASK_TIMEOUT_SECONDS = 60
    young = chat_task(user)
    old_done = chat_task(user)
    AsyncTask.objects.filter(pk=old_done.pk).update(
        status="completed", created_at=timezone.now() - timedelta(hours=1)
    )
    assert services.expire_overdue() == 0
    young.refresh_from_db()
    old_done.refresh_from_db()
    assert (young.status, old_done.status) == ("pending", "completed")


def test_a_late_completed_callback_after_timeout_answers_409(client, user, settings):
    settings.TASK_TIMEOUT_SECONDS = 1
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(seconds=5))
    services.expire_overdue()
    response = post_callback(client, task.pk, PAYLOADS["completed"])
    assert response.status_code == 409
    assert response.json()["status"] == "timeout"
    assert not Message.objects.filter(role=Role.ASSISTANT).exists()


# --- admin actions ----------------------------------------------------------------------------


def test_mark_failed_ends_unfinished_tasks_only(user):
    task = chat_task(user)
    assert services.mark_failed(task.pk, "stuck")
    task.refresh_from_db()
    assert (task.status, task.status_message) == ("failed", "stuck")
    assert task.error_details == {"stage": "admin", "message": "stuck"}
    assert not services.mark_failed(task.pk)  # already terminal


def test_dispatch_again_resets_a_failed_task_to_pending_and_keeps_its_history(
    user, django_capture_on_commit_callbacks
):
    task = chat_task(user)
    services.mark_failed(task.pk, "workflow was inactive")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert services.dispatch_again(task.pk)
    task.refresh_from_db()
    assert task.status == "pending"
    assert task.error_details is None
    assert task.restarted_at is not None
    assert task.metadata["attempts"][-1]["previous_status"] == "failed"
    assert callbacks  # the dispatch is scheduled after the commit


def test_dispatch_again_leaves_completed_and_processing_tasks_alone(client, user):
    done = chat_task(user)
    post_callback(client, done.pk, PAYLOADS["completed"])
    busy = chat_task(user)
    post_callback(client, busy.pk, PAYLOADS["processing"])
    assert not services.dispatch_again(done.pk)
    assert not services.dispatch_again(busy.pk)
    assert AsyncTask.objects.get(pk=done.pk).status == "completed"
    assert AsyncTask.objects.get(pk=busy.pk).status == "processing"


def test_a_dispatched_again_task_counts_its_timeout_from_the_restart(user, settings):
    settings.TASK_TIMEOUT_SECONDS = 60
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(
        status="timeout", created_at=timezone.now() - timedelta(hours=1)
    )
    services.dispatch_again(task.pk)
    assert services.expire_overdue() == 0
    assert AsyncTask.objects.get(pk=task.pk).status == "pending"
