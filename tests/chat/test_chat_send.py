"""Sending a message: one user message + one pending chat task, or nothing at all."""

import threading

import pytest
from django.db import connection

from chat import services
from chat.models import Conversation, Message, Role
from tasks.models import AsyncTask, TaskStatus
from tests import factories
from tests.contract_names import MESSAGE_FRAME_KEYS

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def conversation(user):
    return factories.conversation(user, title="Trip planning")


def url(conversation):
    return f"/chat/{conversation.pk}/messages/"


def test_send_redirects_back_to_the_page(user_client, conversation):
    response = user_client.post(url(conversation), {"content": "Hello"})
    assert response.status_code == 303
    message = Message.objects.get()
    assert response["Location"] == f"/chat/{conversation.pk}/#message-{message.pk}"
    page = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert f'id="message-{message.pk}"' in page


def test_sent_message_creates_its_pending_task_with_the_contract_input(
    user_client, user, conversation, settings
):
    settings.N8N_CHAT_WORKFLOW = "chat-reply-test"
    earlier = [
        factories.message(conversation, "first question", role=Role.USER),
        factories.message(conversation, "first answer", role=Role.ASSISTANT),
    ]
    user_client.post(url(conversation), {"content": "  What next?\n"})
    message = Message.objects.exclude(pk__in=[m.pk for m in earlier]).get()
    assert message.role == Role.USER
    assert message.content == "What next?"  # surrounding whitespace is not stored
    task = message.async_task
    assert task is not None
    assert task.task_type == "chat"
    assert task.workflow_id == "chat-reply-test"
    assert task.status == TaskStatus.PENDING
    assert task.created_by_id == user.pk
    assert task.input_data == {
        "conversation_id": conversation.pk,
        "session_id": str(conversation.pk),
        "message_id": message.pk,
        "message": "What next?",
        "history": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
        ],
        "attachments": [],
        # No assistant exists: N8N_CHAT_WORKFLOW answers, as before assistants.
        "assistant": None,
        "instructions": "",
    }


def test_history_is_bounded_and_oldest_first(user, conversation, settings):
    settings.CHAT_HISTORY_LIMIT = 3
    for i in range(6):
        factories.message(conversation, f"m{i}", role=Role.USER if i % 2 == 0 else Role.ASSISTANT)
    message = services.send_message(user, conversation, "now")
    history = message.async_task.input_data["history"]
    assert [item["content"] for item in history] == ["m3", "m4", "m5"]


def test_send_as_json_answers_201_with_message_task_and_html(user_client, conversation):
    response = user_client.post(url(conversation), {"content": "Hi **there**"}, **JSON)
    assert response.status_code == 201
    body = response.json()
    message = Message.objects.get()
    assert set(body["message"]) == MESSAGE_FRAME_KEYS
    assert body["message"]["id"] == message.pk
    assert body["message"]["async_task_id"] == message.async_task_id
    assert body["task"]["id"] == message.async_task_id
    assert body["task"]["status"] == "pending"
    assert body["task"]["version"] == 1
    assert f'id="message-{message.pk}"' in body["html"]
    assert f'id="task-{message.async_task_id}"' in body["html"]
    assert body["conversation"] == {"id": conversation.pk, "title": "Trip planning"}


def test_send_as_json_tells_the_title_taken_from_the_first_message(user_client, user):
    untitled = factories.conversation(user, title="")
    response = user_client.post(url(untitled), {"content": "Plan a trip to Lisbon"}, **JSON)
    assert response.json()["conversation"] == {"id": untitled.pk, "title": "Plan a trip to Lisbon"}


def test_send_moves_the_conversation_up(user_client, user, conversation):
    other = factories.conversation(user, title="Other")
    assert list(Conversation.objects.for_user(user))[0] == other
    user_client.post(url(conversation), {"content": "bump"})
    assert list(Conversation.objects.for_user(user))[0] == conversation


@pytest.mark.parametrize("content", ["", "   ", "\n\t \n"])
def test_empty_message_is_refused_and_nothing_stored(user_client, conversation, content):
    response = user_client.post(url(conversation), {"content": content})
    assert response.status_code == 400
    assert "Write a message before sending." in response.content.decode()
    assert not Message.objects.exists() and not AsyncTask.objects.exists()
    response = user_client.post(url(conversation), {"content": content}, **JSON)
    assert response.status_code == 400
    assert response.json() == {"error": "Write a message before sending."}
    assert not Message.objects.exists() and not AsyncTask.objects.exists()


def test_over_long_message_is_refused_and_nothing_stored(user_client, conversation, settings):
    settings.CHAT_MESSAGE_MAX_LENGTH = 100
    text = "x" * 101
    response = user_client.post(url(conversation), {"content": text})
    assert response.status_code == 400
    html = response.content.decode()
    assert "the limit is 100" in html
    assert text in html  # the composer keeps what the user wrote
    response = user_client.post(url(conversation), {"content": text}, **JSON)
    assert response.status_code == 400
    assert "the limit is 100" in response.json()["error"]
    assert not Message.objects.exists() and not AsyncTask.objects.exists()
    assert user_client.post(url(conversation), {"content": "x" * 100}).status_code == 303


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.PROCESSING])
def test_send_is_refused_while_a_reply_is_unfinished(user_client, user, conversation, status):
    first = services.send_message(user, conversation, "first")
    AsyncTask.objects.filter(pk=first.async_task_id).update(status=status)
    response = user_client.post(url(conversation), {"content": "second"}, **JSON)
    assert response.status_code == 409
    assert "Wait for the assistant's reply" in response.json()["error"]
    response = user_client.post(url(conversation), {"content": "second"})
    assert response.status_code == 409
    assert "Wait for the assistant" in response.content.decode()
    assert list(Message.objects.values_list("content", flat=True)) == ["first"]
    assert AsyncTask.objects.count() == 1


@pytest.mark.parametrize("status", [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMEOUT])
def test_send_is_allowed_once_the_reply_is_finished(user_client, user, conversation, status):
    first = services.send_message(user, conversation, "first")
    AsyncTask.objects.filter(pk=first.async_task_id).update(status=status)
    response = user_client.post(url(conversation), {"content": "second"}, **JSON)
    assert response.status_code == 201


def test_the_composer_shows_why_it_is_disabled(user_client, user, conversation):
    services.send_message(user, conversation, "first")
    html = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert 'data-busy="1"' in html
    assert "Waiting for the assistant's reply…" in html
    textarea = html[html.index('<textarea name="content"') :]
    assert " disabled>" in textarea[: textarea.index(">") + 1]


def test_an_unfinished_task_of_another_conversation_does_not_block(user, conversation):
    other = factories.conversation(user, title="Other")
    services.send_message(user, other, "elsewhere")
    assert services.send_message(user, conversation, "here").pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_store_exactly_one(make_user, monkeypatch):
    # Real threads, each with its own database connection, racing for one
    # conversation: the conversation lock (IMMEDIATE transactions on SQLite)
    # lets exactly one through.
    import tasks.outbound.dispatch

    dispatched = []
    monkeypatch.setattr(tasks.outbound.dispatch, "schedule_dispatch", dispatched.append)
    owner = make_user("racer")
    conversation = factories.conversation(owner)
    barrier = threading.Barrier(6)
    outcomes = []

    def send(i):
        try:
            barrier.wait(timeout=10)
            services.send_message(owner, conversation, f"message {i}")
            outcomes.append("sent")
        except services.SendRefused as refused:
            outcomes.append(refused.code)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["busy"] * 5 + ["sent"]
    assert Message.objects.filter(conversation=conversation).count() == 1
    assert AsyncTask.objects.count() == 1
    assert dispatched == [AsyncTask.objects.get().pk]  # handed to the tasks app after commit


def test_a_refused_send_publishes_and_dispatches_nothing(
    user, conversation, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(services.SendRefused):
            services.send_message(user, conversation, "   ")
    assert callbacks == []


def test_a_send_schedules_dispatch_after_commit(
    user, conversation, monkeypatch, django_capture_on_commit_callbacks
):
    import tasks.outbound.dispatch

    dispatched = []
    monkeypatch.setattr(tasks.outbound.dispatch, "schedule_dispatch", dispatched.append)
    with django_capture_on_commit_callbacks(execute=True):
        message = services.send_message(user, conversation, "go")
        assert dispatched == []  # not before the commit
    assert dispatched == [message.async_task_id]


# --- Retry -----------------------------------------------------------------------


def failed_message(user, conversation, status=TaskStatus.FAILED, **task_fields):
    message = services.send_message(user, conversation, "please answer")
    AsyncTask.objects.filter(pk=message.async_task_id).update(status=status, **task_fields)
    message.refresh_from_db()
    return message


def retry_url(message):
    return f"/chat/{message.conversation_id}/messages/{message.pk}/retry/"


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.TIMEOUT])
def test_retry_creates_a_new_task_for_the_same_message(user_client, user, conversation, status):
    message = failed_message(user, conversation, status=status)
    old_task_id = message.async_task_id
    response = user_client.post(retry_url(message))
    assert response.status_code == 303
    message.refresh_from_db()
    assert message.async_task_id != old_task_id
    new_task = message.async_task
    assert new_task.status == TaskStatus.PENDING
    assert new_task.created_by_id == user.pk
    assert new_task.input_data["message_id"] == message.pk
    assert new_task.input_data["message"] == "please answer"
    assert AsyncTask.objects.get(pk=old_task_id).status == status  # kept for the record
    assert Message.objects.count() == 1


def test_retry_input_carries_the_current_history(user, conversation):
    factories.message(conversation, "before", role=Role.USER)
    factories.message(conversation, "reply", role=Role.ASSISTANT)
    message = failed_message(user, conversation)
    message = services.retry(user, message)
    assert message.async_task.input_data["history"] == [
        {"role": "user", "content": "before"},
        {"role": "assistant", "content": "reply"},
    ]


def test_retry_as_json_answers_201(user_client, user, conversation):
    message = failed_message(user, conversation)
    response = user_client.post(retry_url(message), **JSON)
    assert response.status_code == 201
    message.refresh_from_db()
    assert response.json()["task"]["id"] == message.async_task_id


@pytest.mark.parametrize(
    "status", [TaskStatus.PENDING, TaskStatus.PROCESSING, TaskStatus.COMPLETED]
)
def test_retry_is_refused_unless_the_task_failed_or_timed_out(
    user_client, user, conversation, status
):
    message = failed_message(user, conversation, status=status)
    response = user_client.post(retry_url(message), **JSON)
    assert response.status_code == 409
    assert AsyncTask.objects.count() == 1
    assert Message.objects.get().async_task_id == message.async_task_id


def test_retry_is_refused_while_another_task_is_unfinished(user_client, user, conversation):
    message = failed_message(user, conversation)
    later = services.send_message(user, conversation, "something else")
    response = user_client.post(retry_url(message))
    assert response.status_code == 409
    assert "Wait for the assistant" in response.content.decode()
    message.refresh_from_db()
    assert AsyncTask.objects.count() == 2
    assert later.async_task.status == TaskStatus.PENDING


def test_retry_of_an_assistant_message_is_a_404(user_client, user, conversation):
    reply = factories.message(conversation, "an answer", role=Role.ASSISTANT)
    assert user_client.post(retry_url(reply)).status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("own_assistant", [True, False], ids=["own-assistant", "default"])
def test_a_send_is_a_bounded_number_of_statements(make_user, monkeypatch, own_assistant):
    from django.test.utils import CaptureQueriesContext

    import tasks.outbound.dispatch
    from chat.models import Assistant

    monkeypatch.setattr(tasks.outbound.dispatch, "schedule_dispatch", lambda task_id: None)
    owner = make_user("counted")
    helper = Assistant.objects.create(name="Helper", workflow_id="helper", is_default=True)
    conversation = factories.conversation(
        owner, title="Counted", assistant=helper if own_assistant else None
    )
    first = services.send_message(owner, conversation, "hello")
    AsyncTask.objects.filter(pk=first.async_task_id).update(status="completed")
    with CaptureQueriesContext(connection) as queries:
        second = services.send_message(owner, conversation, "and again")
    statements = [q["sql"] for q in queries.captured_queries]
    # BEGIN; the conversation's lock with its assistant; one read of busy,
    # parent, whether the parent has children, the owner's default
    # instructions and the default assistant; the branch for n8n's history;
    # the message; its task, the task's first event, the message's task and
    # the conversation's leaf (one statement on PostgreSQL, four on SQLite);
    # COMMIT. The new message follows a leaf: no versions to count for its frame.
    assert len(statements) == (7 if connection.vendor == "postgresql" else 10), statements
    assert not any("RECURSIVE stats" in sql for sql in statements)
    assert second.parent_id == first.pk
    assert AsyncTask.objects.get(pk=second.async_task_id).workflow_id == "helper"


def test_a_send_asks_whether_a_reply_is_unfinished_by_the_conversation_id():
    # Asked through the outer conversation row (a correlated EXISTS),
    # PostgreSQL walked every message that has a task: 13 ms per send with
    # 4,000 of them in `make bench`, growing with the table. By the id (a
    # parameter), it reads the conversation's messages by their index.
    from django.db import connection

    from chat.services import _send_facts_query

    for with_parent in (False, True):
        sql = _send_facts_query(connection.alias, with_parent).sql
        busy = sql.split(' AS "busy"')[0]
        assert "EXISTS" in busy
        assert "chat_conversations" not in busy
