"""Feedback on a reply over HTTP: `POST /chat/{id}/messages/{message_id}/feedback/`,
stored as the reply's `metadata.feedback`, shown on it, and, with
N8N_FEEDBACK_WORKFLOW set, a `feedback` task dispatched to that workflow."""

import pytest

from chat.models import Message, Role
from chat.replies import feedback
from tasks import registry, services
from tasks.models import AsyncTask
from tests import factories

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def reply(user):
    conversation = factories.conversation(user)
    question = factories.message(conversation, "What is 2 + 2?")
    return factories.message(
        conversation,
        "It is **4**.",
        role=Role.ASSISTANT,
        parent=question,
        metadata={"assistant": {"id": 3, "name": "Helper"}},
    )


def url(message):
    return f"/chat/{message.conversation_id}/messages/{message.pk}/feedback/"


def rate(client, message, **data):
    return client.post(url(message), data, **JSON)


def stored(message):
    return Message.objects.get(pk=message.pk).metadata.get("feedback")


def test_a_rating_is_stored_on_the_reply(user_client, reply, no_dispatch):
    response = rate(user_client, reply, rating="up", comment="  Clear and short. ")
    assert response.status_code == 200
    saved = stored(reply)
    assert saved["rating"] == "up" and saved["comment"] == "Clear and short."
    assert saved["at"]
    body = response.json()
    assert body["feedback"] == saved and body["message_id"] == reply.pk
    assert 'aria-pressed="true"' in body["html"]
    # Nothing else of the reply changed.
    kept = Message.objects.get(pk=reply.pk)
    assert kept.metadata["assistant"] == {"id": 3, "name": "Helper"}
    assert kept.content == "It is **4**."


def test_the_rating_shows_on_the_reply_after_a_reload(user_client, reply, no_dispatch):
    rate(user_client, reply, rating="down", comment="Wrong unit")
    page = user_client.get(f"/chat/{reply.conversation_id}/").content.decode()
    fragment = page.split(f'id="message-{reply.pk}"', 1)[1].split("</li>", 1)[0]
    assert 'data-rating="down"' in fragment
    assert "Your comment: Wrong unit" in fragment
    # The buttons submit the page's action form (which has the CSRF token), so
    # they work without script; the fragment itself holds no form.
    assert f'form="message-action" formaction="{url(reply)}"' in fragment
    assert "<form" not in fragment


def test_a_form_post_goes_back_to_the_reply(user_client, reply, no_dispatch):
    response = user_client.post(url(reply), {"rating": "up"})
    assert response.status_code == 303
    expected = f"/chat/{reply.conversation_id}/?leaf={reply.pk}#message-{reply.pk}"
    assert response["Location"] == expected


def test_the_comment_page_shows_the_stored_rating_and_comment(user_client, reply, no_dispatch):
    rate(user_client, reply, rating="down", comment="Too <b>long</b>")
    page = user_client.get(url(reply)).content.decode()
    assert 'value="down" checked' in page
    assert "Too &lt;b&gt;long&lt;/b&gt;</textarea>" in page
    assert 'maxlength="2000"' in page


def test_a_rating_without_a_comment_field_keeps_the_comment(user_client, reply, no_dispatch):
    rate(user_client, reply, rating="down", comment="Wrong unit")
    rate(user_client, reply, rating="up")  # the 👍 button sends no comment
    assert stored(reply)["comment"] == "Wrong unit"
    rate(user_client, reply, rating="up", comment="")  # an emptied box clears it
    assert stored(reply)["comment"] == ""


def test_a_refused_form_post_shows_the_comment_page_with_the_text_kept(
    user_client, reply, no_dispatch
):
    response = user_client.post(url(reply), {"rating": "down", "comment": "z" * 2001})
    assert response.status_code == 400
    page = response.content.decode()
    assert "at most 2,000 characters" in page and "z" * 2001 in page


def test_rating_none_takes_the_rating_back(user_client, reply, no_dispatch):
    rate(user_client, reply, rating="up")
    rate(user_client, reply, rating="none")
    assert stored(reply)["rating"] == "none"
    page = user_client.get(f"/chat/{reply.conversation_id}/").content.decode()
    assert 'aria-pressed="true"' not in page


@pytest.mark.parametrize(
    "data",
    [{}, {"rating": "great"}, {"rating": "up", "comment": "x" * 2001}, {"rating": "UP"}],
    ids=["no-rating", "unknown-rating", "comment-too-long", "wrong-case"],
)
def test_bad_input_is_400_and_changes_nothing(user_client, reply, data, no_dispatch):
    response = rate(user_client, reply, **data)
    assert response.status_code == 400
    assert response.json()["error"]
    assert stored(reply) is None
    assert not AsyncTask.objects.filter(task_type="feedback").exists()


def test_a_comment_of_exactly_the_limit_is_kept(user_client, reply, no_dispatch):
    assert rate(user_client, reply, rating="down", comment="y" * 2000).status_code == 200
    assert len(stored(reply)["comment"]) == 2000


def test_another_users_reply_is_a_404(other_client, reply, no_dispatch):
    assert rate(other_client, reply, rating="up").status_code == 404
    assert other_client.get(url(reply)).status_code == 404
    assert stored(reply) is None


def test_a_user_message_is_a_404(user_client, reply, no_dispatch):
    question = reply.parent
    assert rate(user_client, question, rating="up").status_code == 404
    wrong_conversation = f"/chat/{factories.conversation(reply.conversation.user).pk}"
    path = f"{wrong_conversation}/messages/{reply.pk}/feedback/"
    assert user_client.post(path, {"rating": "up"}, **JSON).status_code == 404
    assert stored(reply) is None


def test_other_methods_are_refused(user_client, reply):
    assert user_client.put(url(reply)).status_code == 405
    assert user_client.delete(url(reply)).status_code == 405


def test_anonymous_users_are_sent_to_log_in(client, reply):
    response = client.post(url(reply), {"rating": "up"})
    assert response.status_code == 302
    assert stored(reply) is None


def test_ratings_are_rate_limited(user_client, reply, settings, no_dispatch):
    settings.FEEDBACK_RATE_LIMIT = "2/m"
    rate(user_client, reply, rating="up")
    rate(user_client, reply, rating="down")
    response = rate(user_client, reply, rating="up")
    assert response.status_code == 429
    assert stored(reply)["rating"] == "down"


def test_without_a_feedback_workflow_no_task_is_made(user_client, reply, settings, no_dispatch):
    settings.N8N_FEEDBACK_WORKFLOW = ""
    body = rate(user_client, reply, rating="up").json()
    assert body["task"] is None
    assert not AsyncTask.objects.exists()


def test_with_a_feedback_workflow_each_rating_is_a_feedback_task(
    user_client, user, reply, settings, no_dispatch
):
    settings.N8N_FEEDBACK_WORKFLOW = "chat-feedback"
    first = rate(user_client, reply, rating="down", comment="Too long").json()["task"]
    second = rate(user_client, reply, rating="none").json()["task"]
    tasks = list(AsyncTask.objects.order_by("pk"))
    assert [t.pk for t in tasks] == [first["id"], second["id"]]
    task = tasks[0]
    assert (task.task_type, task.workflow_id, task.status) == (
        "feedback",
        "chat-feedback",
        "pending",
    )
    assert task.created_by == user
    assert task.input_data == {
        "message_id": reply.pk,
        "conversation_id": reply.conversation_id,
        "rating": "down",
        "comment": "Too long",
        "assistant": {"id": 3, "name": "Helper"},
        "content": "It is **4**.",
    }
    assert first["task_type"] == "feedback"


def test_the_feedback_task_is_dispatched_to_its_workflow(
    user_client, reply, dispatch_settings, fake_n8n, no_dispatch
):
    dispatch_settings.N8N_FEEDBACK_WORKFLOW = "chat-feedback"
    fake_n8n.expect_request("/webhook/chat-feedback", method="POST").respond_with_json(
        {"executionId": "77"}
    )
    task_id = rate(user_client, reply, rating="up", comment="Nice").json()["task"]["id"]
    assert services.claim_and_dispatch(task_id) == "dispatched"
    [(request, _answer)] = fake_n8n.log
    body = request.get_json()
    assert body["task_type"] == "feedback"
    assert body["workflow_id"] == "chat-feedback"
    assert body["input"]["rating"] == "up" and body["input"]["comment"] == "Nice"
    assert body["callback_url"].endswith(f"/tasks/{task_id}/webhook/")
    task = AsyncTask.objects.get(pk=task_id)
    assert (task.status, task.n8n_execution_id) == ("processing", "77")


def test_a_completed_feedback_callback_adds_no_message(user_client, reply, settings, no_dispatch):
    from tasks import callbacks

    settings.N8N_FEEDBACK_WORKFLOW = "chat-feedback"
    task_id = rate(user_client, reply, rating="up").json()["task"]["id"]
    token = callbacks.make_token(task_id)
    response = user_client.post(
        f"/tasks/{task_id}/webhook/",
        {"status": "completed", "output": {"stored": True}},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200
    assert AsyncTask.objects.get(pk=task_id).status == "completed"
    assert Message.objects.count() == 2


def test_feedback_is_the_second_registered_task_type():
    assert registry.get(feedback.FEEDBACK) is not None
    assert {"chat", "feedback"} <= set(registry.names())
