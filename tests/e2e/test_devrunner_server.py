"""The development workflow runner inside a real Daphne server: the server's worker
dispatches to it and its callbacks arrive over real HTTP."""

import pytest

from chat.models import Message, Role
from chat.replies.tasktypes import CHAT
from tasks import services
from tests import support
from tests.task_support import chat_task, wait_for_status


@pytest.fixture
def dev_server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = support.Server(
            env={
                "N8N_BASE_URL": "",
                "TASKS_WORKER_IN_PROCESS": "1",
                "TASKS_WORKER_POLL_SECONDS": "0.1",
                "DEV_RUNNER_STEP_SECONDS": "0.1",
            }
        )
        server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_end_to_end_the_server_worker_dispatches_and_the_reply_arrives_over_http(dev_server, user):
    # Committed as pending with nobody dispatching: the server's in-process worker
    # dispatches to the runner, which calls the server's webhook over real HTTP.
    task = chat_task(user, "Hello runner")
    task = wait_for_status(task.pk, {"completed", "failed", "timeout"}, timeout=30)
    assert task.status == "completed"
    assert task.n8n_execution_id.startswith("dev-")
    assert task.processing_started_at and task.processing_completed_at
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert "development workflow runner" in reply.content
    assert "Hello runner" in reply.content
    assert reply.thinking


@pytest.mark.django_db(transaction=True)
def test_end_to_end_a_task_created_here_is_dispatched_after_commit_and_completed(
    dev_server, user, settings
):
    settings.N8N_BASE_URL = ""
    settings.PUBLIC_BASE_URL = dev_server.base_url
    settings.DEV_RUNNER_STEP_SECONDS = 0.1
    from tests import factories

    conversation = factories.conversation(user)
    task = services.create_task(
        user=user,
        task_type=CHAT,
        input_data={"conversation_id": conversation.pk, "message": "after commit", "history": []},
    )
    task = wait_for_status(task.pk, {"completed", "failed"}, timeout=30)
    assert task.status == "completed"
    assert task.attempts == 1
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1
