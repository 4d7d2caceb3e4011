"""POST /tasks/{id}/webhook/ refused: every answer other than 200 (400, 401,
404, 405, 409, 413), each JSON, and none changes the task."""

import json

import pytest

from tasks.models import AsyncTask
from tests import factories
from tests.task_support import auth, chat_task, post_callback, webhook_url
from tests.tasks.test_webhook import COMPLETED, assistant_messages, snapshot

pytestmark = pytest.mark.django_db


# --- 400 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("this is not json", "not JSON"),
        ("[1, 2]", "not an object"),
        ('"completed"', "not an object"),
        (json.dumps({"status": "done"}), "unknown status"),
        (json.dumps({"status": "timeout"}), "timeout is not a callback status"),
        (json.dumps({}), "missing status"),
        (json.dumps({"status": "processing", "current_step": 3}), "step of the wrong type"),
        (json.dumps({"status": "processing", "status_message": ["x"]}), "message wrong type"),
        (json.dumps({"status": "processing", "execution_id": {"id": 1}}), "execution id type"),
        (json.dumps({"status": "failed", "error": 42}), "error of the wrong type"),
        (json.dumps({"status": "completed"}), "completed without output"),
        (json.dumps({"status": "completed", "output": {"content": "  "}}), "blank content"),
        (json.dumps({"status": "completed", "output": {"thinking": "x"}}), "no content"),
        (json.dumps({"status": "completed", "output": 12}), "output of the wrong type"),
        (json.dumps({"status": "processing", "current_step": "x" * 256}), "step too long"),
    ],
)
def test_bad_body_answers_400_and_changes_nothing(client, user, raw, reason):
    task = chat_task(user)
    before = snapshot(task)
    response = post_callback(client, task.pk, None, raw=raw)
    assert response.status_code == 400, reason
    assert "error" in response.json()
    assert snapshot(task) == before
    assert not assistant_messages(task).exists()


# --- 401 ----------------------------------------------------------------------------------


def test_missing_token_answers_401(client, user):
    task = chat_task(user)
    response = client.post(
        webhook_url(task.pk), data=json.dumps(COMPLETED), content_type="application/json"
    )
    assert response.status_code == 401
    assert "error" in response.json()
    assert snapshot(task)[0] == "pending"


def test_wrong_token_answers_401(client, user):
    task = chat_task(user)
    response = client.post(
        webhook_url(task.pk),
        data=json.dumps(COMPLETED),
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer not-the-token",
    )
    assert response.status_code == 401
    assert snapshot(task)[0] == "pending"


def test_token_in_another_scheme_answers_401(client, user):
    task = chat_task(user)
    token = auth(task.pk)["HTTP_AUTHORIZATION"].split()[1]
    response = client.post(
        webhook_url(task.pk),
        data=json.dumps(COMPLETED),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Basic {token}",
    )
    assert response.status_code == 401


def test_token_of_task_a_is_refused_for_task_b(client, user, other_user):
    task_a = chat_task(user)
    task_b = chat_task(other_user)
    response = post_callback(client, task_b.pk, COMPLETED, token_for=task_a.pk)
    assert response.status_code == 401
    assert snapshot(task_b)[0] == "pending"
    assert not assistant_messages(task_b).exists()
    # and it still works for its own task
    assert post_callback(client, task_a.pk, COMPLETED).status_code == 200


# --- 404 ----------------------------------------------------------------------------------


def test_unknown_task_answers_404_before_the_token_or_the_body_is_checked(client, user):
    missing = chat_task(user).pk + 1000
    with_token = auth(missing)  # a token valid for the missing id
    for body in ("not json", json.dumps(COMPLETED), "[]"):
        for headers in ({}, with_token):
            response = client.post(
                webhook_url(missing), data=body, content_type="application/json", **headers
            )
            assert response.status_code == 404, (body, headers)
            assert "error" in response.json()


# --- 405 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_methods_other_than_post_answer_405_json(client, user, method):
    task = chat_task(user)
    response = getattr(client, method)(webhook_url(task.pk), **auth(task.pk))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "error" in response.json()


# --- 409 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("terminal", ["completed", "failed", "timeout"])
def test_another_status_for_a_terminal_task_answers_409_with_its_status(client, user, terminal):
    task = chat_task(user)
    AsyncTask.objects.filter(pk=task.pk).update(status=terminal)
    before = snapshot(task)
    for status in {"processing", "completed", "failed"} - {terminal}:
        payload = COMPLETED if status == "completed" else {"status": status, "error": "late"}
        response = post_callback(client, task.pk, payload)
        assert response.status_code == 409
        assert response.json()["status"] == terminal
        assert "error" in response.json()
    assert snapshot(task) == before
    assert not assistant_messages(task).exists()


# --- 413 ----------------------------------------------------------------------------------


def test_body_over_the_limit_answers_413_json(client, user, settings):
    settings.TASK_WEBHOOK_MAX_BYTES = 200
    task = chat_task(user)
    payload = {"status": "completed", "output": {"content": "x" * 500}}
    response = post_callback(client, task.pk, payload)
    assert response.status_code == 413
    assert "error" in response.json()
    assert snapshot(task)[0] == "pending"


def test_body_just_under_the_limit_is_accepted(client, user, settings):
    payload = {"status": "completed", "output": {"content": "x" * 100}}
    settings.TASK_WEBHOOK_MAX_BYTES = len(json.dumps(payload))
    task = chat_task(user)
    assert post_callback(client, task.pk, payload).status_code == 200


# --- every answer ------------------------------------------------------------------------


def test_every_webhook_answer_is_json(client, user, settings):
    settings.TASK_WEBHOOK_MAX_BYTES = 200
    task = factories.task(user, input_data={"conversation_id": 1})
    url = f"/tasks/{task.pk}/webhook/"
    token = auth(task.pk)

    def post(payload, **extra):
        data = payload if isinstance(payload, str) else json.dumps(payload)
        return client.post(url, data=data, content_type="application/json", **extra)

    answers = {
        401: post({"status": "processing"}),
        404: client.post(
            "/tasks/999999/webhook/", data="{}", content_type="application/json", **token
        ),
        405: client.get(url, **token),
        413: post({"status": "processing", "status_message": "x" * 300}, **token),
        400: post({"status": "processing", "current_step": 5}, **token),
        200: post({"status": "failed", "error": "boom"}, **token),
    }
    answers[409] = post({"status": "processing"}, **token)
    for status, response in answers.items():
        assert response.status_code == status
        assert response["Content-Type"].startswith("application/json"), status
        assert isinstance(response.json(), dict), status
    assert answers[200].json() == {"task_id": task.pk, "status": "failed"}
    assert answers[409].json()["status"] == "failed"
    assert "error" in answers[409].json()
