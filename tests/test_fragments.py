"""A message's fragment: cached only while nothing in it can change."""

import pytest

from chat import services
from chat.fragments import message_html
from chat.models import Message, Role
from tasks.models import AsyncTask, TaskStatus
from tests import factories

pytestmark = pytest.mark.django_db


def test_an_edited_reply_is_rendered_anew(user):
    conversation = factories.conversation(user)
    reply = factories.message(conversation, "first **answer**", role=Role.ASSISTANT)
    assert "<strong>answer</strong>" in message_html(reply)
    Message.objects.filter(pk=reply.pk).update(content="corrected *answer*")
    reply.refresh_from_db()
    html = message_html(reply)
    assert "<em>answer</em>" in html
    assert "first" not in html


def test_a_status_fragment_follows_the_task(user):
    conversation = factories.conversation(user)
    message = services.send_message(user, conversation, "question")
    assert "task-status--pending" in message_html(message)
    AsyncTask.objects.filter(pk=message.async_task_id).update(status=TaskStatus.PROCESSING)
    message = Message.objects.select_related("async_task").get(pk=message.pk)
    assert "task-status--processing" in message_html(message)
    AsyncTask.objects.filter(pk=message.async_task_id).update(status=TaskStatus.COMPLETED)
    message = Message.objects.select_related("async_task").get(pk=message.pk)
    assert "task-status" not in message_html(message)


def test_a_retry_form_carries_each_visitors_own_csrf_token(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    tokens = []
    for owner in (alice, bob):
        conversation = factories.conversation(owner)
        message = services.send_message(owner, conversation, "question")
        AsyncTask.objects.filter(pk=message.async_task_id).update(status=TaskStatus.FAILED)
        client.force_login(owner)
        html = client.get(conversation.get_absolute_url()).content.decode()
        token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        assert token
        tokens.append(token)
    # A cached fragment would carry the first visitor's token to the second.
    assert tokens[0] != tokens[1]
