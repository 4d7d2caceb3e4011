"""Helpers for the tasks tests: a chat task with its message, callbacks, a real
HTTP server on 127.0.0.1 standing in for n8n's webhook, and polling."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.urls import reverse

from chat.models import Role
from tasks import tokens
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
    return {"HTTP_AUTHORIZATION": f"Bearer {tokens.make_token(task_id)}"}


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
    """A real HTTP server on 127.0.0.1 answering dispatches as told.

    `answers` is a list of (status, body-dict-or-text, delay_seconds) used in
    turn (the last one repeats). Every request is recorded; `on_request(body)`,
    if given, runs before the answer (n8n calling back before it answers)."""

    def __init__(self, answers, on_request=None):
        self.answers = list(answers)
        self.on_request = on_request  # on_request(body) runs before the answer
        self.requests = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else None  # n8n API calls may have no body
                with fake.lock:
                    fake.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "raw": raw,
                        }
                    )
                    index = min(len(fake.requests), len(fake.answers)) - 1
                    status, payload, delay = fake.answers[index]
                if fake.on_request is not None:
                    fake.on_request(body)
                if delay:
                    time.sleep(delay)
                data = payload if isinstance(payload, str) else json.dumps(payload)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data.encode())))
                    self.end_headers()
                    self.wfile.write(data.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
