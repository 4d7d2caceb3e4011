"""Stop: `POST /tasks/{id}/cancel/` for the owner, through the door."""

import pytest

from tasks.models import TaskStatus, TaskWords
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def cancel(client, task, **extra):
    return client.post(f"/tasks/{task.pk}/cancel/", **extra)


def test_the_owner_stops_an_unfinished_task(user_client, user):
    task = chat_task(user)
    response = cancel(user_client, task, **JSON)
    assert response.status_code == 200
    assert response.json()["task"]["status"] == "cancelled"
    task.refresh_from_db()
    assert task.status == "cancelled"
    assert task.status_message == TaskWords.stopped_by("alice")
    assert task.events.get(status="cancelled").source == "user"


def test_without_json_the_answer_redirects_back(user_client, user):
    task = chat_task(user)
    response = cancel(user_client, task, HTTP_REFERER="http://testserver/chat/1/")
    assert response.status_code == 302
    assert response["Location"] == "http://testserver/chat/1/"
    evil = cancel(user_client, chat_task(user), HTTP_REFERER="https://evil.example/")
    assert evil["Location"] == "/"


def test_another_user_gets_404_and_nothing_changes(other_client, user):
    task = chat_task(user)
    assert cancel(other_client, task, **JSON).status_code == 404
    task.refresh_from_db()
    assert task.status == "pending"


def test_an_anonymous_visitor_is_sent_to_log_in(client, user):
    task = chat_task(user)
    response = cancel(client, task)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_finished_task_answers_409(user_client, client, user):
    task = chat_task(user)
    post_callback(client, task.pk, {"status": "completed", "output": {"content": "hi"}})
    response = cancel(user_client, task, **JSON)
    assert response.status_code == 409
    assert response.json()["status"] == "completed"


def test_a_late_callback_for_a_stopped_task_answers_409(user_client, client, user):
    task = chat_task(user)
    cancel(user_client, task, **JSON)
    response = post_callback(client, task.pk, {"status": "completed", "output": "late"})
    assert response.status_code == 409
    assert response.json()["status"] == "cancelled"
    assert not task.messages.filter(role="assistant").exists()


def test_get_is_not_allowed(user_client, user):
    assert user_client.get(f"/tasks/{chat_task(user).pk}/cancel/").status_code == 405


def test_a_stopped_reply_reads_stopped_and_offers_retry(user_client, user):
    from chat import services as chat_services
    from tests import factories

    conversation = factories.conversation(user)
    message = chat_services.send_message(user, conversation, "hello")
    cancel(user_client, message.async_task, **JSON)
    page = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert TaskWords.LABELS[TaskStatus.CANCELLED] in page
    assert f"/chat/{conversation.pk}/messages/{message.pk}/retry/" in page
    response = user_client.post(f"/chat/{conversation.pk}/messages/{message.pk}/retry/")
    assert response.status_code in (302, 303)
    message.refresh_from_db()
    assert message.async_task.status == "pending"


def test_a_reply_stopped_with_its_text_reads_stopped_once_and_offers_no_retry(
    user_client, client, user, monkeypatch, django_capture_on_commit_callbacks
):
    from chat import services as chat_services
    from live import publish as live
    from tests import factories

    sent = []
    monkeypatch.setattr(live, "send", lambda sends, on_sent=None: sent.extend(sends))
    conversation = factories.conversation(user)
    message = chat_services.send_message(user, conversation, "hello")
    task = message.async_task
    post_callback(client, task.pk, {"status": "processing", "delta": "Half a rep"})
    with django_capture_on_commit_callbacks(execute=True):
        cancel(user_client, task, **JSON)
    # The live frame carries no status line (the script removes the old one) …
    frames = [m["frame"] for _g, m in sent if m["frame"]["type"] == "task.status"]
    assert frames and all(f["html"] == "" for f in frames if f["task"]["status"] == "cancelled")
    # … and the page shows the kept text marked "stopped", once, with no Retry.
    page = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert page.count('class="message__stopped"') == 1
    assert "Half a rep" in page
    assert f"/messages/{message.pk}/retry/" not in page
    assert f'id="task-{task.pk}"' not in page
