"""Every write of `async_tasks` comes from one module, tasks/door.py.

A task's whole life is run the ways the app runs it (created by a send,
dispatched, streamed pieces, callbacks, completed; another stopped; another
timed out by the worker; one dispatched again by an operator) while every SQL
statement is watched: each INSERT or UPDATE of the table must have been made
by code of tasks/door.py (the nearest frame of the project's own code).
"""

import re
import traceback
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from chat import services as chat_services
from chat.models import Conversation
from tasks import lifecycle
from tasks.models import AsyncTask
from tasks.outbound import dispatch
from tests.support import BASE_DIR
from tests.task_support import FakeN8n, post_callback

ROOT = BASE_DIR
PRODUCT = ("accounts", "chat", "chatproject", "live", "n8n", "observability", "tasks")
WRITES = re.compile(r'^\s*(WITH\b.*?\(\s*)?(INSERT\s+INTO|UPDATE)\s+"?async_tasks"?\s', re.I | re.S)


def _writer():
    """The project module nearest to the statement being executed, past the
    model's own `update_returning` helper (which only the door calls)."""
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename).resolve()
        try:
            relative = path.relative_to(ROOT)
        except ValueError:
            continue
        if relative.parts[0] in PRODUCT and str(relative) != "tasks/models.py":
            return str(relative)
    return "?"


@pytest.fixture
def writers():
    seen = []

    def watch(execute, sql, params, many, context):
        if WRITES.match(sql):
            seen.append(_writer())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        yield seen


@pytest.mark.django_db(transaction=True)
def test_only_the_door_writes_async_tasks(writers, dispatch_settings, user, client):
    client.force_login(user)
    with FakeN8n([(200, {"executionId": "5"}, 0)] * 4) as n8n:
        dispatch_settings.N8N_BASE_URL = n8n.base_url
        conversation = Conversation.objects.create(user=user)
        task = chat_services.send_message(user, conversation, "hello").async_task
        dispatch.claim_and_dispatch(task.pk)
        post_callback(client, task.pk, {"status": "processing", "delta": "Hel"})
        post_callback(client, task.pk, {"status": "processing", "current_step": "writing"})
        post_callback(client, task.pk, {"status": "completed", "output": {"content": "Hello"}})

        second = chat_services.send_message(user, conversation, "again").async_task
        lifecycle.cancel(second.pk, by="alice")

        third = chat_services.send_message(user, conversation, "and again").async_task
        AsyncTask.objects.filter(pk=third.pk).update(created_at=timezone.now() - timedelta(days=1))
        lifecycle.expire_overdue()
        lifecycle.dispatch_again(third.pk)

    product_writes = [w for w in writers if w != "?"]
    assert writers.count("?") == 1  # the test's own backdating, made from no project module
    assert len(product_writes) >= 8
    assert set(product_writes) == {"tasks/door.py"}, product_writes


def test_only_the_door_calls_the_models_update_returning():
    callers = sorted(
        str(path.relative_to(ROOT))
        for package in PRODUCT
        for path in (ROOT / package).rglob("*.py")
        if ".update_returning(" in path.read_text()
    )
    assert callers == ["tasks/door.py"]
