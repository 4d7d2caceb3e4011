"""The stream reader's cost is bounded by what it keeps (N12): it closes the
stream once the task's partial text is full, and scans its buffer once."""

import asyncio

import pytest

from tasks import door
from tasks.models import AsyncTask
from tasks.outbound import dispatch, streaming
from tests.standins import N8nStandin, item
from tests.task_support import chat_task, wait_for


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_streams")
def test_the_stream_is_closed_once_the_partial_text_is_full(n8n_at, user, settings):
    settings.CHAT_REPLY_MAX_LENGTH = 30
    settings.TASK_TIMEOUT_SECONDS = 60
    script = [item("x" * 20), ("sleep", 0.2), item("y" * 20), ("sleep", 0.2)]
    script += [item("z" * 20) for _ in range(5)] + [("hang",)]
    with n8n_at(N8nStandin(script)) as server:
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_for(lambda: streaming.open_count() == 0, timeout=8, what="the full stream to close")
        wait_for(lambda: server.closed_by_client == 1, timeout=5, what="the client to hang up")
    assert AsyncTask.objects.get(pk=task.pk).partial_text == "x" * 20 + "y" * 10


@pytest.mark.django_db
def test_append_reports_that_the_partial_text_is_full(user, settings):
    settings.CHAT_REPLY_MAX_LENGTH = 10
    task = chat_task(user)
    assert not door.append_partial(task.pk, "12345").full
    appended = door.append_partial(task.pk, "67890abc")
    assert (appended.text, appended.full) == ("67890", True)
    assert door.append_partial(task.pk, "more").full


def test_a_long_line_in_one_byte_parts_comes_out_whole():
    """300 KB of one line, a byte per part, comes out as one line. Each part must
    not copy or search the whole buffer again (quadratic: seconds of CPU):
    `make bench-bounds` measures that doubling the line about doubles the time."""
    reader = streaming.StreamReader(
        streaming.Streams(), 1, response=None, deadline_seconds=10, hooks=dispatch.STREAM_HOOKS
    )
    line = b'{"type": "item", "content": "' + b"a" * 300_000 + b'"}\n'

    async def parts():
        for index in range(len(line)):
            yield line[index : index + 1]
        yield b'{"type": "end"}\n'

    async def read():
        return [text async for text in reader._lines(b"", parts())]

    lines = asyncio.run(read())
    assert [len(text) for text in lines] == [len(line) - 1, 15]
