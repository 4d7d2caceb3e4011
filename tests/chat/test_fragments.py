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
    reply.content = "corrected *answer*"
    reply.save(update_fields=["content"])
    reply.refresh_from_db()
    html = message_html(reply)
    assert "<em>answer</em>" in html
    assert "first" not in html


def test_a_reply_is_rendered_when_stored_not_when_shown(user, monkeypatch):
    conversation = factories.conversation(user)
    reply = factories.message(conversation, "**stored**", role=Role.ASSISTANT, thinking="_why_")
    assert reply.content_html == "<p><strong>stored</strong></p>\n"
    assert reply.thinking_html == "<p><em>why</em></p>\n"
    row = Message.objects.get(pk=reply.pk)
    monkeypatch.setattr("chat.rendering.rendered_fields", _fail_if_called)
    assert "<strong>stored</strong>" in message_html(row)
    assert "<em>why</em>" in message_html(row)


def _fail_if_called(*args):
    raise AssertionError("rendered again")


def test_a_row_inserted_without_html_is_rendered_once_and_stored(user, monkeypatch):
    conversation = factories.conversation(user)
    reply = factories.message(conversation, "placeholder", role=Role.ASSISTANT)
    # As an SQL insert that names only the text leaves it.
    Message.objects.filter(pk=reply.pk).update(
        content="from **SQL**", content_html="", preview_text=""
    )
    row = Message.objects.get(pk=reply.pk)
    assert "<strong>SQL</strong>" in message_html(row)
    stored = Message.objects.get(pk=reply.pk)
    assert stored.content_html == "<p>from <strong>SQL</strong></p>\n"
    assert stored.preview_text == "from SQL"
    monkeypatch.setattr("chat.rendering.rendered_fields", _fail_if_called)
    assert "<strong>SQL</strong>" in message_html(stored)


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


def test_the_page_carries_the_shell_of_a_streaming_reply_from_the_message_template(
    user_client, user
):
    # The script clones it for a reply being written; it is the message
    # template's own markup, with nothing a stored message has.
    conversation = factories.conversation(user)
    reply = factories.message(conversation, "an answer", role=Role.ASSISTANT)
    html = user_client.get(conversation.get_absolute_url()).content.decode()
    start = html.index('<template id="stream-template">')
    shell = html[start : html.index("</template>", start)]
    assert '<li class="message message--assistant message--streaming" aria-busy="true">' in shell
    assert "data-message-id" not in shell and ' id="message-' not in shell
    assert '<span class="message__author">Assistant</span>' in shell
    assert (
        '<div class="message__body markdown message__body--streaming"'
        ' data-thinking="Thinking…"></div>'
    ) in shell
    # Its meta is a stored reply's meta up to the author.
    author = '<div class="message__meta">\n    <span class="message__author">Assistant</span>'
    assert author in shell and author in message_html(reply)
