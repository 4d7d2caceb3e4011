"""Property-based tests of the webhook: whatever the body, headers or content
type, the answer is never a 5xx, and a 4xx changes nothing.

Examples are bounded (HYPOTHESIS_MAX_EXAMPLES, default 60 per test) so that
`make test` stays fast; raise it for a longer hunt.
"""

import json
import os

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.models import Message
from tasks.models import AsyncTask
from tests.task_support import auth, chat_task, webhook_url

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "60")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NASTY_STRINGS = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202eevil",
    "\ufeff",
    "\u200b\u200d",
    "𝕏" * 3,
    "e\u0301" * 20,
    "<script>alert(1)</script>",
    "{{ settings.SECRET_KEY }}",
    "%s%s%n",
    "x" * 5000,
]
strings = st.text(max_size=40) | st.sampled_from(NASTY_STRINGS)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | strings
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4)
    ),
    max_leaves=20,
)


def deep(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


callback_bodies = st.fixed_dictionaries(
    {"status": st.sampled_from(["processing", "completed", "failed", "timeout", "bogus", 7])},
    optional={
        "current_step": json_values,
        "status_message": json_values,
        "execution_id": json_values,
        "output": json_values
        | st.fixed_dictionaries({"content": strings}, optional={"thinking": strings}),
        "error": json_values,
        "delta": json_values,
    },
)


def encode(value):
    # allow_nan writes NaN/Infinity, which JSON parsers commonly accept.
    return json.dumps(value, allow_nan=True)


raw_bodies = (
    callback_bodies.map(encode)
    | json_values.map(encode)
    | st.integers(min_value=1, max_value=3000).map(deep)
    | st.integers(min_value=1, max_value=3000).map(
        lambda n: '{"status": "completed", "output": ' + deep(n, '{"content": "x"}') + "}"
    )
    | st.sampled_from(
        [
            '{"status": "completed", "output": {"content": "x", "n": 1e400}}',
            '{"status": "completed", "output": {"content": "x", "n": -Infinity}}',
            '{"status": "failed", "error": NaN}',
            '{"status": "processing", "execution_id": ' + "9" * 5000 + "}",
            '{"status": "processing", "status_message": "\\u0000"}',
            '{"status": "processing", "\\ud800": 1}',
            '{"status": "processing"',
            "",
            "null",
        ]
    )
    | st.binary(max_size=200)
)


def snapshot(task_id):
    task = AsyncTask.objects.get(pk=task_id)
    messages = list(
        Message.objects.filter(conversation_id=task.input_data["conversation_id"]).values_list(
            "pk", "content"
        )
    )
    return (
        task.status,
        task.version,
        task.current_step,
        task.status_message,
        task.output_data,
        task.error_details,
        task.n8n_execution_id,
        messages,
    )


def check_answer(client, owner_client, task, response, before):
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    if response.status_code >= 400:
        assert snapshot(task.pk) == before, "a refused callback changed something"
        return
    # Accepted: every page that shows the task must still render.
    conversation_id = task.input_data["conversation_id"]
    assert owner_client.get(f"/tasks/{task.pk}/").status_code == 200
    assert owner_client.get(f"/chat/{conversation_id}/").status_code == 200


@pytest.fixture
def owner_client(user):
    client = Client()
    client.force_login(user)
    return client


@FUZZ
@given(body=raw_bodies)
def test_no_body_gets_a_5xx_and_a_refused_one_changes_nothing(client, owner_client, user, body):
    task = chat_task(user)
    before = snapshot(task.pk)
    response = client.post(
        webhook_url(task.pk), data=body, content_type="application/json", **auth(task.pk)
    )
    check_answer(client, owner_client, task, response, before)


@FUZZ
@given(
    body=callback_bodies.map(encode),
    authorization=st.sampled_from(["good", "missing", "other task", "garbage"]) | strings,
    content_type=st.sampled_from(
        ["application/json", "text/plain", "", "application/json; charset=latin-1"]
    )
    | st.text(max_size=30),
    content_length=st.none() | st.sampled_from(["-1", "abc", "0", "99999999999999999999"]),
)
def test_no_headers_get_a_5xx_and_a_refused_request_changes_nothing(
    client, owner_client, user, body, authorization, content_type, content_length
):
    task = chat_task(user)
    before = snapshot(task.pk)
    headers = {}
    if authorization == "good":
        headers = auth(task.pk)
    elif authorization == "other task":
        headers = auth(task.pk + 1)
    elif authorization != "missing":
        headers = {"HTTP_AUTHORIZATION": f"Bearer {authorization}"}
    if content_length is not None:
        headers["CONTENT_LENGTH"] = content_length
    response = client.post(webhook_url(task.pk), data=body, content_type=content_type, **headers)
    check_answer(client, owner_client, task, response, before)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"status": "processing", "status_message": "a\\u0000b"}', "NUL"),
        ('{"status": "processing", "status_message": "\\ud800"}', "surrogate"),
        ('{"status": "processing", "\\udfff": 1}', "surrogate"),
        ('{"status": "failed", "error": NaN}', "finite"),
        ('{"status": "failed", "error": {"n": Infinity}}', "finite"),
        ('{"status": "failed", "error": {"n": 1e400}}', "finite"),
        ('{"status": "failed", "error": {"n": ' + deep(31) + "}}", "nested deeper than 32"),
        ('{"status": "failed", "error": ' + deep(100_000) + "}", "nested deeper than 32"),
    ],
)
def test_each_unstorable_value_gets_400_saying_why(client, user, body, words):
    task = chat_task(user)
    before = snapshot(task.pk)
    response = client.post(
        webhook_url(task.pk), data=body, content_type="application/json", **auth(task.pk)
    )
    assert response.status_code == 400
    assert words in response.json()["error"]
    assert snapshot(task.pk) == before


def test_nesting_up_to_the_limit_is_applied(client, user):
    task = chat_task(user)
    # The body is level 1, `error` level 2, the innermost list level 32.
    body = '{"status": "failed", "error": {"n": ' + deep(30) + "}}"
    response = client.post(
        webhook_url(task.pk), data=body, content_type="application/json", **auth(task.pk)
    )
    assert response.status_code == 200
    task.refresh_from_db()
    assert task.status == "failed"


def test_the_depth_limit_is_a_setting(client, user, settings):
    settings.TASK_WEBHOOK_MAX_DEPTH = 4
    task = chat_task(user)
    body = '{"status": "failed", "error": {"n": ' + deep(3) + "}}"
    response = client.post(
        webhook_url(task.pk), data=body, content_type="application/json", **auth(task.pk)
    )
    assert response.status_code == 400
    assert "nested deeper than 4" in response.json()["error"]
