"""The leading `<think>` rule, written once (chat/replies/thinking.py): a stopped
reply's split, what `message.delta` frames tell the page to show while a reply
streams, and the same marks found by Python and by the database."""

import asyncio
import sys

import pytest

from chat.replies.thinking import WHITESPACE, Marks, split_thinking, stream_view
from live import deltas
from tasks import frames
from tasks.models import AsyncTask
from tests.task_support import chat_task, post_callback

# Texts whose marks are easy to get wrong: whitespace Python strips but SQL's
# default trim does not, astral code points before the tags, tags out of place.
TRICKY = [
    "",
    "   ",
    "\u3000\x85\x1c\t<think>",
    "<thi",
    "<think>",
    "<think>weighing it",
    "  <think>weighing</think>\n Hello",
    "🌍<think>x</think>y",
    "\n<think>🌍🌍</think>\u2003\u2003🌍 answer",
    "<think></think>",
    "<think>a</think>b</think>c",
    "</think><think>x</think>y",
    "Hello <think>",
    "Hello </think> world",
    "<think>a</think>\n\n",
    "<THINK>no</THINK>",
]


def shown(text):
    """What the page shows for `text` by the frame fields: (thinking, text)."""
    view = stream_view(Marks.of(text))
    return view["thinking"], "" if view["thinking"] else text[view["visible_offset"] :]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", (False, "")),
        ("  \n", (False, "")),
        ("<", (True, "")),
        ("<thi", (True, "")),
        ("<think>weighing it", (True, "")),
        ("  <think>weighing</think>", (False, "")),
        ("  <think>weighing</think>\n Hello", (False, "Hello")),
        ("Hello <think>", (False, "Hello <think>")),
        ("<b>bold</b>", (False, "<b>bold</b>")),
        ("  Hello", (False, "  Hello")),  # a plain reply shows as written
    ],
)
def test_a_streaming_reply_reads_thinking_until_its_leading_block_closes(text, expected):
    assert shown(text) == expected


@pytest.mark.parametrize(
    "text, content, thinking",
    [
        ("<think>Weighing it</think>The answer is", "The answer is", "Weighing it"),
        ("\n <think> Still weighing ", "", "Still weighing"),
        ("No <think> at the start", "No <think> at the start", ""),
        ("<think>a</think>b</think>c", "b</think>c", "a"),
        ("  plain  ", "  plain  ", ""),
    ],
)
def test_a_stopped_reply_splits_at_the_same_marks(text, content, thinking):
    assert split_thinking(text) == (content, thinking)


def test_the_whitespace_the_database_trims_is_all_python_strips():
    assert WHITESPACE == "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


@pytest.mark.django_db
@pytest.mark.parametrize("text", TRICKY)
def test_the_database_finds_the_same_marks_as_python(user, text):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(partial_text=text)
    row = AsyncTask.objects.defer("partial_text").annotate(**Marks.expressions()).get(pk=task.pk)
    assert Marks.from_row(row) == Marks.of(text)


@pytest.mark.django_db
def test_marks_are_never_read_with_a_query(user, django_assert_num_queries):
    task = AsyncTask.objects.defer("partial_text").get(pk=chat_task(user).pk)
    with django_assert_num_queries(0):
        assert Marks.from_row(task) is None


# --- the frames ------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch):
    """The `message.delta` frames handed to the coalescer."""
    frames_sent = []
    monkeypatch.setattr(deltas, "send_delta", lambda groups, frame: frames_sent.append(frame))
    return frames_sent


def page_view(frames_sent):
    """Apply frames as the page does; what it shows after each."""
    text, views = "", []
    for frame in frames_sent:
        text = text[: frame["offset"]] + frame["text"]
        views.append(
            (frame["thinking"], "" if frame["thinking"] else text[frame["visible_offset"] :])
        )
    return views


@pytest.mark.django_db
def test_delta_frames_say_what_the_page_shows_while_a_think_block_streams(
    client, user, sent, django_capture_on_commit_callbacks
):
    task = chat_task(user)
    pieces = ["  <thi", "nk>weigh 🌍", "ing</think>", "\n\n", "Hello", " there"]
    with django_capture_on_commit_callbacks(execute=True):
        for piece in pieces:
            response = post_callback(client, task.pk, {"status": "processing", "delta": piece})
            assert response.status_code == 200
    assert page_view(sent) == [
        (True, ""),
        (True, ""),
        (False, ""),
        (False, ""),
        (False, "Hello"),
        (False, "Hello there"),
    ]


@pytest.mark.django_db
def test_a_clipped_piece_carries_the_view_of_what_was_kept(
    client, user, sent, settings, django_capture_on_commit_callbacks
):
    settings.CHAT_REPLY_MAX_LENGTH = 20
    task = chat_task(user)
    with django_capture_on_commit_callbacks(execute=True):
        for piece in ("<think>x</think>", " Hello world"):
            post_callback(client, task.pk, {"status": "processing", "delta": piece})
    assert [frame["text"] for frame in sent] == ["<think>x</think>", " Hel"]
    assert page_view(sent) == [(False, ""), (False, "Hel")]


@pytest.mark.django_db
def test_a_sync_frame_says_what_the_page_shows_of_all_the_text(user):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(partial_text="<think>still weighing")
    task = AsyncTask.objects.get(pk=task.pk)
    frame = frames.delta_frame(task, 0, task.partial_text)
    assert (frame["offset"], frame["thinking"]) == (0, True)
    AsyncTask.objects.filter(pk=task.pk).update(partial_text="<think>done</think> Yes")
    task = AsyncTask.objects.get(pk=task.pk)
    frame = frames.delta_frame(task, 0, task.partial_text)
    assert (frame["thinking"], task.partial_text[frame["visible_offset"] :]) == (False, "Yes")


def test_a_joined_frame_carries_the_view_of_its_last_piece():
    sent = []

    async def scenario():
        loop = asyncio.get_running_loop()
        coalescer = deltas.DeltaCoalescer(
            loop, enqueue=lambda _loop, sends: sent.append(sends[0][1]["frame"])
        )
        coalescer.interval = 0.05
        text = ""
        for piece in ("<think>a", "</think>", " Hi"):
            coalescer.add(
                ["g"], {"task_id": 1, "offset": len(text), "text": piece, **_view(text + piece)}
            )
            text += piece
        await asyncio.sleep(0.15)

    asyncio.run(scenario())
    assert [(frame["offset"], frame["text"]) for frame in sent] == [
        (0, "<think>a"),
        (8, "</think> Hi"),
    ]
    assert page_view(sent) == [(True, ""), (False, "Hi")]


def _view(text):
    return stream_view(Marks.of(text))
