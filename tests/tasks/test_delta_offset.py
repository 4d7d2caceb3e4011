"""A `delta` may carry its `offset`, so n8n's retries of a piece are harmless (N15)."""

import pytest

from tasks.models import AsyncTask
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db


def delta(client, task, text, offset=None, **fields):
    body = {"status": "processing", "delta": text, **fields}
    if offset is not None:
        body["offset"] = offset
    return post_callback(client, task.pk, body)


def partial(task):
    return AsyncTask.objects.get(pk=task.pk).partial_text


def test_a_replayed_piece_is_applied_once(client, user):
    task = chat_task(user)
    assert delta(client, task, "Hello", 0).status_code == 200
    assert delta(client, task, "Hello", 0).status_code == 200
    assert delta(client, task, ", wörld 🌍", 5).status_code == 200
    assert delta(client, task, ", wörld 🌍", 5).status_code == 200
    assert partial(task) == "Hello, wörld 🌍"


def test_a_piece_that_overlaps_adds_only_what_is_new(client, user):
    task = chat_task(user)
    delta(client, task, "Hello", 0)
    assert delta(client, task, "lo, there", 3).status_code == 200
    assert partial(task) == "Hello, there"


def test_a_piece_after_a_gap_waits_and_the_missing_piece_fills_it(client, user):
    task = chat_task(user)
    delta(client, task, "one ", 0)
    response = delta(client, task, "three", 8)  # "two " (offset 4) is missing
    assert response.status_code == 200
    assert partial(task) == "one "
    delta(client, task, "two ", 4)
    delta(client, task, "three", 8)  # n8n's retry of the later piece
    assert partial(task) == "one two three"


def test_a_replayed_callback_changes_no_step_either(client, user):
    task = chat_task(user)
    delta(client, task, "Hi", 0, current_step="first")
    delta(client, task, " there", 2, current_step="second")
    version = AsyncTask.objects.get(pk=task.pk).version
    delta(client, task, "Hi", 0, current_step="first")  # an old one, replayed
    row = AsyncTask.objects.get(pk=task.pk)
    assert (row.current_step, row.version, row.partial_text) == ("second", version, "Hi there")


@pytest.mark.parametrize("offset", [-1, "3", 1.5, True])
def test_a_bad_offset_is_refused(client, user, offset):
    task = chat_task(user)
    assert delta(client, task, "x", offset).status_code == 400


def test_an_offset_without_a_delta_is_refused(client, user):
    task = chat_task(user)
    body = {"status": "processing", "offset": 0}
    assert post_callback(client, task.pk, body).status_code == 400


def test_pieces_without_an_offset_append_as_before(client, user):
    task = chat_task(user)
    delta(client, task, "a")
    delta(client, task, "a")
    assert partial(task) == "aa"
