"""The task system is generic: a throwaway type rides the same rails as chat."""

import ast

import pytest

from tasks import registry, services
from tasks.models import AsyncTask
from tests import support
from tests.task_support import post_callback


@pytest.fixture
def echo_type(settings):
    calls = []
    settings.PUBLIC_BASE_URL = "http://app.example.test"
    kind = registry.register(
        registry.TaskType(
            name="echo",
            workflow="echo-flow",
            timeout_seconds=lambda: 7,
            on_completed=lambda task: calls.append(("completed", task.pk, task.output_data)),
            on_failed=lambda task: calls.append((task.status, task.pk, task.error_details)),
            valid_output=lambda output: isinstance(output, dict) and "echo" in output,
        )
    )
    yield kind, calls
    registry.unregister("echo")


@pytest.mark.django_db
def test_a_second_type_is_dispatched_to_its_own_workflow(echo_type, fake_n8n, user):
    webhook = fake_n8n.expect_request("/webhook/echo-flow", method="POST")
    webhook.respond_with_json({"executionId": "e1"})
    task = services.create_task(user=user, task_type="echo", input_data={"x": 1})
    assert services.claim_and_dispatch(task.pk) == "dispatched"
    [(request, _response)] = fake_n8n.log
    assert request.path == "/webhook/echo-flow"
    body = request.get_json()
    assert body["task_type"] == "echo"
    assert body["timeout_seconds"] == 7
    assert body["input"] == {"x": 1}


@pytest.mark.django_db
def test_its_hooks_run_on_completion_and_its_output_rule_applies(echo_type, user, client):
    _, calls = echo_type
    task = services.create_task(user=user, task_type="echo", input_data={})
    refused = post_callback(client, task.pk, {"status": "completed", "output": {"other": 1}})
    assert refused.status_code == 400
    assert calls == []
    done = post_callback(client, task.pk, {"status": "completed", "output": {"echo": "hi"}})
    assert done.status_code == 200
    assert calls == [("completed", task.pk, {"echo": "hi"})]
    post_callback(client, task.pk, {"status": "completed", "output": {"echo": "again"}})
    assert len(calls) == 1  # an idempotent repeat runs no hook


@pytest.mark.django_db
def test_its_failure_hook_runs_for_failed_and_timeout(echo_type, user, client):
    from datetime import timedelta

    from django.utils import timezone

    _, calls = echo_type
    failing = services.create_task(user=user, task_type="echo", input_data={})
    post_callback(client, failing.pk, {"status": "failed", "error": "nope"})
    late = services.create_task(user=user, task_type="echo", input_data={})
    AsyncTask.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(seconds=8))
    assert services.expire_overdue() == 1  # its own 7 s timeout, not the chat one
    assert calls[0] == ("failed", failing.pk, "nope")
    assert calls[1][:2] == ("timeout", late.pk)


@pytest.mark.django_db
def test_an_unregistered_type_still_gets_callbacks_applied(user, client):
    task = AsyncTask.objects.create(task_type="legacy", workflow_id="x", created_by=user)
    response = post_callback(client, task.pk, {"status": "completed", "output": {"a": 1}})
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.output_data == {"a": 1}


def test_the_tasks_app_never_imports_chat():
    root = support.BASE_DIR / "tasks"
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "chat"]
    assert offenders == []
