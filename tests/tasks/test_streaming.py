"""Streamed reply text: `delta` in processing callbacks, the partial reply kept
on the task, coalesced `message.delta` frames, and `sync` mid-stream."""

import asyncio

import pytest

from chat.models import Message, Role
from live import deltas
from tasks import door
from tasks.models import AsyncTask
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db


def delta(client, task, text, **extra):
    return post_callback(client, task.pk, {"status": "processing", "delta": text, **extra})


def test_a_delta_appends_to_the_partial_reply(client, user):
    task = chat_task(user)
    assert delta(client, task, "Hello, ").status_code == 200
    assert delta(client, task, "wörld 🌍").json() == {"task_id": task.pk, "status": "processing"}
    task.refresh_from_db()
    assert task.partial_text == "Hello, wörld 🌍"
    assert task.status == "processing"


def test_a_text_only_delta_changes_no_version_and_writes_no_event(client, user):
    task = chat_task(user)
    delta(client, task, "first ")  # pending → processing: a change
    task.refresh_from_db()
    version, events = task.version, task.events.count()
    delta(client, task, "second")
    task.refresh_from_db()
    assert (task.version, task.events.count()) == (version, events)
    assert task.partial_text == "first second"


def test_a_delta_with_a_step_is_a_change_too(client, user):
    task = chat_task(user, status="processing")
    before = task.version
    delta(client, task, "abc", current_step="writing")
    task.refresh_from_db()
    assert task.version == before + 1
    assert (task.current_step, task.partial_text) == ("writing", "abc")


@pytest.mark.parametrize(
    "payload",
    [
        {"status": "processing", "delta": 42},
        {"status": "processing", "delta": ["a"]},
        {"status": "completed", "delta": "x", "output": "done"},
        {"status": "failed", "delta": "x"},
    ],
)
def test_a_bad_delta_answers_400_and_changes_nothing(client, user, payload):
    task = chat_task(user)
    response = post_callback(client, task.pk, payload)
    assert response.status_code == 400
    task.refresh_from_db()
    assert (task.status, task.partial_text) == ("pending", "")


def test_a_delta_longer_than_the_limit_answers_400(client, user, settings):
    settings.TASK_DELTA_MAX_CHARS = 10
    task = chat_task(user)
    assert delta(client, task, "x" * 11).status_code == 400
    assert delta(client, task, "x" * 10).status_code == 200


def test_the_partial_reply_stops_growing_at_the_reply_limit(client, user, settings):
    settings.CHAT_REPLY_MAX_LENGTH = 12
    task = chat_task(user)
    assert delta(client, task, "0123456789").status_code == 200
    assert delta(client, task, "abcdef").status_code == 200  # accepted, clipped
    assert delta(client, task, "more").status_code == 200
    task.refresh_from_db()
    assert task.partial_text == "0123456789ab"


def test_a_delta_for_a_finished_task_answers_409(client, user):
    task = chat_task(user)
    post_callback(client, task.pk, {"status": "completed", "output": "done"})
    response = delta(client, task, "late")
    assert response.status_code == 409
    task.refresh_from_db()
    assert task.partial_text == ""


def test_completion_replaces_the_streamed_text_with_the_reply(client, user):
    task = chat_task(user)
    delta(client, task, "Half a rep")
    post_callback(client, task.pk, {"status": "completed", "output": "The whole reply."})
    task.refresh_from_db()
    assert task.partial_text == ""
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content == "The whole reply."
    assert reply.metadata == {}


def test_append_partial_returns_offsets_in_code_points(user):
    task = chat_task(user)
    first = door.append_partial(task.pk, "🌍é")
    second = door.append_partial(task.pk, "z")
    assert (first.offset, first.text) == (0, "🌍é")
    assert (second.offset, second.text) == (2, "z")


# --- the coalescer -----------------------------------------------------------


def run_coalescer(pieces, interval=0.05, gap=0.0, settle=0.2):
    """Feed pieces to a coalescer on a fresh loop; returns the frames it sent."""
    sent = []

    async def scenario():
        loop = asyncio.get_running_loop()
        coalescer = deltas.DeltaCoalescer(
            loop,
            enqueue=lambda _loop, sends: sent.append(
                (loop.time(), sends[0][1]["frame"], [g for g, _ in sends])
            ),
        )
        coalescer.interval = interval
        offset = 0
        for text in pieces:
            coalescer.add(["g1", "g2"], {"task_id": 1, "offset": offset, "text": text})
            offset += len(text)
            if gap:
                await asyncio.sleep(gap)
        await asyncio.sleep(settle)

    asyncio.run(scenario())
    return sent


def test_the_first_piece_goes_out_at_once_and_the_rest_are_joined():
    sent = run_coalescer(["a", "b", "c", "d"])
    assert [frame["text"] for _, frame, _ in sent] == ["a", "bcd"]
    assert [frame["offset"] for _, frame, _ in sent] == [0, 1]
    assert sent[0][2] == ["g1", "g2"]
    assert sent[1][0] - sent[0][0] >= 0.045


def test_at_most_one_frame_per_interval_per_task():
    sent = run_coalescer(["x"] * 40, interval=0.05, gap=0.005, settle=0.2)
    times = [at for at, _, _ in sent]
    assert "".join(frame["text"] for _, frame, _ in sent) == "x" * 40
    assert len(sent) < 40 / 2
    assert all(later - earlier >= 0.045 for earlier, later in zip(times, times[1:], strict=False))


def test_pieces_that_do_not_continue_each_other_are_sent_apart_in_order():
    sent = []

    async def scenario():
        loop = asyncio.get_running_loop()
        coalescer = deltas.DeltaCoalescer(
            loop, enqueue=lambda _loop, sends: sent.append(sends[0][1]["frame"])
        )
        coalescer.add(["g"], {"task_id": 1, "offset": 0, "text": "ab"})
        coalescer.add(["g"], {"task_id": 1, "offset": 2, "text": "cd"})
        coalescer.add(["g"], {"task_id": 1, "offset": 9, "text": "xy"})
        await asyncio.sleep(0.15)

    asyncio.run(scenario())
    assert [(f["offset"], f["text"]) for f in sent] == [(0, "ab"), (2, "cd"), (9, "xy")]


# --- Stop keeps what was written ---------------------------------------------------


def test_a_stopped_reply_keeps_the_streamed_text(client, user_client, user):
    task = chat_task(user)
    delta(client, task, "What was ")
    delta(client, task, "written")
    response = user_client.post(f"/tasks/{task.pk}/cancel/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content == "What was written"
    assert reply.metadata == {"stopped": True}
    page = user_client.get(f"/chat/{reply.conversation_id}/").content.decode()
    assert 'class="message__stopped">stopped<' in page


@pytest.mark.parametrize(
    "pieces, content, thinking",
    [
        (["<think>Weighing", " it</think>", "The answer", " is"], "The answer is", "Weighing it"),
        (["<think>Still weigh", "ing"], "", "Still weighing"),  # stopped while thinking
        (["No <think> at the start"], "No <think> at the start", ""),
    ],
)
def test_a_stopped_reply_keeps_a_streamed_think_part_as_its_thinking(
    client, user_client, user, pieces, content, thinking
):
    task = chat_task(user)
    for piece in pieces:
        delta(client, task, piece)
    user_client.post(f"/tasks/{task.pk}/cancel/", HTTP_ACCEPT="application/json")
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert (reply.content, reply.thinking, reply.metadata) == (content, thinking, {"stopped": True})


def test_a_stopped_replys_streamed_thinking_past_the_limit_is_cut_with_a_note(
    client, user_client, user, settings
):
    settings.CHAT_THINKING_MAX_LENGTH = 5
    task = chat_task(user)
    delta(client, task, "<think>Weighing it</think>The answer")
    user_client.post(f"/tasks/{task.pk}/cancel/", HTTP_ACCEPT="application/json")
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content == "The answer"
    assert reply.thinking == "Weigh\n\n[… thinking cut at 5 characters]"


def test_a_stopped_reply_without_text_adds_no_message(user_client, user):
    task = chat_task(user)
    user_client.post(f"/tasks/{task.pk}/cancel/", HTTP_ACCEPT="application/json")
    assert not Message.objects.filter(async_task=task, role=Role.ASSISTANT).exists()
    task.refresh_from_db()
    assert task.status == "cancelled"


def test_a_late_completed_callback_after_stop_answers_409_and_adds_nothing(
    client, user_client, user
):
    task = chat_task(user)
    delta(client, task, "partial")
    user_client.post(f"/tasks/{task.pk}/cancel/", HTTP_ACCEPT="application/json")
    late = post_callback(client, task.pk, {"status": "completed", "output": "full"})
    assert late.status_code == 409
    assert delta(client, task, " more").status_code == 409
    replies = Message.objects.filter(async_task=task, role=Role.ASSISTANT)
    assert [m.content for m in replies] == ["partial"]
    assert AsyncTask.objects.get(pk=task.pk).partial_text == "partial"
