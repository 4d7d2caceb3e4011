"""The shipped workflows stream through a real n8n (each version of N8N_VERSIONS,
the session's n8n of tests/e2e/n8n_support.py), and a long reply is stopped.

chat-reply.json's AI Agent asks the stand-in model with `"stream": true` and
gets OpenAI's server-sent events a piece at a time; chat-reply-offline.json
writes its reply a word at a time from a loop of *Respond to Webhook* nodes.
Dispatches go from this test process (so its stream reader is the one
watched); callbacks and Stop go to a real Daphne server of the project whose
N8N_API_KEY lets it ask n8n to stop an execution.
"""

import pytest
from django.contrib.auth import get_user_model

from chat.models import Message, Role
from tasks.models import AsyncTask, TaskWords
from tasks.outbound import dispatch, streaming
from tests.e2e import model_standin
from tests.e2e.n8n_support import SECRET, needs_node24, project_server
from tests.e2e.test_n8n_e2e import _form_post, sign_up
from tests.task_support import chat_task, wait_for, wait_for_status

pytestmark = [pytest.mark.n8n, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stop_server(n8n, django_db_setup, django_db_blocker):
    """The project on Daphne, able to stop n8n's executions (N8N_API_KEY)."""
    with django_db_blocker.unblock():
        server = project_server(n8n, N8N_API_KEY=n8n.api_key, N8N_CHAT_WORKFLOW="chat-reply")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def to_n8n(settings, n8n, stop_server):
    settings.N8N_BASE_URL = n8n.base_url
    settings.N8N_WEBHOOK_SECRET = SECRET
    settings.PUBLIC_BASE_URL = stop_server.base_url
    settings.TASK_STREAM_READER = True
    yield settings
    streaming.close_all()


def watch_partials(task_id, timeout):
    """Every distinct partial text seen until the task ends; and the ended task."""
    seen = []

    def ended():
        task = AsyncTask.objects.get(pk=task_id)
        if task.partial_text and (not seen or seen[-1] != task.partial_text):
            seen.append(task.partial_text)
        return task if task.is_terminal else None

    task = wait_for(ended, timeout, interval=0.02, what=f"task {task_id} to end")
    return seen, task


def asked(model, extra=0):
    """What the stand-in model streamed back (it echoes the prompt it was given)."""
    [request] = model.completions()
    assert request["body"]["stream"] is True  # the AI Agent streams
    said = model_standin.last_user_text(request["body"]["messages"])
    return "".join(model_standin.reply_pieces(said, extra)), model_standin.reply_text(said, extra)


def assert_grows(seen, whole):
    """Several distinct partial texts, each the one before it and more, all of the stream."""
    assert len(seen) >= 3, seen
    for before, after in zip(seen, seen[1:], strict=False):
        assert after.startswith(before) and len(after) > len(before)
    assert all(whole.startswith(partial) for partial in seen), (seen, whole)


def test_the_model_workflow_streams_the_models_reply_as_it_is_written(to_n8n, model, user):
    text = "tell me about streams of text"
    task = chat_task(user, text, workflow_id="chat-reply")
    assert dispatch.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    seen, task = watch_partials(task.pk, timeout=60)
    assert task.status == "completed", task.error_details

    streamed, whole = asked(model)
    assert text in whole
    assert_grows(seen, streamed)
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content == whole
    assert reply.thinking == model_standin.THINKING
    assert task.partial_text == ""  # the reply is the message now
    assert model.streams_finished == 1
    # n8n ends its answer when the execution ends, just after the callback.
    wait_for(lambda: streaming.open_count() == 0, timeout=10, what="the stream to end")


def test_the_offline_workflow_streams_its_reply_a_word_at_a_time(to_n8n, n8n, user):
    text = "one two three four five six seven eight nine ten eleven twelve"
    task = chat_task(user, text, workflow_id="chat-reply-offline")
    assert dispatch.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    seen, task = watch_partials(task.pk, timeout=60)
    assert task.status == "completed", task.error_details

    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert text in reply.content
    assert_grows(seen, reply.content)

    def finished():
        execution = n8n.api().get_execution(task.n8n_execution_id)
        return execution if execution.get("stoppedAt") else None

    execution = wait_for(finished, 15, what="the execution to finish")
    assert execution["status"] == "success"
    run_data = execution["data"]["resultData"]["runData"]
    # One Respond to Webhook run per word of the reply.
    assert len(run_data["Write piece"]) == len(reply.content.split())


def test_stopping_a_long_reply_keeps_its_text_and_stops_n8n(to_n8n, n8n, model, stop_server):
    model.extra_pieces = 400  # about a minute of words, unless stopped
    model.piece_seconds = 0.1
    session = sign_up(stop_server, "stopper")
    user = get_user_model().objects.get(username="stopper")
    task = chat_task(user, "write for a long time", workflow_id="chat-reply")
    assert dispatch.claim_and_dispatch(task.pk) in ("dispatched", "ignored")
    wait_for(
        lambda: AsyncTask.objects.get(pk=task.pk).partial_text.count("word") >= 5,
        timeout=60,
        what="some words of the long reply",
    )
    task.refresh_from_db()
    assert task.n8n_execution_id

    session.get(f"{stop_server.base_url}/chat/")
    response = _form_post(session, f"{stop_server.base_url}/tasks/{task.pk}/cancel/", {})
    assert response.status_code in (302, 303), response.text[:300]
    task = wait_for_status(task.pk, "cancelled", timeout=10)
    assert task.status_message == TaskWords.stopped_by("stopper")

    # What was written is the reply, marked stopped; nothing after it lands.
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.metadata == {"stopped": True}
    _streamed, whole = asked(model, 400)
    assert reply.content and whole.startswith(reply.content)
    assert reply.thinking == model_standin.THINKING

    # Our reading of the stream ends (n8n's error line, or the check of open streams).
    wait_for(lambda: streaming.open_count() == 0, timeout=10, what="the stream to close")

    answer = wait_for(
        lambda: AsyncTask.objects.get(pk=task.pk).metadata.get("n8n_stop"),
        timeout=15,
        what="n8n's answer to the stop",
    )
    assert answer["execution_id"] == task.n8n_execution_id
    if needs_node24(n8n.version):
        assert (answer["outcome"], answer["http_status"]) == ("stopped", 200)
        assert answer["n8n_status"] == "canceled"

        def stopped():
            execution = n8n.api().get_execution(task.n8n_execution_id, include_data=False)
            return execution if execution.get("stoppedAt") else None

        assert wait_for(stopped, 15, what="n8n to stop")["status"] == "canceled"
        # n8n aborted its call to the model: the model's stream was cut short.
        wait_for(lambda: model.streams_cut == 1, timeout=15, what="the model call to be cut")
        assert model.streams_finished == 0
    else:  # 2.8.4's public API has no stop: recorded, and the cancel holds
        assert answer["http_status"] == 404
        assert answer["outcome"].startswith("not found")
    assert AsyncTask.objects.get(pk=task.pk).status == "cancelled"
    assert Message.objects.filter(async_task=task, role=Role.ASSISTANT).count() == 1


def test_a_message_sent_at_the_page_streams_through_the_servers_own_reader(
    to_n8n, model, stop_server
):
    """The server dispatches and reads n8n's stream itself."""
    model.extra_pieces = 20
    session = sign_up(stop_server, "watcher")
    response = _form_post(
        session, f"{stop_server.base_url}/chat/new/", {"title": "s", "content": "grow"}
    )
    assert response.status_code in (302, 303), response.text[:300]
    message = wait_for(
        lambda: Message.objects.filter(role=Role.USER, content="grow").first(),
        10,
        what="the user message",
    )
    seen, task = watch_partials(message.async_task_id, timeout=60)
    assert task.status == "completed", task.error_details
    streamed, whole = asked(model, 20)
    assert_grows(seen, streamed)
    assert Message.objects.get(async_task=task, role=Role.ASSISTANT).content == whole
