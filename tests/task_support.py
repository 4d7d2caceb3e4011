"""Helpers for the tasks tests: a chat task with its message, callbacks, a
scripted n8n webhook on 127.0.0.1, and polling."""

import json
import re
import threading
import time

from django.urls import reverse
from pytest_httpserver import HTTPServer
from requests.structures import CaseInsensitiveDict
from werkzeug.wrappers import Response

from chat.models import Role
from tasks import callbacks
from tasks.models import AsyncTask
from tests import factories


def chat_task(user, text="hello there", **extra):
    """A conversation, its user message, and the message's pending chat task."""
    conversation = factories.conversation(user)
    extra.setdefault(
        "input_data",
        {
            "conversation_id": conversation.pk,
            "session_id": str(conversation.pk),
            "message": text,
            "history": [],
        },
    )
    task = factories.task(user, **extra)
    factories.message(conversation, text, role=Role.USER, async_task=task)
    return task


def webhook_url(task_id):
    return reverse("tasks:webhook", args=[task_id])


def auth(task_id):
    return {"HTTP_AUTHORIZATION": f"Bearer {callbacks.make_token(task_id)}"}


def post_callback(client, task_id, payload, token_for=None, raw=None, **extra):
    headers = auth(task_id if token_for is None else token_for)
    headers.update(extra)
    body = raw if raw is not None else json.dumps(payload)
    return client.post(webhook_url(task_id), data=body, content_type="application/json", **headers)


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_status(task_id, statuses, timeout=20.0):
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)

    def check():
        task = AsyncTask.objects.filter(pk=task_id).first()
        return task if task and task.status in statuses else None

    return wait_for(check, timeout, what=f"task {task_id} to be {statuses}")


class FakeN8n:
    """n8n's webhook played by a pytest-httpserver server of its own on 127.0.0.1,
    for scripts the plain `httpserver` fixture does not express in one line.

    `answers` is a list of (status, body-dict-or-text, delay_seconds) used in
    turn (the last one repeats). Every request is recorded before it is
    answered, as {"path", "headers", "body", "raw"}; `on_request(body)`, if
    given, runs before the answer (n8n calling back before it answers).
    The server listens from construction on (`base_url` is known at once)
    until the `with` block ends.

    Not everything fits pytest-httpserver: the streaming n8n of
    tests/standins.py writes a chunked body with pauses and holds
    hundreds of streams on one asyncio thread (werkzeug's threaded server would
    spend a thread per stream, which test_stream_reader counts), so it keeps
    its own server, as does the stand-in model the real n8n calls."""

    def __init__(self, answers, on_request=None):
        self.answers = list(answers)
        self.on_request = on_request
        self.requests = []
        self.lock = threading.Lock()
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile("/.*"), method="POST").respond_with_handler(
            self._answer
        )
        self.server.start()
        self.base_url = f"http://127.0.0.1:{self.server.port}"

    def _answer(self, request):
        raw = request.get_data()
        body = json.loads(raw) if raw else None  # n8n API calls may have no body
        with self.lock:
            self.requests.append(
                {
                    "path": request.path,
                    "headers": CaseInsensitiveDict(request.headers.items()),
                    "body": body,
                    "raw": raw,
                }
            )
            index = min(len(self.requests), len(self.answers)) - 1
            status, payload, delay = self.answers[index]
        if self.on_request is not None:
            self.on_request(body)
        if delay:
            time.sleep(delay)
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return Response(data, status=status, content_type="application/json")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.stop()
        if exc[0] is None:
            self.server.check()  # an unexpected request, or an error in on_request
