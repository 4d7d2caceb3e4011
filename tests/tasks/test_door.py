"""The one door: no writer moves a task backwards; every change is recorded."""

import pytest
from django.urls import reverse
from django.utils import timezone

from chat import services as chat_services
from chat.models import Message, Role
from n8n.webhooks import DispatchResult, Outcome
from tasks import door, services
from tasks.models import AsyncTask, AsyncTaskEvent, EventSource, TaskStatus
from tests import factories
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db

TERMINAL = [s.value for s in TaskStatus.terminal()]


def ended(user, status):
    """A chat task that reached `status` through the door."""
    task = chat_task(user)
    fields = {"status_message": "the end"}
    if status == TaskStatus.COMPLETED:
        fields["output_data"] = {"content": "done"}
    door.change(task.pk, source="worker", status=status, **fields)
    return AsyncTask.objects.get(pk=task.pk)


def snapshot(task):
    row = AsyncTask.objects.get(pk=task.pk)
    return (row.status, row.version, row.current_step, row.status_message, row.output_data)


@pytest.mark.parametrize("status", TERMINAL)
def test_a_callback_cannot_move_a_finished_task(client, user, status):
    task = ended(user, status)
    before = snapshot(task)
    for reported in ("processing", "completed", "failed"):
        body = {"status": reported, "output": {"content": "late"}, "error": "late"}
        response = post_callback(client, task.pk, body)
        if reported == status:
            assert response.status_code == 200  # a repeat changes nothing
        else:
            assert response.status_code == 409
    assert snapshot(task) == before


@pytest.mark.parametrize("status", TERMINAL)
def test_the_admin_form_cannot_edit_a_task(admin_client, user, status):
    task = ended(user, status)
    before = snapshot(task)
    url = reverse("admin:tasks_asynctask_change", args=[task.pk])
    admin_client.post(url, {"status": "pending", "current_step": "x", "workflow_id": "evil"})
    assert snapshot(task) == before
    assert AsyncTask.objects.get(pk=task.pk).workflow_id == "chat-reply"
    page = admin_client.get(url).content.decode()
    assert 'name="status"' not in page and 'name="workflow_id"' not in page


@pytest.mark.parametrize("status", TERMINAL)
@pytest.mark.parametrize("action", ["mark_failed", "stop"])
def test_admin_actions_cannot_move_a_finished_task(admin_client, user, status, action):
    task = ended(user, status)
    before = snapshot(task)
    admin_client.post(
        reverse("admin:tasks_asynctask_changelist"),
        {"action": action, "_selected_action": [task.pk]},
    )
    assert snapshot(task) == before


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_dispatch_again_refuses_completed_and_stopped_tasks(user, status):
    task = ended(user, status)
    before = snapshot(task)
    assert services.dispatch_again(task.pk) is False
    assert snapshot(task) == before


@pytest.mark.parametrize("status", TERMINAL)
@pytest.mark.parametrize("outcome", list(Outcome))
def test_a_late_dispatch_answer_cannot_move_a_finished_task(user, status, outcome):
    task = ended(user, status)
    before = snapshot(task)
    result = DispatchResult(outcome, 200 if outcome == Outcome.ACCEPTED else 500, error="x")
    assert services.record_dispatch(task.pk, result) == "ignored"
    assert snapshot(task) == before


@pytest.mark.parametrize("status", TERMINAL)
def test_the_worker_cannot_move_a_finished_task(user, status):
    task = ended(user, status)
    AsyncTask.objects.filter(pk=task.pk).update(
        created_at=timezone.now() - timezone.timedelta(days=1)
    )
    before = snapshot(task)
    assert services.expire_overdue() == 0
    assert services.claim_and_dispatch(task.pk) is None
    assert snapshot(task) == before


def test_every_change_is_one_event_with_its_source(client, user, settings):
    conversation = factories.conversation(user)
    message = chat_services.send_message(user, conversation, "hello")
    task = message.async_task
    services.record_dispatch(task.pk, DispatchResult(Outcome.ACCEPTED, 200, execution_id="7"))
    post_callback(client, task.pk, {"status": "processing", "current_step": "thinking"})
    post_callback(client, task.pk, {"status": "completed", "output": {"content": "hi"}})
    events = list(AsyncTaskEvent.objects.filter(task=task).order_by("version"))
    assert [(e.source, e.status, e.current_step) for e in events] == [
        ("user", "pending", ""),
        ("dispatch", "processing", "dispatched"),
        ("callback", "processing", "thinking"),
        ("callback", "completed", "thinking"),
    ]
    assert [e.version for e in events] == [1, 2, 3, 4]
    assert AsyncTask.objects.get(pk=task.pk).version == 4


def test_progress_in_one_step_shares_its_event_and_the_count_is_capped(client, user, settings):
    settings.TASK_EVENTS_MAX_PER_TASK = 3
    task = chat_task(user)
    for _ in range(5):
        post_callback(client, task.pk, {"status": "processing", "current_step": "same"})
    assert task.events.count() == 1
    for step in range(10):
        post_callback(client, task.pk, {"status": "processing", "current_step": f"s{step}"})
    assert task.events.count() == 3
    post_callback(client, task.pk, {"status": "completed", "output": {"content": "hi"}})
    assert task.events.count() == 4  # the final event is always kept
    assert task.events.order_by("-version").first().status == "completed"


def test_the_cap_holds_from_a_tasks_first_steps(client, user, settings):
    # Each step a new event from the start: the count is skipped while the
    # version shows the cap cannot be reached yet, and holds after.
    settings.TASK_EVENTS_MAX_PER_TASK = 3
    task = chat_task(user)
    for step in range(8):
        post_callback(client, task.pk, {"status": "processing", "current_step": f"s{step}"})
    assert task.events.count() == 3
    assert sorted(task.events.values_list("current_step", flat=True)) == ["s0", "s1", "s2"]


def test_events_are_deleted_with_their_task(user):
    task = ended(user, TaskStatus.FAILED)
    assert AsyncTaskEvent.objects.filter(task_id=task.pk).exists()
    AsyncTask.objects.filter(pk=task.pk).delete()
    assert not AsyncTaskEvent.objects.filter(task_id=task.pk).exists()


def test_the_admin_shows_a_tasks_timeline(admin_client, client, user):
    task = chat_task(user)
    post_callback(client, task.pk, {"status": "processing", "current_step": "fetching"})
    post_callback(client, task.pk, {"status": "failed", "error": "model down"})
    page = admin_client.get(reverse("admin:tasks_asynctask_change", args=[task.pk]))
    html = page.content.decode()
    assert "since previous" in html
    assert "fetching" in html and "Callback" in html


def test_a_retried_task_dispatched_again_by_an_admin_adds_no_second_reply(client, user):
    conversation = factories.conversation(user)
    message = chat_services.send_message(user, conversation, "hello")
    first = message.async_task
    door.change(first.pk, source="worker", status=TaskStatus.TIMEOUT, status_message="late")
    message = chat_services.retry(user, Message.objects.get(pk=message.pk))
    second = message.async_task
    post_callback(client, second.pk, {"status": "completed", "output": {"content": "reply"}})
    # An operator sends the old, superseded task again: refused.
    assert services.dispatch_again(first.pk) is False
    assert AsyncTask.objects.get(pk=first.pk).status == "timeout"
    # Even if its run finished anyway, it adds no second reply.
    AsyncTask.objects.filter(pk=first.pk).update(status="processing")
    post_callback(client, first.pk, {"status": "completed", "output": {"content": "again"}})
    replies = Message.objects.filter(conversation=conversation, role=Role.ASSISTANT)
    assert list(replies.values_list("content", flat=True)) == ["reply"]


def test_a_reply_over_the_limit_fails_its_task_in_plain_words(client, user, settings):
    settings.CHAT_REPLY_MAX_LENGTH = 100
    task = chat_task(user)
    response = post_callback(client, task.pk, {"status": "completed", "output": "x" * 101})
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    task.refresh_from_db()
    assert task.status_message == "The reply was 101 characters long; the limit is 100."
    assert not Message.objects.filter(async_task=task, role=Role.ASSISTANT).exists()


def test_a_completed_callbacks_thinking_past_the_limit_is_cut_with_a_note(client, user, settings):
    settings.CHAT_THINKING_MAX_LENGTH = 10
    task = chat_task(user)
    output = {"content": "the reply", "thinking": "0123456789abcdef"}
    response = post_callback(client, task.pk, {"status": "completed", "output": output})
    assert response.json()["status"] == "completed"
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content == "the reply"
    assert reply.thinking == "0123456789\n\n[… thinking cut at 10 characters]"
    assert "thinking cut at 10 characters" in reply.thinking_html


def test_thinking_at_the_limit_is_kept_whole(client, user, settings):
    settings.CHAT_THINKING_MAX_LENGTH = 10
    task = chat_task(user)
    output = {"content": "the reply", "thinking": "0123456789"}
    post_callback(client, task.pk, {"status": "completed", "output": output})
    assert Message.objects.get(async_task=task, role=Role.ASSISTANT).thinking == "0123456789"


def test_a_change_field_outside_the_door_list_is_refused(user):
    task = chat_task(user)
    with pytest.raises(TypeError):
        door.change(task.pk, source="admin", workflow_id="elsewhere")


def test_the_door_returns_the_row_exactly_as_the_orm_reads_it(user):
    # the door (tasks/door.py) builds the task from the UPDATE's row with the ORM's
    # own converters (JSON, times on SQLite): every field equal to a fresh read.
    task = chat_task(user)
    written = door.change(
        task.pk,
        source=EventSource.CALLBACK,
        status=TaskStatus.COMPLETED,
        output_data={"content": "hi", "nested": [1, {"a": None}]},
        metadata={"attempts": 2},
        n8n_execution_id="17",
    )
    read = AsyncTask.objects.get(pk=task.pk)
    for field in AsyncTask._meta.concrete_fields:
        assert getattr(written, field.attname) == getattr(read, field.attname), field.name
    assert written.output_data["nested"] == [1, {"a": None}]
    assert written.processing_completed_at.tzinfo is not None


def test_a_streamed_piece_reuses_the_append_compiled_once(user, monkeypatch):
    """The append's UPDATE is compiled by the ORM once, then only its values
    change: pieces of any text, offset and task are written as given."""
    from django.db.models.sql.compiler import SQLUpdateCompiler

    first, second = chat_task(user), chat_task(user)
    door.append_partial(first.pk, "warm ", offset=0)
    door.append_partial(first.pk, "up ")
    compiled = []
    original = SQLUpdateCompiler.as_sql
    monkeypatch.setattr(
        SQLUpdateCompiler, "as_sql", lambda self: compiled.append(1) or original(self)
    )
    door.append_partial(first.pk, "Hello, ")
    door.append_partial(second.pk, "other ", offset=0)
    door.append_partial(first.pk, "wörld 🌍", offset=len("warm up Hello, "))
    assert compiled == []
    texts = dict(
        AsyncTask.objects.values_list("pk", "partial_text").filter(pk__in=[first.pk, second.pk])
    )
    assert texts == {first.pk: "warm up Hello, wörld 🌍", second.pk: "other "}
