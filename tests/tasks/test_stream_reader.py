"""Reading n8n's streamed answer (Webhook node in Streaming mode) as it arrives,
against a local server that writes n8n's chunk format with pauses."""

import threading

import pytest

from chat.models import Message, Role
from observability import metrics
from tasks import lifecycle
from tasks.models import AsyncTask
from tasks.outbound import dispatch, streaming
from tests.standins import N8nStandin, chunk, item
from tests.task_support import FakeN8n, chat_task, post_callback, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_streams")]


def partial(task):
    return AsyncTask.objects.get(pk=task.pk).partial_text


def wait_closed(timeout=10):
    wait_for(lambda: streaming.open_count() == 0, timeout=timeout, what="the stream to close")


def test_the_streamed_items_become_the_partial_reply_as_they_arrive(n8n_at, user):
    script = [chunk("begin"), item("Hel"), ("sleep", 1.0), item("lo, "), item("wörld 🌍")]
    script += [("sleep", 1.0), chunk("end"), ("end",)]
    with n8n_at(N8nStandin(script)):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
        # The dispatch is recorded when the headers are in, not when the body ends.
        assert AsyncTask.objects.get(pk=task.pk).status == "processing"
        assert partial(task) in ("", "Hel")
        wait_for(lambda: partial(task) == "Hel", timeout=5, what="the first piece")
        wait_for(lambda: partial(task) == "Hello, wörld 🌍", timeout=5, what="the rest")
        wait_closed()


def test_a_stream_may_pause_longer_than_the_read_time_out(n8n_at, user, settings):
    settings.TASK_DISPATCH_READ_TIMEOUT = 0.3
    script = [item("before "), ("sleep", 1.2), item("after"), ("end",)]
    with n8n_at(N8nStandin(script)):
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_closed()
    assert partial(task) == "before after"


def test_a_broken_stream_keeps_what_arrived_and_the_completed_callback_still_wins(
    n8n_at, user, client
):
    with n8n_at(N8nStandin([item("Half a "), item("reply"), ("sleep", 0.2), ("break",)])):
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_closed()
    assert partial(task) == "Half a reply"
    assert AsyncTask.objects.get(pk=task.pk).status == "processing"
    response = post_callback(client, task.pk, {"status": "completed", "output": "Whole reply."})
    assert response.status_code == 200
    assert Message.objects.get(async_task=task, role=Role.ASSISTANT).content == "Whole reply."


def test_an_error_chunk_ends_reading_even_if_the_response_stays_open(n8n_at, user):
    script = [item("Before the error"), ("sleep", 0.1), chunk("error", content=None), ("hang",)]
    with n8n_at(N8nStandin(script)) as server:
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_closed()
        wait_for(lambda: server.closed_by_client == 1, timeout=5, what="the client to hang up")
    assert partial(task) == "Before the error"


def test_a_stream_that_never_ends_is_closed_at_the_tasks_deadline(n8n_at, user, settings):
    settings.TASK_TIMEOUT_SECONDS = 2
    with n8n_at(N8nStandin([item("Still "), chunk("keepalive"), ("hang",)])) as server:
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_for(lambda: partial(task) == "Still ", timeout=5, what="the first piece")
        assert streaming.open_count() == 1
        wait_closed(timeout=6)
        wait_for(lambda: server.closed_by_client == 1, timeout=5, what="the client to hang up")


def test_stop_closes_the_stream_and_keeps_the_text(n8n_at, user):
    with n8n_at(N8nStandin([item("Stop me "), item("here"), ("hang",)])) as server:
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_for(lambda: partial(task) == "Stop me here", timeout=5, what="the text")
        lifecycle.cancel(task.pk, by="alice")
        wait_closed(timeout=3)
        wait_for(lambda: server.closed_by_client == 1, timeout=5, what="the client to hang up")
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert (reply.content, reply.metadata) == ("Stop me here", {"stopped": True})


def test_a_stream_of_a_task_stopped_elsewhere_is_closed_by_the_check(n8n_at, user, monkeypatch):
    monkeypatch.setattr(streaming, "close", lambda task_id: False)  # "another process"
    with n8n_at(N8nStandin([item("x"), ("hang",)])):
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_for(lambda: partial(task) == "x", timeout=5, what="the text")
        lifecycle.cancel(task.pk, by="alice")
        wait_closed(timeout=streaming.CHECK_SECONDS + 4)


def test_pieces_are_written_in_batches(n8n_at, user, settings, monkeypatch):
    settings.TASK_STREAM_FLUSH_SECONDS = 0.3
    writes = []
    original = streaming.append
    monkeypatch.setattr(
        streaming,
        "append",
        lambda task_id, text: writes.append(text) or original(task_id, text),
    )
    script = [item("a")] + [step for n in range(20) for step in (("sleep", 0.02), item("b"))]
    with n8n_at(N8nStandin([*script, ("end",)])):
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_closed()
    assert partial(task) == "a" + "b" * 20
    # The first piece is written at once (with what came while it was queued).
    assert writes[0].startswith("a") and len(writes[0]) < 10
    assert len(writes) <= 8  # 21 pieces, a write at most every 0.3 s


def test_a_plain_answer_works_as_before(n8n_at, user):
    with n8n_at(FakeN8n([(200, {"executionId": "e-7"}, 0)])):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
    task.refresh_from_db()
    assert (task.status, task.n8n_execution_id, task.partial_text) == ("processing", "e-7", "")
    assert streaming.open_count() == 0


def test_two_hundred_streams_take_no_thread_each(n8n_at, user, settings):
    settings.TASK_STREAM_FLUSH_SECONDS = 0.2
    with n8n_at(N8nStandin([item("hi"), ("hang",)])) as server:
        tasks = [chat_task(user, f"m{n}") for n in range(200)]
        dispatch.claim_and_dispatch(tasks[0].pk)  # starts the loop and its pools
        wait_for(lambda: streaming.open_count() == 1, timeout=5, what="the first stream")
        threads_before = threading.active_count()
        for task in tasks[1:]:
            assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
        wait_for(lambda: streaming.open_count() == 200, timeout=20, what="200 open streams")
        assert threading.active_count() - threads_before <= 5
        assert server.open == 200
        for task in tasks:
            streaming.close(task.pk)
        wait_closed(timeout=10)
    texts = set(
        AsyncTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list(
            "partial_text", flat=True
        )
    )
    assert texts == {"hi"}


def test_a_flush_waits_for_the_write_before_it_and_never_spins_on_it(monkeypatch):
    """A flush that starts while an earlier write is done but the flush that
    made it has not woken yet must wait for that flush, not spin on the done
    future (awaiting one does not yield): that would stall every stream of the
    process, which a stream of the real n8n once did."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    loop = asyncio.new_event_loop()
    streams = streaming.Streams()
    streams.writers = ThreadPoolExecutor(1)
    reader = streaming.StreamReader(
        streams, 1, response=None, deadline_seconds=10, hooks=dispatch.STREAM_HOOKS
    )
    writes = []
    monkeypatch.setattr(streaming, "append", lambda task_id, text: writes.append(text) or True)
    seen_before_release = []

    async def scenario():
        finished = loop.create_future()
        finished.set_result(True)
        release = asyncio.Event()

        async def earlier_flush():  # its write is done; it has not woken yet
            async with reader.write_lock:
                reader.writing = finished
                await release.wait()
                reader.writing = None

        earlier = loop.create_task(earlier_flush())
        await asyncio.sleep(0)
        reader.pending = ["next"]
        later = loop.create_task(reader._flush())
        await asyncio.sleep(0.1)
        seen_before_release.extend(writes)
        release.set()
        await asyncio.gather(earlier, later)

    thread = threading.Thread(target=lambda: loop.run_until_complete(scenario()), daemon=True)
    thread.start()
    thread.join(5)
    spinning = thread.is_alive()
    if spinning:  # let the spinning loop go, so that the test ends
        reader.writing = None
        thread.join(5)
    loop.close()
    assert not spinning, "a flush spun on a finished write"
    assert (seen_before_release, writes) == ([], ["next"])


def test_the_open_streams_gauge_counts_the_streams_being_read(n8n_at, user):
    def gauge():
        return metrics.STREAMS_OPEN._value.get()

    before = gauge()
    with n8n_at(N8nStandin([item("Open "), ("hang",)])):
        task = chat_task(user)
        dispatch.claim_and_dispatch(task.pk)
        wait_for(lambda: partial(task) == "Open ", timeout=5, what="the first piece")
        assert gauge() == before + 1
        streaming.close(task.pk)
        wait_closed()
    wait_for(lambda: gauge() == before, timeout=5, what="the gauge to go down")
