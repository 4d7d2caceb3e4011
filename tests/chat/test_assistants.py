"""Assistants (`chat_assistants`): who answers a conversation, with which
instructions, what reaches the task's input and what the reply records."""

import pytest
from django.db import IntegrityError, transaction

from accounts.models import UserSettings
from chat import assistants, services
from chat.models import Assistant, Conversation, Message, Role
from tests import factories
from tests.task_support import post_callback

pytestmark = pytest.mark.django_db


def make(name, workflow_id=None, **extra):
    return Assistant.objects.create(name=name, workflow_id=workflow_id or name.lower(), **extra)


def test_at_most_one_default_is_enforced_by_the_database():
    make("First", is_default=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        make("Second", is_default=True)
    make("Third")  # any number of non-defaults
    assert Assistant.objects.filter(is_default=True).count() == 1


def test_names_are_unique():
    make("Support")
    with pytest.raises(IntegrityError), transaction.atomic():
        make("Support", workflow_id="other")


def test_a_new_conversation_is_on_the_default(user):
    conversation = factories.conversation(user)
    assert conversation.assistant_id is None
    helper = make("Helper", is_default=True)
    assert assistants.for_conversation(conversation).assistant == helper


def test_without_any_assistant_the_task_goes_to_the_chat_workflow(user, settings):
    settings.N8N_CHAT_WORKFLOW = "plain-chat"
    conversation = factories.conversation(user)
    message = services.send_message(user, conversation, "hi")
    task = message.async_task
    assert task.workflow_id == "plain-chat"
    assert task.input_data["assistant"] is None
    assert task.input_data["instructions"] == ""


def test_the_task_goes_to_the_conversations_assistant_and_names_it(user):
    make("Default", is_default=True)
    writer = make("Writer", workflow_id="writer-flow")
    conversation = factories.conversation(user, assistant=writer)
    task = services.send_message(user, conversation, "a haiku").async_task
    assert task.workflow_id == "writer-flow"
    assert task.input_data["assistant"] == {"id": writer.pk, "name": "Writer"}


def test_a_deactivated_assistant_falls_back_to_the_default(user):
    default = make("Default", workflow_id="default-flow", is_default=True)
    gone = make("Gone", workflow_id="gone-flow", is_active=False)
    conversation = factories.conversation(user, assistant=gone)
    choice = assistants.for_conversation(conversation)
    assert (choice.assistant, choice.fell_back) == (default, True)
    task = services.send_message(user, conversation, "hello").async_task
    assert task.workflow_id == "default-flow"
    assert task.input_data["assistant"] == {"id": default.pk, "name": "Default"}


def test_instructions_are_the_conversations_else_the_users_default(user):
    conversation = factories.conversation(user)
    assert assistants.instructions_for(conversation) == ""
    UserSettings.objects.create(user=user, instructions="Answer in French.")
    assert assistants.instructions_for(conversation) == "Answer in French."
    conversation.instructions = "Answer like a pirate."
    assert assistants.instructions_for(conversation) == "Answer like a pirate."
    conversation.save()
    task = services.send_message(user, conversation, "hello").async_task
    assert task.input_data["instructions"] == "Answer like a pirate."


def test_the_reply_records_who_wrote_it(client, user):
    writer = make("Writer", is_default=True)
    conversation = factories.conversation(user)
    task = services.send_message(user, conversation, "hello").async_task
    answer = {"status": "completed", "output": {"content": "Hi!"}}
    assert post_callback(client, task.pk, answer).status_code == 200
    reply = Message.objects.get(conversation=conversation, role=Role.ASSISTANT)
    assert reply.metadata["assistant"] == {"id": writer.pk, "name": "Writer"}


def test_regenerate_asks_the_current_assistant(client, user):
    first = make("First", workflow_id="first-flow", is_default=True)
    second = make("Second", workflow_id="second-flow")
    conversation = factories.conversation(user)
    question = services.send_message(user, conversation, "hello")
    answer = {"status": "completed", "output": {"content": "Hi!"}}
    post_callback(client, question.async_task_id, answer)
    reply = Message.objects.get(conversation=conversation, role=Role.ASSISTANT)
    assert reply.metadata["assistant"]["id"] == first.pk
    Conversation.objects.filter(pk=conversation.pk).update(assistant=second)
    conversation.refresh_from_db()
    again = services.regenerate(user, conversation, reply)
    again.refresh_from_db()
    assert again.async_task.workflow_id == "second-flow"
    assert again.async_task.input_data["assistant"]["name"] == "Second"


def test_deleting_an_assistant_keeps_its_conversations_on_the_default(user):
    doomed = make("Doomed")
    conversation = factories.conversation(user, assistant=doomed)
    doomed.delete()
    conversation.refresh_from_db()
    assert conversation.assistant_id is None
