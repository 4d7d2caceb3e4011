"""How a task reads: one renderer for the page and the live frames, plain words only."""

import re

import pytest

from chat import services
from chat.models import Message
from chat.replies import taskstatus
from tasks import frames
from tasks.models import AsyncTask, TaskStatus, TaskWords
from tests import factories

pytestmark = pytest.mark.django_db

COULD_NOT_REPLY = TaskWords.ENDED[TaskStatus.FAILED]
NOT_IN_TIME = TaskWords.ENDED[TaskStatus.TIMEOUT]


def failed(details, status=TaskStatus.FAILED, status_message=""):
    return AsyncTask(status=status, error_details=details, status_message=status_message)


@pytest.mark.parametrize(
    "details",
    [
        {"error": "could not connect to n8n at http://127.0.0.1:5678/webhook/chat-reply: refused"},
        {"message": "HTTPConnectionPool(host='n8n', port=5678): Max retries exceeded"},
        {"message": "ConnectionRefusedError [Errno 111] Connection refused"},
        {"message": "Error: ECONNREFUSED"},
        {"message": "Traceback (most recent call last): File x"},
        {"message": "see https://docs.n8n.io/ for help"},
        {"body": "{}", "error": '{"code": 404, "message": "not registered"}'},
        {"message": "word " * 60},
        {"message": "Incorrect API key sk-proj-7f3A9 provided"},
        {"message": "The provider at llm.internal did not answer"},
        {"message": "Could not reach 10.0.3.7 on port 8443"},
    ],
)
def test_technical_error_texts_are_replaced_by_the_generic_sentence(details):
    assert taskstatus.error_text(failed(details)) == COULD_NOT_REPLY


def test_a_plain_error_message_is_shown():
    task = failed({"message": "The model is overloaded, try again later"})
    assert taskstatus.error_text(task) == (
        f"{COULD_NOT_REPLY} The model is overloaded, try again later."
    )


def test_a_technical_status_message_is_not_shown_either():
    task = failed(None, status_message="The workflow failed: ValueError: bad input")
    assert taskstatus.error_text(task) == COULD_NOT_REPLY


def test_a_timeout_reads_as_such():
    words = TaskWords.timed_out(120)
    task = failed({"stage": "timeout", "message": words}, status=TaskStatus.TIMEOUT)
    assert taskstatus.error_text(task) == f"{NOT_IN_TIME} {words}"


def test_unfinished_tasks_have_no_error_words():
    assert taskstatus.error_text(AsyncTask(status=TaskStatus.PROCESSING)) == ""


def test_the_label_names_the_current_step():
    task = AsyncTask(status=TaskStatus.PROCESSING, current_step="calling_model")
    # The step id made readable, never the raw id.
    assert taskstatus.status_label(task) == "Calling model"
    task.status_message = "Asking the model…"  # the workflow's own words come first
    assert taskstatus.status_label(task) == "Asking the model…"
    dispatched = AsyncTask(status=TaskStatus.PROCESSING, current_step="dispatched")
    assert taskstatus.status_label(dispatched) == TaskWords.NO_ANSWER_YET
    timeout = AsyncTask(status=TaskStatus.TIMEOUT)
    assert taskstatus.status_label(timeout) == TaskWords.LABELS[TaskStatus.TIMEOUT]


def sent_and_failed(user, details):
    conversation = factories.conversation(user)
    message = services.send_message(user, conversation, "question")
    AsyncTask.objects.filter(pk=message.async_task_id).update(
        status=TaskStatus.FAILED, error_details=details, version=5
    )
    return conversation, Message.objects.select_related("async_task").get(pk=message.pk)


def test_a_status_frame_carries_the_same_fragment_as_the_page(user_client, user):
    conversation, message = sent_and_failed(user, {"message": "model overloaded"})
    frame = frames.task_frame(message.async_task)
    assert frame["type"] == "task.status"
    assert frame["task"]["status"] == "failed"
    html = frame["html"]
    assert f'id="task-{message.async_task_id}"' in html
    assert f"{COULD_NOT_REPLY} model overloaded." in html
    retry = f'action="/chat/{conversation.pk}/messages/{message.pk}/retry/"'
    assert retry in html
    page = user_client.get(conversation.get_absolute_url()).content.decode()
    start = page.index(
        f'<div class="task-status task-status--failed" id="task-{message.async_task_id}"'
    )
    on_page = page[start : page.index("</div>", start) + len("</div>")]

    def without_token(text):
        return re.sub(r'<input type="hidden" name="csrfmiddlewaretoken"[^>]*>', "", text)

    assert without_token(on_page) == without_token(html).strip()


def test_the_page_never_shows_a_technical_error(user_client, user):
    url = "http://127.0.0.1:5678/webhook/chat-reply"
    conversation, _ = sent_and_failed(user, {"error": f"could not connect to n8n at {url}"})
    page = user_client.get(conversation.get_absolute_url()).content.decode()
    assert COULD_NOT_REPLY in page
    assert url not in page
    assert "n8n" not in page


def test_a_type_without_status_html_sends_frames_without_html(user):
    task = factories.task(user, task_type="something-else")
    assert "html" not in frames.task_frame(task)


def test_a_failing_status_renderer_still_sends_the_frame(user):
    task = factories.task(user, task_type="chat")

    def broken(task):
        raise RuntimeError("template bug")

    import dataclasses

    from tasks import registry

    chat = registry.get("chat")
    registry.register(dataclasses.replace(chat, status_html=broken))
    try:
        frame = frames.task_frame(task)
    finally:
        registry.register(chat)
    assert frame["task"]["id"] == task.pk
    assert "html" not in frame
