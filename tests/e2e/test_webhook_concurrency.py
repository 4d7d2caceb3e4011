"""Concurrent callbacks for one task are serialised: none lost, none applied twice,
and a callback that overtakes the dispatch answer is not undone by it.
Real threads against a real Daphne server (its own connections per request)."""

import json
import threading

import pytest
import requests
from django.core.management import call_command
from werkzeug.wrappers import Response

from chat.models import Message, Role
from tasks import callbacks
from tasks.models import AsyncTask
from tests import factories, support
from tests.task_support import chat_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        # No worker inside the server: the tests say who dispatches.
        server = support.Server(env={"TASKS_WORKER_IN_PROCESS": "0"})
        server.start()
    try:
        yield server
    finally:
        server.stop()


def fire(server, task_id, payloads):
    """POST every payload at once from its own thread; returns the answers."""
    url = f"{server.base_url}/tasks/{task_id}/webhook/"
    headers = {"Authorization": f"Bearer {callbacks.make_token(task_id)}"}
    barrier = threading.Barrier(len(payloads))
    answers = [None] * len(payloads)

    def post(index, payload):
        barrier.wait()
        answers[index] = requests.post(url, json=payload, headers=headers, timeout=60)

    threads = [threading.Thread(target=post, args=(i, p)) for i, p in enumerate(payloads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_twenty_concurrent_identical_completed_callbacks_create_one_reply(
    postgres_only, server, user
):
    task = chat_task(user)
    payload = {"status": "completed", "output": {"content": "Only once", "thinking": "t"}}
    answers = fire(server, task.pk, [payload] * 20)
    assert [a.status_code for a in answers] == [200] * 20
    assert {a.json()["status"] for a in answers} == {"completed"}
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1
    task.refresh_from_db()
    assert task.version == 2  # applied exactly once


def test_racing_step_updates_and_a_completion_are_all_applied_once(server, user):
    task = chat_task(user)
    steps = [{"status": "processing", "current_step": f"step-{n}"} for n in range(6)]
    done = {"status": "completed", "output": {"content": "Done"}}
    answers = fire(server, task.pk, steps + [done, done])
    codes = sorted(a.status_code for a in answers)
    # A step that lands after the completion is refused with 409; nothing is lost
    # silently and nothing applied twice.
    assert set(codes) <= {200, 409}
    applied_steps = sum(
        1
        for a, p in zip(answers, steps + [done, done], strict=True)
        if p["status"] == "processing" and a.status_code == 200
    )
    task.refresh_from_db()
    assert task.status == "completed"
    assert task.version == 1 + applied_steps + 1
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1
    assert AsyncTask.objects.count() == 1


@pytest.mark.parametrize(
    "callbacks, expected",
    [
        (
            [{"status": "processing", "current_step": "generating", "execution_id": "cb-7"}],
            ("processing", "generating", "cb-7"),
        ),
        (
            [{"status": "completed", "output": "Done early.", "execution_id": "cb-8"}],
            ("completed", "", "cb-8"),
        ),
    ],
)
def test_a_callback_before_the_dispatch_answer_wins(
    server, dispatch_settings, fake_n8n, user, callbacks, expected
):
    dispatch_settings.PUBLIC_BASE_URL = server.base_url
    dispatch_settings.TASK_DISPATCH_READ_TIMEOUT = 5.0  # n8n calls back before it answers
    # A committed pending task (made without the web's own dispatcher, which would race).
    conversation = factories.conversation(user)
    task_id = factories.task(
        user, input_data={"conversation_id": conversation.pk, "message": "hi", "history": []}
    ).pk
    factories.message(conversation, "hi", async_task_id=task_id)
    answers = []

    def call_back_then_answer(request):
        body = request.get_json()
        for payload in callbacks:
            response = requests.post(
                body["callback_url"],
                json=payload,
                headers={"Authorization": f"Bearer {body['callback_token']}"},
                timeout=20,
            )
            answers.append((response.status_code, response.json()))
        answer = json.dumps({"executionId": "from-the-answer"})
        return Response(answer, content_type="application/json")

    webhook = fake_n8n.expect_request("/webhook/chat-reply", method="POST")
    webhook.respond_with_handler(call_back_then_answer)
    call_command("tasks_worker", "--once")
    assert [status for status, _ in answers] == [200]
    task = AsyncTask.objects.get(pk=task_id)
    assert (task.status, task.current_step, task.n8n_execution_id) == expected
    assert task.processing_started_at is not None
    if expected[0] == "completed":
        replies = Message.objects.filter(async_task_id=task_id, role=Role.ASSISTANT)
        assert replies.count() == 1
