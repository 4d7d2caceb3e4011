"""Dispatch outcomes against n8n played by pytest-httpserver on 127.0.0.1."""

import json
import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from werkzeug.wrappers import Response

from tasks import callbacks, services
from tasks.models import AsyncTask, TaskWords
from tests import support
from tests.contract_names import DISPATCH_KEYS
from tests.task_support import chat_task

pytestmark = pytest.mark.django_db

WEBHOOK = "/webhook/chat-reply"


@pytest.fixture(params=[True, False], ids=["stream-reader", "read-plainly"])
def dispatch_settings(dispatch_settings, request):
    """Every dispatch outcome holds for both ways of reading the answer: the
    stream reader's loop, and the blocking client (TASK_STREAM_READER off)."""
    dispatch_settings.TASK_STREAM_READER = request.param
    return dispatch_settings


def answers(n8n, status, body, once=False):
    """n8n answers the chat workflow's webhook so (once, or from now on)."""
    expect = n8n.expect_oneshot_request if once else n8n.expect_request
    handler = expect(WEBHOOK, method="POST")
    if isinstance(body, str):
        handler.respond_with_data(body, status=status)
    else:
        handler.respond_with_json(body, status=status)


def received(n8n):
    return [request for request, _response in n8n.log]


def make_due(task):
    AsyncTask.objects.filter(pk=task.pk).update(next_attempt_at=timezone.now())


def test_dispatch_posts_the_contract_body_and_headers(dispatch_settings, fake_n8n, user):
    answers(fake_n8n, 200, {"message": "Workflow was started"})
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "dispatched"
    [request] = received(fake_n8n)
    assert request.path == WEBHOOK
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Idempotency-Key"] == f"task-{task.pk}"
    assert request.headers["Content-Type"] == "application/json"
    body = request.get_json()
    assert set(body) == DISPATCH_KEYS
    assert body["task_id"] == task.pk
    assert body["task_type"] == "chat"
    assert body["workflow_id"] == "chat-reply"
    assert body["input"] == task.input_data
    assert body["callback_url"] == f"http://app.example.test/tasks/{task.pk}/webhook/"
    assert callbacks.check_token(task.pk, body["callback_token"])
    assert not callbacks.check_token(task.pk + 1, body["callback_token"])
    assert body["timeout_seconds"] == dispatch_settings.TASK_TIMEOUT_SECONDS


def test_no_authorization_header_without_a_webhook_secret(dispatch_settings, fake_n8n, user):
    dispatch_settings.N8N_WEBHOOK_SECRET = ""
    answers(fake_n8n, 200, {})
    task = chat_task(user)
    services.claim_and_dispatch(task.pk)
    [request] = received(fake_n8n)
    assert "authorization" not in {name.lower() for name in request.headers.keys()}


@pytest.mark.parametrize("key", ["executionId", "execution_id"])
def test_2xx_with_an_execution_id_marks_processing_and_stores_it(
    dispatch_settings, fake_n8n, user, key
):
    answers(fake_n8n, 200, {key: 4711})
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "dispatched"
    task.refresh_from_db()
    assert (task.status, task.current_step) == ("processing", "dispatched")
    assert task.n8n_execution_id == "4711"
    assert task.processing_started_at is not None
    assert task.claimed_until is None
    assert task.attempts == 1
    assert task.metadata["attempts"][0]["outcome"] == "accepted"


def test_2xx_without_an_execution_id_marks_processing(dispatch_settings, fake_n8n, user):
    answers(fake_n8n, 202, "Workflow was started")
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "dispatched"
    task.refresh_from_db()
    assert (task.status, task.current_step, task.n8n_execution_id) == (
        "processing",
        "dispatched",
        "",
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_4xx_fails_the_task_at_once_with_error_details(dispatch_settings, fake_n8n, user, status):
    body = {"code": 404, "message": 'The requested webhook "POST chat-reply" is not registered.'}
    answers(fake_n8n, status, body)
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "failed"
    make_due(task)
    assert services.claim_and_dispatch(task.pk) is None  # never retried
    assert len(received(fake_n8n)) == 1
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.error_details["stage"] == "dispatch"
    assert task.error_details["http_status"] == status
    assert "is not registered" in task.error_details["body"]
    # Plain words for the user; the technical reason only in the admin's fields.
    assert task.status_message == TaskWords.REFUSED
    assert task.processing_completed_at is not None
    assert str(status) in task.last_error


def test_5xx_then_success_retries_with_backoff(dispatch_settings, fake_n8n, user):
    answers(fake_n8n, 503, {"message": "busy"}, once=True)
    answers(fake_n8n, 200, {"executionId": "8"})
    task = chat_task(user)
    before = timezone.now()
    assert services.claim_and_dispatch(task.pk) == "retry"
    task.refresh_from_db()
    assert task.status == "pending"
    assert task.next_attempt_at > before
    assert "503" in task.last_error
    # What is true: n8n answered, with an error; which attempt comes next of how many.
    assert task.status_message == TaskWords.retrying(answered=True, attempt=2, attempts=3)
    assert task.status_message == (
        "The assistant's service answered with an error; trying again (2 of 3)…"
    )
    make_due(task)
    assert services.claim_and_dispatch(task.pk) == "dispatched"
    assert len(received(fake_n8n)) == 2
    task.refresh_from_db()
    assert (task.status, task.attempts, task.n8n_execution_id) == ("processing", 2, "8")
    assert [a["outcome"] for a in task.metadata["attempts"]] == ["retryable", "accepted"]
    assert task.last_error == ""


def test_a_retry_is_not_due_before_its_backoff(dispatch_settings, fake_n8n, user):
    dispatch_settings.TASK_DISPATCH_BACKOFF_SECONDS = 60
    answers(fake_n8n, 500, {})
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "retry"
    assert services.claim_and_dispatch(task.pk) is None
    assert len(received(fake_n8n)) == 1


def test_5xx_on_every_try_fails_after_the_last_attempt(dispatch_settings, fake_n8n, user):
    answers(fake_n8n, 502, "Bad gateway")
    task = chat_task(user)
    outcomes = []
    for _ in range(3):
        outcomes.append(services.claim_and_dispatch(task.pk))
        make_due(task)
    assert services.claim_and_dispatch(task.pk) is None
    assert outcomes == ["retry", "retry", "failed"]
    assert len(received(fake_n8n)) == 3
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.error_details["http_status"] == 502
    assert task.error_details["attempts"] == 3
    assert task.status_message == TaskWords.ANSWERED_WITH_ERROR
    assert len(task.metadata["attempts"]) == 3


def test_a_read_time_out_is_retried_then_fails(dispatch_settings, fake_n8n, user):
    dispatch_settings.TASK_DISPATCH_MAX_ATTEMPTS = 2
    dispatch_settings.TASK_DISPATCH_READ_TIMEOUT = 0.2

    def too_late(request):
        time.sleep(1.0)
        return Response("{}", content_type="application/json")

    fake_n8n.expect_request(WEBHOOK, method="POST").respond_with_handler(too_late)
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "retry"
    task.refresh_from_db()
    assert "no answer within" in task.last_error
    make_due(task)
    assert services.claim_and_dispatch(task.pk) == "failed"
    task.refresh_from_db()
    assert task.status == "failed"
    assert task.error_details["kind"] == "timeout"
    assert task.error_details["http_status"] is None


def test_a_connection_error_is_retried_then_fails_with_a_clear_error(dispatch_settings, user):
    dispatch_settings.N8N_BASE_URL = f"http://127.0.0.1:{support.free_port()}"
    dispatch_settings.TASK_DISPATCH_MAX_ATTEMPTS = 2
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "retry"
    task.refresh_from_db()
    assert task.status_message == (
        "The assistant's service could not be reached; trying again (2 of 2)…"
    )
    make_due(task)
    assert services.claim_and_dispatch(task.pk) == "failed"
    task.refresh_from_db()
    assert task.error_details["kind"] == "connection"
    assert "could not connect to http://127.0.0.1:" in task.error_details["error"]
    assert task.status_message == TaskWords.UNREACHABLE
    assert "127.0.0.1" not in task.status_message


def test_the_attempt_history_is_bounded(dispatch_settings, fake_n8n, user):
    dispatch_settings.TASK_DISPATCH_MAX_ATTEMPTS = 100
    answers(fake_n8n, 500, {})
    task = chat_task(user)
    for _ in range(services.ATTEMPT_HISTORY_MAX + 3):
        services.claim_and_dispatch(task.pk)
        make_due(task)
    task.refresh_from_db()
    assert len(task.metadata["attempts"]) == services.ATTEMPT_HISTORY_MAX
    assert task.metadata["attempts"][-1]["attempt"] == services.ATTEMPT_HISTORY_MAX + 3


def test_backoff_grows_exponentially_with_jitter(settings):
    settings.TASK_DISPATCH_BACKOFF_SECONDS = 1.0
    settings.TASK_DISPATCH_BACKOFF_MAX_SECONDS = 300.0
    for attempt, full in [(1, 1), (2, 2), (3, 4), (6, 32), (20, 300)]:
        delays = {services.backoff_seconds(attempt) for _ in range(20)}
        assert all(full / 2 <= d <= full for d in delays)
        assert len(delays) > 1  # jitter


# --- claims ------------------------------------------------------------------------------------


def test_a_task_is_claimed_once(user):
    task = chat_task(user)
    assert services.claim(task.pk)
    assert not services.claim(task.pk)
    task.refresh_from_db()
    assert task.attempts == 1
    assert task.claimed_until > timezone.now()


def test_a_lapsed_claim_can_be_taken_again(user):
    task = chat_task(user)
    assert services.claim(task.pk)
    later = timezone.now() + timedelta(seconds=3600)
    assert services.claim(task.pk, now=later)


def test_only_pending_tasks_are_claimed(user):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(status="processing")
    assert not services.claim(task.pk)


def test_create_task_dispatches_only_after_the_commit(user, django_capture_on_commit_callbacks):
    from chat.replies.tasktypes import CHAT

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        task = services.create_task(user=user, task_type=CHAT, input_data={"message": "hi"})
    assert task.status == "pending"
    assert task.attempts == 0  # nothing was sent inside the transaction
    assert len(callbacks) >= 1


def test_create_task_refuses_an_unknown_type(user):
    with pytest.raises(ValueError):
        services.create_task(user=user, task_type="nope", input_data={})
    assert not AsyncTask.objects.exists()


def test_credentials_in_the_n8n_url_never_reach_the_task(dispatch_settings, user):
    port = support.free_port()
    dispatch_settings.N8N_BASE_URL = f"http://operator:hunter2@127.0.0.1:{port}"
    dispatch_settings.TASK_DISPATCH_MAX_ATTEMPTS = 1
    task = chat_task(user)
    assert services.claim_and_dispatch(task.pk) == "failed"
    task.refresh_from_db()
    stored = json.dumps([task.status_message, task.last_error, task.error_details, task.metadata])
    assert f"127.0.0.1:{port}" in task.last_error
    assert "hunter2" not in stored
    assert "operator" not in stored


def test_without_an_attempt_cap_dispatch_retries_until_the_deadline(
    dispatch_settings, fake_n8n, user
):
    dispatch_settings.TASK_DISPATCH_MAX_ATTEMPTS = 0
    dispatch_settings.TASK_DISPATCH_BACKOFF_SECONDS = 10
    dispatch_settings.TASK_DISPATCH_BACKOFF_MAX_SECONDS = 10
    dispatch_settings.TASK_TIMEOUT_SECONDS = 120
    answers(fake_n8n, 503, {})
    task = chat_task(user)
    outcomes = []
    for _ in range(30):
        outcome = services.claim_and_dispatch(task.pk)
        if outcome is None:
            break
        outcomes.append(outcome)
        # Time passes: the next attempt is due now.
        AsyncTask.objects.filter(pk=task.pk).update(
            next_attempt_at=timezone.now(),
            created_at=F("created_at") - timedelta(seconds=10),
        )
    # Backoff 5-10 s per try until 30 s before the 120 s deadline (kept for the
    # workflow's own work): many tries, the last one at that limit, then one failure.
    assert outcomes[-1] == "failed"
    assert outcomes.count("retry") >= 8
    task.refresh_from_db()
    assert task.status_message == TaskWords.ANSWERED_WITH_ERROR
    assert task.error_details["attempts"] == len(outcomes)


def test_the_last_retry_is_kept_early_enough_for_the_workflow(dispatch_settings, fake_n8n, user):
    dispatch_settings.TASK_DISPATCH_MAX_ATTEMPTS = 0
    dispatch_settings.TASK_DISPATCH_BACKOFF_SECONDS = 60
    dispatch_settings.TASK_DISPATCH_BACKOFF_MAX_SECONDS = 60
    dispatch_settings.TASK_TIMEOUT_SECONDS = 120
    answers(fake_n8n, 503, {})
    task = chat_task(user)
    # 80 s old: a 30-60 s backoff would pass the last useful moment (90 s):
    # the retry is moved to it instead of being given up.
    AsyncTask.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(seconds=80))
    assert services.claim_and_dispatch(task.pk) == "retry"
    task.refresh_from_db()
    assert task.next_attempt_at <= task.created_at + timedelta(seconds=90)
    # Past that moment, no further try: a visible failure, not a late reply.
    AsyncTask.objects.filter(pk=task.pk).update(
        created_at=timezone.now() - timedelta(seconds=91), next_attempt_at=timezone.now()
    )
    assert services.claim_and_dispatch(task.pk) == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_request_dispatches_only_once_its_response_is_sent(user, client, monkeypatch):
    # The send's commit asks for the dispatch; the pool gets it when the
    # response is closed (after it was handed over), once.
    from chat.models import Conversation
    from tasks.outbound import dispatch

    submitted = []
    seen_by_view = []
    monkeypatch.setattr(dispatch, "_submit_dispatch", submitted.append)
    from chat.views import messages

    real_sent = messages._sent

    def sent(request, conversation, message, status=201):
        seen_by_view.append(list(submitted))  # after the commit, before the response
        return real_sent(request, conversation, message, status)

    monkeypatch.setattr("chat.views.messages._sent", sent)
    client.force_login(user)
    conversation = Conversation.objects.create(user=user)
    response = client.post(
        f"/chat/{conversation.pk}/messages/", {"content": "hi"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 201
    assert seen_by_view == [[]]
    assert submitted == [response.json()["task"]["id"]]


def test_outside_a_request_a_dispatch_goes_to_the_pool_at_once(user, monkeypatch):
    from django.http import HttpResponse

    from tasks.outbound import dispatch

    submitted = []
    monkeypatch.setattr(dispatch, "_submit_dispatch", submitted.append)
    dispatch.schedule_dispatch(7)
    assert submitted == [7]

    def view(request):
        assert dispatch.schedule_dispatch(8) is None
        assert submitted == [7]
        return HttpResponse()

    response = dispatch.DispatchAfterResponseMiddleware(view)(None)
    assert submitted == [7]  # held until the server closes the response
    dispatch.schedule_dispatch(9)  # after the request: at once again
    assert submitted == [7, 9]
    response.close()
    assert submitted == [7, 9, 8]
    response.close()  # a second close hands over nothing again
    assert submitted == [7, 9, 8]


@pytest.mark.django_db(transaction=True)
def test_under_asgi_a_send_dispatches_only_once_its_response_is_sent(user, client, monkeypatch):
    """The send through the ASGI application, as Daphne runs it: Django sends
    `request_started` from a task of its own there, so nothing the request
    thread sees may depend on it. The pool gets the dispatch after the
    response's last byte went to the server."""
    from asgiref.sync import async_to_sync
    from channels.testing import HttpCommunicator

    from chat.models import Conversation
    from chatproject.asgi import application
    from tasks.outbound import dispatch

    order = []
    monkeypatch.setattr(dispatch, "_submit_dispatch", lambda task_id: order.append(task_id))

    async def app(scope, receive, send):
        async def watched(message):
            if message["type"] == "http.response.body" and not message.get("more_body"):
                order.append("response")
            await send(message)

        await application(scope, receive, watched)

    client.force_login(user)
    conversation = Conversation.objects.create(user=user)
    token = "a" * 32
    cookie = f"sessionid={client.cookies['sessionid'].value}; csrftoken={token}"
    communicator = HttpCommunicator(
        app,
        "POST",
        f"/chat/{conversation.pk}/messages/",
        body=b"content=hi",
        headers=[
            (b"host", b"127.0.0.1"),
            (b"cookie", cookie.encode()),
            (b"x-csrftoken", token.encode()),
            (b"accept", b"application/json"),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ],
    )
    response = async_to_sync(communicator.get_response)(timeout=10)
    assert response["status"] == 201, response["body"][:300]
    task_id = conversation.messages.get().async_task_id
    assert order == ["response", task_id]
