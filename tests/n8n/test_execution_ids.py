"""An execution id is at most 64 characters of [0-9A-Za-z_-]; anything else
from n8n is ignored: never stored, never put in an n8n API path."""

import json

import pytest

from n8n import chunks, webhooks
from n8n.api import N8nApi, N8nApiError
from n8n.executions import execution_id, execution_id_of
from tasks.models import AsyncTask
from tests.task_support import chat_task, post_callback

TRAVERSAL = "../../workflows/WF1/deactivate?x="


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123", "123"),
        (42, "42"),
        ("run_7-b", "run_7-b"),
        ("x" * 64, "x" * 64),
        ("x" * 65, ""),
        (TRAVERSAL, ""),
        ("12/stop", ""),
        ("", ""),
        (True, ""),
        (None, ""),
        (1.5, ""),
        ({"id": 1}, ""),
    ],
)
def test_only_a_short_id_of_safe_characters_is_an_execution_id(value, expected):
    assert execution_id(value) == expected


def test_every_reader_uses_the_same_rule():
    assert execution_id_of({"executionId": TRAVERSAL, "execution_id": "9"}) == "9"
    assert webhooks.classify(200, json.dumps({"executionId": TRAVERSAL})).execution_id == ""
    assert webhooks.classify(200, json.dumps({"executionId": 17})).execution_id == "17"
    assert chunks.announced_execution_id(json.dumps({"executionId": TRAVERSAL})) == ""
    assert chunks.announced_execution_id(json.dumps({"executionId": "31"})) == "31"


def test_the_api_refuses_an_id_that_would_change_the_path_before_any_request():
    class NoClient:
        def request(self, *args, **kwargs):  # pragma: no cover - must not be reached
            raise AssertionError("a request was made")

    api = N8nApi("http://127.0.0.1:9", "key", client=NoClient())
    for call in (api.stop_execution, api.get_execution):
        with pytest.raises(N8nApiError) as refused:
            call(TRAVERSAL)
        assert "not an execution id" in refused.value.reason


@pytest.mark.django_db
def test_a_callback_with_a_malformed_execution_id_is_applied_without_it(client, user):
    task = chat_task(user)
    answer = post_callback(
        client, task.pk, {"status": "processing", "execution_id": TRAVERSAL, "current_step": "x"}
    )
    assert answer.status_code == 200
    task = AsyncTask.objects.get(pk=task.pk)
    assert (task.status, task.current_step, task.n8n_execution_id) == ("processing", "x", "")


@pytest.mark.django_db
def test_a_callback_execution_id_of_the_wrong_type_is_still_a_bad_request(client, user):
    task = chat_task(user)
    answer = post_callback(client, task.pk, {"status": "processing", "execution_id": [1]})
    assert answer.status_code == 400
