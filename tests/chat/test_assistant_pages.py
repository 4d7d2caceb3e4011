"""Choosing an assistant and writing instructions, over HTTP: the plain forms
(no JavaScript), their limits, and isolation."""

import json

import pytest

from accounts.models import UserSettings
from chat.models import Assistant, Conversation, Message, Role
from tests import factories
from tests.task_support import post_callback

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def two():
    first = Assistant.objects.create(name="Helper", workflow_id="helper", is_default=True)
    second = Assistant.objects.create(
        name="Writer", workflow_id="writer", description="Writes in the house style."
    )
    return first, second


def test_the_new_conversation_forms_offer_the_active_assistants(user_client, two):
    Assistant.objects.create(name="Retired", workflow_id="old", is_active=False)
    for url in ("/chat/", "/chat/new/"):
        page = user_client.get(url).content.decode()
        assert '<select name="assistant"' in page
        assert f'value="{two[0].pk}" selected' in page
        assert ">Writer<" in page and "Retired" not in page


def test_without_assistants_there_is_nothing_to_choose(user_client):
    assert 'name="assistant"' not in user_client.get("/chat/new/").content.decode()


def test_a_new_conversation_keeps_the_chosen_assistant(user_client, user, two):
    answer = user_client.post("/chat/new/", {"content": "Hi", "assistant": two[1].pk})
    assert answer.status_code == 303
    conversation = Conversation.objects.get(user=user)
    assert conversation.assistant == two[1]
    task = conversation.messages.get().async_task
    assert task.workflow_id == "writer"


def test_a_new_conversation_refuses_an_inactive_assistant(user_client, user, two):
    Assistant.objects.filter(pk=two[1].pk).update(is_active=False)
    answer = user_client.post("/chat/new/", {"content": "Hi", "assistant": two[1].pk})
    assert answer.status_code == 400
    assert "That assistant is not available." in answer.content.decode()
    assert not Conversation.objects.filter(user=user).exists()


def test_switching_the_assistant(user_client, user, two):
    conversation = factories.conversation(user)
    page = user_client.get(conversation.get_absolute_url()).content.decode()
    assert f'action="/chat/{conversation.pk}/assistant/"' in page
    answer = user_client.post(f"/chat/{conversation.pk}/assistant/", {"assistant": two[1].pk})
    assert answer.status_code == 303
    conversation.refresh_from_db()
    assert conversation.assistant == two[1]
    json_answer = user_client.post(
        f"/chat/{conversation.pk}/assistant/", {"assistant": two[0].pk}, **JSON
    )
    assert json_answer.json() == {
        "id": conversation.pk,
        "assistant": {"id": two[0].pk, "name": "Helper"},
    }


@pytest.mark.parametrize("value", ["", "abc", "999999", "99999999999999999999999", "-1"])
def test_switching_to_an_unknown_assistant_is_a_404(user_client, user, two, value):
    conversation = factories.conversation(user, assistant=two[1])
    answer = user_client.post(f"/chat/{conversation.pk}/assistant/", {"assistant": value})
    assert answer.status_code == 404
    conversation.refresh_from_db()
    assert conversation.assistant == two[1]


def test_switching_to_an_inactive_assistant_is_a_404(user_client, user, two):
    Assistant.objects.filter(pk=two[1].pk).update(is_active=False)
    conversation = factories.conversation(user)
    answer = user_client.post(f"/chat/{conversation.pk}/assistant/", {"assistant": two[1].pk})
    assert answer.status_code == 404
    conversation.refresh_from_db()
    assert conversation.assistant_id is None


def test_another_users_conversation_is_a_404_for_switching_and_instructions(
    other_client, user, two
):
    conversation = factories.conversation(user)
    switch = other_client.post(f"/chat/{conversation.pk}/assistant/", {"assistant": two[1].pk})
    written = other_client.post(f"/chat/{conversation.pk}/instructions/", {"instructions": "x"})
    assert (switch.status_code, written.status_code) == (404, 404)
    conversation.refresh_from_db()
    assert (conversation.assistant_id, conversation.instructions) == (None, "")


def test_get_is_refused_on_the_post_only_urls(user_client, user):
    conversation = factories.conversation(user)
    for what in ("assistant", "instructions"):
        assert user_client.get(f"/chat/{conversation.pk}/{what}/").status_code == 405


def test_instructions_are_saved_and_shown(user_client, user):
    conversation = factories.conversation(user)
    answer = user_client.post(
        f"/chat/{conversation.pk}/instructions/", {"instructions": "  Be brief.  "}
    )
    assert answer.status_code == 303
    conversation.refresh_from_db()
    assert conversation.instructions == "Be brief."
    page = user_client.get(conversation.get_absolute_url()).content.decode()
    assert "Be brief." in page


def test_instructions_at_the_limit_pass_and_beyond_it_change_nothing(user_client, user):
    conversation = factories.conversation(user, instructions="Old.")
    url = f"/chat/{conversation.pk}/instructions/"
    assert user_client.post(url, {"instructions": "a" * 4000}).status_code == 303
    Conversation.objects.filter(pk=conversation.pk).update(instructions="Old.")
    refused = user_client.post(url, {"instructions": "a" * 4001})
    assert refused.status_code == 400
    assert "limited to 4,000 characters" in refused.content.decode()
    refused_json = user_client.post(url, {"instructions": "a" * 4001}, **JSON)
    assert refused_json.status_code == 400 and "error" in refused_json.json()
    conversation.refresh_from_db()
    assert conversation.instructions == "Old."


def test_a_deactivated_assistant_shows_a_note_and_the_default_answers(user_client, user, two):
    conversation = factories.conversation(user, assistant=two[1])
    Assistant.objects.filter(pk=two[1].pk).update(is_active=False)
    page = user_client.get(conversation.get_absolute_url()).content.decode()
    assert "Writer is no longer available; Helper answers instead." in page
    sent = user_client.post(f"/chat/{conversation.pk}/messages/", {"content": "hello"}, **JSON)
    assert sent.status_code == 201
    task = Message.objects.get(pk=sent.json()["message"]["id"]).async_task
    assert task.workflow_id == "helper"


def test_each_reply_shows_who_wrote_it_and_the_sidebar_who_answers(client, user_client, user, two):
    conversation = factories.conversation(user, title="Switched")
    first = user_client.post(f"/chat/{conversation.pk}/messages/", {"content": "one"}, **JSON)
    done = {"status": "completed", "output": {"content": "From the helper."}}
    post_callback(client, first.json()["task"]["id"], done)
    user_client.post(f"/chat/{conversation.pk}/assistant/", {"assistant": two[1].pk})
    second = user_client.post(f"/chat/{conversation.pk}/messages/", {"content": "two"}, **JSON)
    done = {"status": "completed", "output": {"content": "From the writer."}}
    post_callback(client, second.json()["task"]["id"], done)
    replies = Message.objects.filter(conversation=conversation, role=Role.ASSISTANT)
    assert [r.metadata["assistant"]["name"] for r in replies] == ["Helper", "Writer"]
    page = user_client.get(conversation.get_absolute_url()).content.decode()
    assert '<span class="message__author">Helper</span>' in page
    assert '<span class="message__author">Writer</span>' in page
    assert '<span class="conversation-link__assistant">Writer</span>' in page
    with pytest.warns(Warning, match="consume asynchronous iterators"):
        body = json.loads(b"".join(user_client.get(f"/chat/{conversation.pk}/export/?format=json")))
    named = [m["assistant"] for m in body["messages"] if m["role"] == "assistant"]
    assert named == [{"id": two[0].pk, "name": "Helper"}, {"id": two[1].pk, "name": "Writer"}]


def test_the_users_default_instructions_reach_the_task(user_client, user):
    UserSettings.objects.create(user=user, instructions="Always answer in haiku.")
    conversation = factories.conversation(user)
    sent = user_client.post(f"/chat/{conversation.pk}/messages/", {"content": "hi"}, **JSON)
    task = Message.objects.get(pk=sent.json()["message"]["id"]).async_task
    assert task.input_data["instructions"] == "Always answer in haiku."


def test_each_option_carries_its_description_and_the_page_shows_the_current_one(user_client, user):
    """Without JavaScript the current assistant's description is on the page;
    the picker's script shows the others' from their options."""
    Assistant.objects.create(
        name="Helper", workflow_id="helper", is_default=True, description="Answers anything."
    )
    Assistant.objects.create(name="Writer", workflow_id="writer", description="House   style.")
    conversation = factories.conversation(user)
    page = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert 'data-description="Answers anything."' in page
    assert 'data-description="House style."' in page
    assert "data-assistant-description>Answers anything.</span>" in page
