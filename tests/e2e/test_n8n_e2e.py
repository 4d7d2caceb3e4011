"""End to end against a real n8n, each version of N8N_VERSIONS (tests/e2e/n8n_support.py).

One n8n per version and test session, taken from empty to working workflows
by `manage.py n8n_setup`, and a real Daphne server of the project that n8n
calls back. Skips on a laptop without n8n; fails under CI=true.
"""

import re
import time

import pytest
import requests
from django.utils import timezone

from chat.models import Conversation, Message, Role
from n8n.api import N8nApiError
from tasks import services
from tasks.models import AsyncTask, TaskWords
from tests import support
from tests.e2e import model_standin
from tests.e2e.n8n_support import MODEL_API_KEY, SECRET, TIMINGS, needs_node24, project_server
from tests.task_support import chat_task, wait_for, wait_for_status

pytestmark = [pytest.mark.n8n, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def app_server(n8n, django_db_setup, django_db_blocker):
    """The project on Daphne, dispatching to the real n8n.

    No worker loop in it: tests that dispatch from this process must not race
    with one (the worker path is covered by test_worker and test_devrunner)."""
    with django_db_blocker.unblock():
        server = project_server(
            n8n,
            N8N_CHAT_WORKFLOW="chat-reply-offline",
            TASK_DISPATCH_MAX_ATTEMPTS="3",
            TASK_DISPATCH_BACKOFF_SECONDS="0.2",
        )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def to_n8n(settings, n8n, app_server):
    """Dispatches from this test process go to the real n8n and call back the server."""
    settings.N8N_BASE_URL = n8n.base_url
    settings.N8N_WEBHOOK_SECRET = SECRET
    settings.PUBLIC_BASE_URL = app_server.base_url
    settings.TASK_DISPATCH_MAX_ATTEMPTS = 3
    settings.TASK_DISPATCH_BACKOFF_SECONDS = 0.05
    return settings


def _form_post(session, url, data):
    token = session.cookies.get("csrftoken")
    return session.post(url, data={**data, "csrfmiddlewaretoken": token}, allow_redirects=False)


def sign_up(server, username):
    session = requests.Session()
    session.get(f"{server.base_url}/accounts/signup/").raise_for_status()
    password = "a-long-Passphrase-42"
    response = _form_post(
        session,
        f"{server.base_url}/accounts/signup/",
        {"username": username, "password1": password, "password2": password},
    )
    assert response.status_code in (302, 303), response.text[:500]
    return session


def send(server, session, conversation_id, text):
    session.get(f"{server.base_url}/chat/{conversation_id}/")
    response = _form_post(
        session, f"{server.base_url}/chat/{conversation_id}/messages/", {"content": text}
    )
    assert response.status_code in (302, 303), response.text[:500]


def reply_to(conversation_id, count=1, timeout=30):
    def replies():
        found = list(Message.objects.filter(conversation_id=conversation_id, role=Role.ASSISTANT))
        return found if len(found) >= count else None

    return wait_for(replies, timeout, what=f"{count} assistant repl(ies)")


def test_a_message_sent_at_the_chat_page_gets_the_offline_workflows_reply(app_server):
    session = sign_up(app_server, "e2e-user")
    response = _form_post(
        session, f"{app_server.base_url}/chat/new/", {"title": "n8n", "content": "Hello n8n"}
    )
    assert response.status_code in (302, 303), response.text[:500]
    conversation = Conversation.objects.get(user__username="e2e-user")
    started = time.monotonic()
    [reply] = reply_to(conversation.pk)
    TIMINGS["send_to_reply_seconds"] = round(time.monotonic() - started, 3)

    assert "Offline reply from n8n" in reply.content
    assert "Hello n8n" in reply.content
    assert "0 earlier message" in reply.thinking
    task = reply.async_task
    assert task.status == "completed"
    assert task.workflow_id == "chat-reply-offline"
    assert re.fullmatch(r"\d+", task.n8n_execution_id)
    assert task.processing_started_at is not None
    assert task.processing_completed_at is not None
    assert task.processing_started_at <= task.processing_completed_at
    assert task.output_data["content"] == reply.content
    TIMINGS["dispatch_to_completed_seconds"] = round(
        (task.processing_completed_at - task.created_at).total_seconds(), 3
    )
    user_message = Message.objects.get(conversation=conversation, role=Role.USER)
    assert user_message.async_task_id == task.pk

    # The next message carries the history to n8n.
    send(app_server, session, conversation.pk, "And a second one")
    replies = reply_to(conversation.pk, count=2)
    assert "2 earlier message" in replies[-1].thinking


def test_a_workflow_that_fails_ends_the_task_failed_with_error_details(to_n8n, user):
    task = chat_task(user, "please fail", workflow_id="chat-reply-fails")
    assert services.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    task = wait_for_status(task.pk, {"failed", "completed", "timeout"}, timeout=30)
    assert task.status == "failed"
    assert task.error_details["stage"] == "workflow"
    assert "The test workflow failed on purpose" in task.error_details["message"]
    # The workflow's words stay in error_details (the admin's); users read ours.
    assert task.status_message == TaskWords.WORKFLOW_FAILED
    assert task.n8n_execution_id
    assert task.processing_completed_at is not None
    assert not Message.objects.filter(role=Role.ASSISTANT).exists()


def test_a_wrong_webhook_secret_fails_at_once_with_n8ns_403(to_n8n, user):
    to_n8n.N8N_WEBHOOK_SECRET = "not-the-secret"
    task = chat_task(user, workflow_id="chat-reply-offline")
    assert services.claim_and_dispatch(task.pk) == "failed"
    task.refresh_from_db()
    assert task.error_details["http_status"] == 403
    assert "Authorization data is wrong" in task.error_details["body"]
    assert task.attempts == 1


def test_an_unknown_workflow_fails_at_once_with_n8ns_404(to_n8n, user):
    # No workflow (active or not) has this webhook path: n8n answers 404.
    task = chat_task(user, workflow_id="chat-reply-nowhere")
    assert services.claim_and_dispatch(task.pk) == "failed"
    task.refresh_from_db()
    assert task.error_details["http_status"] == 404
    assert "not registered" in task.error_details["body"]
    assert task.status_message == TaskWords.REFUSED
    assert "no active workflow" in task.error_details["error"]


def test_a_stopped_n8n_makes_dispatch_retry_then_fail_with_a_clear_error(to_n8n, user):
    # Nothing listens where n8n was: connection refused on every try.
    to_n8n.N8N_BASE_URL = f"http://127.0.0.1:{support.free_port()}"
    task = chat_task(user, workflow_id="chat-reply-offline")
    outcomes = []
    for _ in range(3):
        AsyncTask.objects.filter(pk=task.pk).update(next_attempt_at=timezone.now())
        outcomes.append(services.claim_and_dispatch(task.pk))
    assert outcomes == ["retry", "retry", "failed"]
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.error_details["kind"] == "connection"
    assert task.error_details["attempts"] == 3
    assert task.status_message == TaskWords.UNREACHABLE
    assert [a["outcome"] for a in task.metadata["attempts"]] == ["retryable"] * 3


def test_dispatch_from_this_process_reaches_n8n_and_the_reply_lands(to_n8n, user):
    task = chat_task(user, "straight from the dispatcher", workflow_id="chat-reply-offline")
    assert services.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    task = wait_for_status(task.pk, {"completed", "failed"}, timeout=30)
    assert task.status == "completed"
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert "straight from the dispatcher" in reply.content


def test_the_model_workflow_replies_through_the_stand_in_model(to_n8n, model, user):
    task = chat_task(user, "what is the weather", workflow_id="chat-reply")
    task.input_data["history"] = [
        {"role": "user", "content": "An earlier question about tides"},
        {"role": "assistant", "content": "An earlier answer about the moon"},
    ]
    task.save()
    assert services.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    task = wait_for_status(task.pk, {"completed", "failed", "timeout"}, timeout=60)
    assert task.status == "completed", task.error_details

    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content.startswith(model_standin.REPLY_PREFIX)
    assert "what is the weather" in reply.content
    assert "<think>" not in reply.content
    assert reply.thinking == model_standin.THINKING
    assert task.workflow_id == "chat-reply"
    assert re.fullmatch(r"\d+", task.n8n_execution_id)
    assert task.processing_started_at is not None
    assert task.processing_completed_at is not None
    assert task.processing_started_at <= task.processing_completed_at

    [request] = model.completions()
    assert request["headers"]["authorization"] == f"Bearer {MODEL_API_KEY}"
    assert request["body"]["model"] == "gpt-4o-mini"
    assert request["body"].get("stream") is True  # the AI Agent streams
    prompt = "\n".join(str(m.get("content")) for m in request["body"]["messages"])
    assert "You are a helpful assistant in a chat" in prompt
    assert "An earlier question about tides" in prompt
    assert "An earlier answer about the moon" in prompt
    assert "what is the weather" in prompt
    assert prompt.index("An earlier question about tides") < prompt.index("what is the weather")


def test_a_model_error_makes_the_model_workflow_report_failed(to_n8n, model, user):
    model.fail_with = 500
    task = chat_task(user, "this will not be answered", workflow_id="chat-reply")
    assert services.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    task = wait_for_status(task.pk, {"completed", "failed", "timeout"}, timeout=90)
    assert task.status == "failed"
    assert task.error_details["stage"] == "workflow"
    assert task.error_details["node"] == "Generate reply"
    # n8n's own words for the model's 500, not the workflow's fallback text.
    assert "not able to process your request" in task.error_details["message"]
    assert task.status_message == TaskWords.WORKFLOW_FAILED
    assert task.n8n_execution_id
    assert task.processing_completed_at is not None
    assert model.completions(), "n8n never asked the stand-in model"
    assert not Message.objects.filter(async_task=task, role=Role.ASSISTANT).exists()


def test_the_api_client_reads_the_execution_of_a_reply(to_n8n, n8n, user):
    task = chat_task(user, "read my execution", workflow_id="chat-reply-offline")
    assert services.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    task = wait_for_status(task.pk, {"completed", "failed"}, timeout=30)
    assert task.status == "completed"

    def finished():
        execution = n8n.api().get_execution(task.n8n_execution_id)
        return execution if execution.get("finished") or execution.get("stoppedAt") else None

    execution = wait_for(finished, 15, what="the execution to finish")
    assert str(execution["id"]) == task.n8n_execution_id
    assert execution["status"] == "success"
    run_data = execution["data"]["resultData"]["runData"]
    assert {"Webhook", "Accept", "Write reply", "Report completed"} <= run_data.keys()
    assert "Answer probe" not in run_data

    # Stopping it now: n8n 2.41 says it already ended (409); 2.8.4's public
    # API has no stop at all (404).
    with pytest.raises(N8nApiError) as caught:
        n8n.api().stop_execution(task.n8n_execution_id)
    assert caught.value.status == (409 if needs_node24(n8n.version) else 404)


def test_the_api_client_names_404_for_stopping_an_unknown_execution(n8n):
    with pytest.raises(N8nApiError) as caught:
        n8n.api().stop_execution("987654321")
    assert caught.value.status == 404


def test_a_reply_whose_callbacks_never_arrive_is_recovered_from_n8n(to_n8n, n8n, user):
    """The app is unreachable for n8n's callbacks (they give up after their
    retries); the worker's reconciliation reads the Result node through the API."""
    from tasks.outbound import reconcile

    to_n8n.PUBLIC_BASE_URL = f"http://127.0.0.1:{support.free_port()}"  # nobody listens
    to_n8n.N8N_API_KEY = n8n.api_key
    task = chat_task(user, "reply while the app is away", workflow_id="chat-reply-offline")
    assert services.claim_and_dispatch(task.pk) == "dispatched"
    # The workflow announces its execution id in its stream (the Accept node).
    task = wait_for(
        lambda: AsyncTask.objects.filter(pk=task.pk).exclude(n8n_execution_id="").first(),
        10,
        what="the execution id announced in the stream",
    )

    def ended():
        execution = n8n.api().get_execution(task.n8n_execution_id)
        return execution if execution.get("stoppedAt") else None

    execution = wait_for(ended, 60, what="n8n to give up calling back")
    assert execution["status"] == "error"  # the callback node failed for good
    assert reconcile.reconcile_task(task.pk) == "completed"
    task.refresh_from_db()
    assert task.status == "completed"
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert "reply while the app is away" in reply.content


def test_the_chosen_assistant_is_asked_and_its_model_sees_the_instructions(to_n8n, model, user):
    """A conversation on the model workflow's assistant, with instructions:
    the dispatch goes to that workflow, `input.instructions` reaches the
    model's system message, and the reply names who wrote it."""
    from chat import services as chat_services
    from chat.models import Assistant

    chosen = Assistant.objects.create(name="Model", workflow_id="chat-reply", streams=True)
    Assistant.objects.create(name="Offline", workflow_id="chat-reply-offline", is_default=True)
    conversation = Conversation.objects.create(
        user=user, assistant=chosen, instructions="Always answer like a pirate."
    )
    message = chat_services.send_message(user, conversation, "what is the weather")
    task = message.async_task
    assert task.workflow_id == "chat-reply"
    # Dispatched after the commit, as a send from the page is.
    task = wait_for_status(task.pk, {"completed", "failed", "timeout"}, timeout=60)
    assert task.status == "completed", task.error_details

    [request] = model.completions()
    system = [m for m in request["body"]["messages"] if m.get("role") == "system"]
    assert system and "Always answer like a pirate." in str(system[0].get("content"))
    assert "You are a helpful assistant in a chat" in str(system[0].get("content"))
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.metadata["assistant"] == {"id": chosen.pk, "name": "Model"}
