"""A `processing` callback may carry its `sequence`, so an older one replayed
after a newer one cannot move the task back to its step (N15)."""

import pytest

from tasks.models import AsyncTask, AsyncTaskEvent
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db


def step(client, task, name, sequence=None, **fields):
    body = {"status": "processing", "current_step": name, "status_message": f"at {name}", **fields}
    if sequence is not None:
        body["sequence"] = sequence
    return post_callback(client, task.pk, body)


def row(task):
    return AsyncTask.objects.get(pk=task.pk)


def test_an_older_processing_callback_replayed_after_a_newer_one_changes_nothing(client, user):
    task = chat_task(user)
    assert step(client, task, "searching", 1).status_code == 200
    assert step(client, task, "writing", 2).status_code == 200
    before = row(task)
    events = AsyncTaskEvent.objects.filter(task_id=task.pk).count()
    replayed = step(client, task, "searching", 1)  # n8n's late retry of the first
    assert replayed.status_code == 200
    assert replayed.json()["status"] == "processing"
    after = row(task)
    assert (after.current_step, after.status_message) == ("writing", "at writing")
    assert after.version == before.version
    assert AsyncTaskEvent.objects.filter(task_id=task.pk).count() == events
    # The same sequence again is a replay too; a greater one applies.
    step(client, task, "writing again", 2)
    assert row(task).current_step == "writing"
    step(client, task, "checking", 3)
    assert row(task).current_step == "checking"


def test_without_a_sequence_callbacks_apply_in_the_order_they_come(client, user):
    task = chat_task(user)
    step(client, task, "writing", 5)
    step(client, task, "searching")  # carries no order: applied as before
    assert row(task).current_step == "searching"
    step(client, task, "older", 4)  # still older than the last ordered one
    assert row(task).current_step == "searching"


def test_an_ending_is_not_ordered_by_sequence(client, user):
    task = chat_task(user)
    step(client, task, "writing", 9)
    body = {"status": "completed", "output": {"content": "Done"}, "sequence": 1}
    assert post_callback(client, task.pk, body).status_code == 200
    assert row(task).status == "completed"


def test_an_older_step_with_new_text_keeps_the_text_not_the_step(client, user):
    task = chat_task(user)
    step(client, task, "writing", 2)
    body = {"status": "processing", "delta": "Hi", "offset": 0}
    body |= {"current_step": "searching", "sequence": 1}
    assert post_callback(client, task.pk, body).status_code == 200
    after = row(task)
    assert (after.current_step, after.partial_text) == ("writing", "Hi")


def test_a_piece_with_only_a_sequence_is_text_only(client, user):
    task = chat_task(user)
    step(client, task, "writing", 7)
    version = row(task).version
    body = {"status": "processing", "delta": "Hi", "sequence": 3}
    assert post_callback(client, task.pk, body).status_code == 200
    after = row(task)
    assert (after.partial_text, after.version, after.callback_sequence) == ("Hi", version, 7)


@pytest.mark.parametrize("sequence", [-1, "3", 1.5, True, 2**63])
def test_a_bad_sequence_is_refused_and_changes_nothing(client, user, sequence):
    task = chat_task(user)
    step(client, task, "writing", 2)
    response = step(client, task, "searching", sequence)
    assert response.status_code == 400
    assert "sequence" in response.json()["error"]
    assert row(task).current_step == "writing"
