"""A reply's "Details": the steps of its task with their times and durations."""

import re

import pytest

from chat import services as chat_services
from n8n.webhooks import DispatchResult, Outcome
from tasks.services import record_dispatch
from tests import factories
from tests.task_support import post_callback

pytestmark = pytest.mark.django_db


def replied(client, user, monkeypatch):
    from tasks.outbound import dispatch

    monkeypatch.setattr(dispatch, "schedule_dispatch", lambda task_id: None)
    conversation = factories.conversation(user)
    message = chat_services.send_message(user, conversation, "hello")
    task = message.async_task
    record_dispatch(task.pk, DispatchResult(Outcome.ACCEPTED, 200, execution_id="9"))
    post_callback(client, task.pk, {"status": "processing", "current_step": "searching_web"})
    post_callback(client, task.pk, {"status": "completed", "output": {"content": "done"}})
    return conversation


def test_the_page_shows_a_replys_steps_with_durations(user_client, client, user, monkeypatch):
    conversation = replied(client, user, monkeypatch)
    html = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    details = re.search(r'<details class="message__details">(.*?)</details>', html, re.S)
    assert details, "the reply has a Details disclosure"
    labels = re.findall(r'class="task-steps__label">([^<]*)<', details.group(1))
    assert labels == ["Pending", "Sent to the assistant", "Searching web", "Completed"]
    assert len(re.findall(r'class="task-steps__duration">\d+\.\d s<', details.group(1))) == 3
    assert re.search(r'<p class="task-steps__total">Total \d+\.\d s</p>', details.group(1))


def test_another_user_never_sees_the_steps(other_client, client, user, monkeypatch):
    conversation = replied(client, user, monkeypatch)
    assert other_client.get(f"/chat/{conversation.pk}/").status_code == 404


def test_the_steps_cost_one_query_for_the_whole_page(
    user_client, client, user, monkeypatch, django_assert_max_num_queries
):
    conversation = replied(client, user, monkeypatch)
    for _ in range(3):
        message = chat_services.send_message(user, conversation, "again")
        post_callback(client, message.async_task_id, {"status": "completed", "output": "ok"})
    with django_assert_max_num_queries(12):
        response = user_client.get(f"/chat/{conversation.pk}/")
    assert response.content.decode().count('class="message__details"') == 4
