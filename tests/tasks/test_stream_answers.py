"""What a chunked answer to a dispatch is, decided by its first line: n8n's
stream, a refusal written into the stream (an `error` chunk first: n8n sends
status 200 before any node runs), or a plain answer that merely came chunked.
And the execution id: announced in the stream, or in a late callback."""

import json

import pytest

from chat.models import Message, Role
from tasks import lifecycle
from tasks.models import AsyncTask, TaskWords
from tasks.outbound import dispatch, streaming
from tests.standins import N8nStandin, chunk, item
from tests.task_support import FakeN8n, chat_task, post_callback, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_streams")]

JSON = {"HTTP_ACCEPT": "application/json"}


def wait_closed(timeout=10):
    wait_for(lambda: streaming.open_count() == 0, timeout=timeout, what="the stream to close")


def stop_answer(task_id):
    return wait_for(
        lambda: AsyncTask.objects.get(pk=task_id).metadata.get("n8n_stop"),
        timeout=10,
        what="the stop answer to be recorded",
    )


@pytest.mark.parametrize(
    "pieces",
    [
        ['{"status": "accepted", "executionId": "42"}'],
        ['{\n  "status": "accepted",\n', '  "executionId": "42"\n}\n'],  # pretty, in two chunks
    ],
    ids=["one-line", "pretty-printed"],
)
def test_a_chunked_plain_answer_is_classified_as_before_not_read_as_a_stream(n8n_at, user, pieces):
    script = [step for piece in pieces for step in (("raw", piece), ("sleep", 0.05))]
    with n8n_at(N8nStandin([*script, ("end",)])):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
    task.refresh_from_db()
    assert (task.status, task.n8n_execution_id, task.partial_text) == ("processing", "42", "")
    [attempt] = task.metadata["attempts"]
    assert attempt["execution_id"] == "42"
    wait_closed()  # the reader of a plain answer ends as soon as it has read it


def test_a_chunked_plain_answer_larger_than_the_bound_is_cut_and_classified(n8n_at, user):
    big = json.dumps({"executionId": "9", "padding": "x" * (streaming.MAX_PLAIN_BODY_BYTES + 10)})
    with n8n_at(N8nStandin([("raw", big), ("end",)])):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
    task.refresh_from_db()
    assert task.status == "processing" and task.partial_text == ""
    wait_closed()


def test_an_error_chunk_first_is_a_refusal_that_fails_the_task_at_once(n8n_at, user):
    refusal = chunk("error", content="signature refused - bad signature")
    with n8n_at(N8nStandin([refusal, ("end",)])):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.FAILED
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.attempts == 1  # final, like a 4xx: not retried
    assert task.status_message == TaskWords.REFUSED
    details = task.error_details
    assert (details["stage"], details["http_status"]) == ("dispatch", 200)
    assert "signature refused - bad signature" in details["error"]
    assert '"type": "error"' in details["body"]
    assert not Message.objects.filter(async_task=task, role=Role.ASSISTANT).exists()


def test_an_error_chunk_without_description_still_refuses(n8n_at, user):
    with n8n_at(N8nStandin([chunk("error", content=None), ("hang",)])):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.FAILED
        wait_closed()
    task.refresh_from_db()
    assert "no details given" in task.error_details["error"]


def test_a_refusal_after_the_dispatcher_stopped_waiting_fails_the_task_then(n8n_at, user, settings):
    settings.TASK_DISPATCH_READ_TIMEOUT = 0.3
    script = [("sleep", 1.0), chunk("error", content="signature refused - stale"), ("end",)]
    with n8n_at(N8nStandin(script)):
        task = chat_task(user)
        # No first line within the read time-out: taken as a stream for now.
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
        assert AsyncTask.objects.get(pk=task.pk).status == "processing"
        wait_for(
            lambda: AsyncTask.objects.get(pk=task.pk).status == "failed",
            timeout=5,
            what="the late refusal",
        )
        wait_closed()
    task.refresh_from_db()
    assert task.status_message == TaskWords.REFUSED
    assert "signature refused - stale" in task.error_details["error"]


def test_an_error_chunk_after_the_text_began_is_no_refusal(n8n_at, user):
    script = [chunk("begin"), item("Half"), chunk("error", content="the model failed"), ("end",)]
    with n8n_at(N8nStandin(script)):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
        wait_closed()
    task.refresh_from_db()
    # The workflow's own `failed` callback (or the timeout) decides.
    assert (task.status, task.partial_text) == ("processing", "Half")


def test_a_first_item_announcing_the_execution_id_is_bookkeeping_not_text(n8n_at, user):
    accept = item(json.dumps({"accepted": True, "executionId": "17"}), node="Accept")
    script = [chunk("begin"), accept, chunk("end"), chunk("begin"), item("Hello")]
    script += [item(' {"executionId": "not this one"}'), chunk("end"), ("end",)]
    with n8n_at(N8nStandin(script)):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
        wait_closed()
    task.refresh_from_db()
    assert task.n8n_execution_id == "17"
    assert task.partial_text == 'Hello {"executionId": "not this one"}'


def test_an_id_announced_after_the_task_was_stopped_elsewhere_asks_n8n_to_stop(
    n8n_at, user, settings, monkeypatch
):
    """Stop in another process (whose close cannot reach this stream) came
    between the answer's first line and its Accept item."""
    monkeypatch.setattr(streaming, "close", lambda task_id: False)
    monkeypatch.setattr(streaming, "ended_tasks", lambda task_ids: [])  # not noticed yet
    with FakeN8n([(200, {"status": "canceled"}, 0)]) as api:
        accept = item(json.dumps({"executionId": "31"}), node="Accept")
        with n8n_at(N8nStandin([chunk("begin"), ("sleep", 0.5), accept, ("hang",)])):
            settings.N8N_API_KEY = "the-api-key"
            task = chat_task(user)
            assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
            settings.N8N_BASE_URL = api.base_url  # n8n's API from now on
            lifecycle.cancel(task.pk, by="alice")
            answer = stop_answer(task.pk)
    assert [r["path"] for r in api.requests] == ["/api/v1/executions/31/stop"]
    assert answer["outcome"] == "stopped"
    assert AsyncTask.objects.get(pk=task.pk).n8n_execution_id == "31"


def test_a_late_processing_callback_of_a_task_stopped_before_its_id_stops_n8n(
    settings, user_client, client, user
):
    with FakeN8n([(200, {"status": "canceled"}, 0)]) as n8n:
        settings.N8N_BASE_URL, settings.N8N_API_KEY = n8n.base_url, "the-api-key"
        task = chat_task(user, status="processing")
        assert user_client.post(f"/tasks/{task.pk}/cancel/", **JSON).status_code == 200
        late = {"status": "processing", "current_step": "generating", "execution_id": 88}
        response = post_callback(client, task.pk, late)
        assert response.status_code == 409
        assert response.json()["status"] == "cancelled"
        answer = stop_answer(task.pk)
    assert [r["path"] for r in n8n.requests] == ["/api/v1/executions/88/stop"]
    assert (answer["outcome"], answer["execution_id"]) == ("stopped", "88")
    task.refresh_from_db()
    assert (task.status, task.n8n_execution_id, task.current_step) == ("cancelled", "88", "")
    assert not Message.objects.filter(async_task=task, role=Role.ASSISTANT).exists()


def test_a_late_callback_changes_no_execution_id_a_stopped_task_already_had(
    settings, user_client, client, user
):
    with FakeN8n([(404, {"message": "not found"}, 0)]) as n8n:
        settings.N8N_BASE_URL, settings.N8N_API_KEY = n8n.base_url, "k"
        task = chat_task(user, status="processing", n8n_execution_id="5")
        assert user_client.post(f"/tasks/{task.pk}/cancel/", **JSON).status_code == 200
        stop_answer(task.pk)
        late = {"status": "processing", "execution_id": "6"}
        assert post_callback(client, task.pk, late).status_code == 409
        late_completed = {"status": "completed", "output": {"content": "x"}, "execution_id": "7"}
        assert post_callback(client, task.pk, late_completed).status_code == 409
    assert [r["path"] for r in n8n.requests] == ["/api/v1/executions/5/stop"]
    assert AsyncTask.objects.get(pk=task.pk).n8n_execution_id == "5"


# --- with the reader off: the same request, its answer read whole ------------------


@pytest.fixture
def read_plainly(n8n_at, settings):
    """A stand-in n8n, dispatched to with TASK_STREAM_READER off."""

    def point(server):
        n8n_at(server)
        settings.TASK_STREAM_READER = False
        return server

    return point


def test_read_plainly_an_error_chunk_first_is_still_a_refusal(read_plainly, user):
    refusal = chunk("error", content="signature refused - bad signature")
    with read_plainly(N8nStandin([refusal, ("end",)])):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.FAILED
    task.refresh_from_db()
    assert (task.status, task.attempts) == ("failed", 1)
    assert task.status_message == TaskWords.REFUSED
    assert (task.error_details["stage"], task.error_details["http_status"]) == ("dispatch", 200)
    assert "signature refused - bad signature" in task.error_details["error"]
    assert streaming.open_count() == 0


def test_read_plainly_a_stream_is_accepted_with_its_announced_id_and_no_text(read_plainly, user):
    accept = item(json.dumps({"accepted": True, "executionId": "17"}), node="Accept")
    script = [chunk("begin"), accept, item("Hello"), chunk("end"), ("end",)]
    with read_plainly(N8nStandin(script)):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
    task.refresh_from_db()
    assert (task.status, task.n8n_execution_id, task.partial_text) == ("processing", "17", "")
    assert streaming.open_count() == 0


def test_read_plainly_a_chunked_plain_answer_is_classified_as_with_the_reader(read_plainly, user):
    with read_plainly(N8nStandin([("raw", '{"executionId": "42"}'), ("end",)])):
        task = chat_task(user)
        assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.DISPATCHED
    task.refresh_from_db()
    assert (task.status, task.n8n_execution_id) == ("processing", "42")
