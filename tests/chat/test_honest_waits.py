"""Honest waits, plain words: each status says what is true, with the time
waited; no "n8n", "task" nor raw step ids in what people read; a reply's
Details give seconds per step and a total. The words live once, in
tasks.models.TaskWords."""

import html as htmllib
import inspect
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from chat import services
from tasks.models import AsyncTask, TaskStatus, TaskWords
from tests import factories

pytestmark = pytest.mark.django_db

INTERNAL = re.compile(r"(?i)\bn8n\b|\btasks?\b|_")


def every_word():
    """Every text TaskWords gives people, its functions called with samples."""
    samples = {
        "retrying": (True, 2, 5),
        "execution_ended": ("error",),
        "timed_out": (120,),
        "stopped_by": ("ann",),
        "marked_failed_by": ("ann",),
        "in_the_admin": ("ann",),
        "readable_step": ("searching_web",),
        "step_label": (TaskStatus.PROCESSING, "calling_model"),
        "waiting": (TaskStatus.PROCESSING, "dispatched"),
        "label": (TaskStatus.PROCESSING, "searching_web"),
        "seconds": (125,),
    }
    for name, value in vars(TaskWords).items():
        if name.startswith("_"):
            continue
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, dict):
            for key, words in value.items():
                yield f"{name}[{key}]", words
        elif isinstance(value, staticmethod) or inspect.isfunction(value):
            yield name, getattr(TaskWords, name)(*samples[name])


def test_no_word_people_read_names_n8n_a_task_or_a_raw_step_id():
    seen = dict(every_word())
    assert len(seen) > 20
    bad = {name: words for name, words in seen.items() if INTERNAL.search(words)}
    assert bad == {}


def test_a_step_label_is_the_workflows_message_or_its_id_made_readable():
    assert TaskWords.readable_step("searching_web") == "Searching web"
    assert TaskWords.step_label(TaskStatus.PROCESSING, "searching_web") == "Searching web"
    assert TaskWords.step_label(TaskStatus.PROCESSING, "x", "Reading the files…") == (
        "Reading the files…"
    )
    assert TaskWords.step_label(TaskStatus.PROCESSING, "dispatched") == TaskWords.SENT


def test_a_retry_says_whether_the_service_answered_and_which_attempt_of_how_many():
    assert TaskWords.retrying(True, 2, 5) == (
        "The assistant's service answered with an error; trying again (2 of 5)…"
    )
    assert TaskWords.retrying(False, 3, 4) == (
        "The assistant's service could not be reached; trying again (3 of 4)…"
    )


def test_without_a_cap_the_attempts_are_those_the_time_allows(settings, user):
    from tasks.outbound.dispatch import planned_attempts

    settings.TASK_DISPATCH_MAX_ATTEMPTS = 0
    settings.TASK_DISPATCH_BACKOFF_SECONDS = 10
    settings.TASK_DISPATCH_BACKOFF_MAX_SECONDS = 10
    settings.TASK_TIMEOUT_SECONDS = 120
    task = factories.task(user)
    task.attempts = 1
    now = timezone.now()
    # 90 s until the last moment (a 30 s reserve), a try about every 7.5 s.
    assert 10 <= planned_attempts(task, now, now + timedelta(seconds=7.5)) <= 14
    settings.TASK_DISPATCH_MAX_ATTEMPTS = 5
    assert planned_attempts(task, now, now) == 5


def page_of(client, conversation):
    response = client.get(f"/chat/{conversation.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def status_line(html):
    start = html.index('<div class="task-status')
    text = re.sub(r"<[^>]+>", "", html[start : html.index("</div>", start)])
    return htmllib.unescape(re.sub(r"\s+", " ", text))


def test_a_workflow_that_never_calls_back_reads_no_answer_yet_with_the_time(user_client, user):
    conversation = factories.conversation(user)
    message = services.send_message(user, conversation, "question")
    AsyncTask.objects.filter(pk=message.async_task_id).update(
        status=TaskStatus.PROCESSING,
        current_step="dispatched",
        processing_started_at=timezone.now() - timedelta(seconds=40),
    )
    html = page_of(user_client, conversation)
    assert status_line(html).strip() == "No answer yet from the assistant (40 s)…"
    assert "n8n" not in html and "dispatched" not in html


def test_a_retry_reads_what_is_true_with_the_time_waited(user_client, user):
    conversation = factories.conversation(user)
    message = services.send_message(user, conversation, "question")
    AsyncTask.objects.filter(pk=message.async_task_id).update(
        status_message=TaskWords.retrying(True, 2, 5),
        created_at=timezone.now() - timedelta(seconds=12),
    )
    line = status_line(page_of(user_client, conversation)).strip()
    assert line == "The assistant's service answered with an error; trying again (2 of 5)… · 12 s"


def test_a_workflow_step_reads_as_words_and_technical_messages_never_show(user_client, user):
    conversation = factories.conversation(user)
    message = services.send_message(user, conversation, "question")
    AsyncTask.objects.filter(pk=message.async_task_id).update(
        status=TaskStatus.PROCESSING,
        current_step="searching_web",
        status_message="n8n node HTTP Request failed: ECONNRESET",
        processing_started_at=timezone.now(),
    )
    line = status_line(page_of(user_client, conversation)).strip()
    assert line == "Searching web · 0 s"
