"""Replies are rendered once, when stored; the command renders them again."""

import io

import pytest
from django.core.management import CommandError, call_command

from chat import rendering
from chat.models import Message, Role
from chat.services import message_frame
from tasks import door
from tests import factories
from tests.task_support import chat_task, post_callback

pytestmark = pytest.mark.django_db

REPLY = {"status": "completed", "output": {"content": "A **bold** reply", "thinking": "_hm_"}}


def _fail_if_called(*args):
    raise AssertionError("rendered outside the transaction that stored the reply")


def test_a_completed_callback_stores_the_replys_html_and_preview(client, user):
    task = chat_task(user)
    assert post_callback(client, task.pk, REPLY).status_code == 200
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content_html == "<p>A <strong>bold</strong> reply</p>\n"
    assert reply.thinking_html == "<p><em>hm</em></p>\n"
    assert reply.preview_text == "A bold reply"


def record_renders_and_door_changes(monkeypatch):
    """The order of Markdown renders and of the door's changes, as they happen."""
    calls = []
    real_render, real_change = rendering.rendered_fields, door.change

    def render(*args):
        calls.append("render")
        return real_render(*args)

    def change(*args, **kwargs):
        calls.append("door")
        return real_change(*args, **kwargs)

    monkeypatch.setattr(rendering, "rendered_fields", render)
    monkeypatch.setattr(door, "change", change)
    return calls


def test_a_completed_reply_is_rendered_before_the_door_locks_its_task(client, user, monkeypatch):
    task = chat_task(user)
    calls = record_renders_and_door_changes(monkeypatch)
    assert post_callback(client, task.pk, REPLY).status_code == 200
    # Once, before the change: the message's save inside the door found it.
    assert calls == ["render", "door"]
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content_html == "<p>A <strong>bold</strong> reply</p>\n"
    assert reply.thinking_html == "<p><em>hm</em></p>\n"


def test_a_repeated_completed_callback_renders_nothing(client, user, monkeypatch):
    task = chat_task(user)
    post_callback(client, task.pk, REPLY)
    calls = record_renders_and_door_changes(monkeypatch)
    assert post_callback(client, task.pk, REPLY).status_code == 200
    assert calls == ["door"]


def test_a_reply_whose_prepared_render_was_evicted_is_rendered_when_stored(
    client, user, monkeypatch
):
    monkeypatch.setattr(rendering, "PREPARED_MAX", 0)
    task = chat_task(user)
    calls = record_renders_and_door_changes(monkeypatch)
    post_callback(client, task.pk, REPLY)
    assert calls == ["render", "door", "render"]
    reply = Message.objects.get(async_task=task, role=Role.ASSISTANT)
    assert reply.content_html == "<p>A <strong>bold</strong> reply</p>\n"


def test_prepared_renders_are_bounded_and_taken_once(monkeypatch):
    monkeypatch.setattr(rendering, "PREPARED_MAX", 2)
    for text in ("*one*", "*two*", "*three*"):
        rendering.prepare("assistant", text, "")
    assert len(rendering._prepared) == 2
    calls = record_renders_and_door_changes(monkeypatch)
    assert rendering.stored_fields("assistant", "*three*", "")["content_html"] == (
        "<p><em>three</em></p>\n"
    )
    assert calls == []
    rendering.stored_fields("assistant", "*three*", "")  # taken: rendered again
    rendering.stored_fields("assistant", "*one*", "")  # evicted
    assert calls == ["render", "render"]
    rendering.stored_fields("assistant", "*two*", "")


def test_the_frame_of_a_stored_reply_uses_its_stored_html(user, monkeypatch):
    conversation = factories.conversation(user)
    reply = factories.message(conversation, "A **bold** reply", role=Role.ASSISTANT)
    monkeypatch.setattr("chat.rendering.rendered_fields", _fail_if_called)
    frame = message_frame(Message.objects.get(pk=reply.pk))
    assert "<strong>bold</strong>" in frame["html"]
    assert frame["message"]["content"] == "A **bold** reply"


def test_a_user_message_keeps_no_html_and_its_text_as_preview(user):
    conversation = factories.conversation(user)
    message = factories.message(conversation, "Set **N8N_BASE_URL**\n  please")
    assert message.content_html == ""
    assert message.preview_text == "Set **N8N_BASE_URL** please"


def test_rerender_messages_renders_every_row_again(user):
    conversation = factories.conversation(user)
    replies = [factories.message(conversation, f"*r{i}*", role=Role.ASSISTANT) for i in range(5)]
    question = factories.message(conversation, "a question")
    Message.objects.update(content_html="<p>old renderer</p>", preview_text="old")
    call_command("rerender_messages", "--batch-size", "2", stdout=io.StringIO())
    for reply in replies:
        reply.refresh_from_db()
        assert reply.content_html == f"<p><em>{reply.content[1:-1]}</em></p>\n"
        assert reply.preview_text == reply.content[1:-1]
    question.refresh_from_db()
    assert (question.content_html, question.preview_text) == ("", "a question")


def test_rerender_missing_touches_only_rows_never_rendered(user):
    conversation = factories.conversation(user)
    kept = factories.message(conversation, "*kept*", role=Role.ASSISTANT)
    missing = factories.message(conversation, "*missing*", role=Role.ASSISTANT)
    Message.objects.filter(pk=kept.pk).update(content_html="<p>as stored</p>")
    Message.objects.filter(pk=missing.pk).update(content_html="", preview_text="")
    out = io.StringIO()
    call_command("rerender_messages", "--missing", stdout=out)
    assert "Rendered 1 messages." in out.getvalue()
    kept.refresh_from_db()
    missing.refresh_from_db()
    assert kept.content_html == "<p>as stored</p>"
    assert missing.content_html == "<p><em>missing</em></p>\n"


def test_rerender_refuses_a_batch_size_below_one():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("rerender_messages", "--batch-size", "0")


def test_a_reply_that_renders_to_nothing_is_rendered_once(user, user_client, monkeypatch):
    """A reply whose Markdown shows nothing (a link reference definition, only
    whitespace) is marked rendered all the same: views and syncs do not render
    it again (N10)."""
    conversation = factories.conversation(user)
    reply = factories.message(
        conversation, "[a]: http://x.io", role=Role.ASSISTANT, thinking="[b]: http://y.io"
    )
    stored = Message.objects.get(pk=reply.pk)
    assert not stored.needs_render
    monkeypatch.setattr("chat.rendering.rendered_fields", _fail_if_called)
    stored.render_if_needed()
    Message.render_missing([Message.objects.get(pk=reply.pk)])
    assert user_client.get(conversation.get_absolute_url()).status_code == 200
    assert message_frame(Message.objects.get(pk=reply.pk))["html"]
