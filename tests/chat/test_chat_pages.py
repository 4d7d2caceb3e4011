"""The server-rendered pages: the list, a conversation, the DOM contract, query counts."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import services
from chat.models import Conversation, Message, Role
from chat.replies import taskstatus
from tasks.models import AsyncTask, TaskStatus, TaskWords
from tests import factories

pytestmark = pytest.mark.django_db

COULD_NOT_REPLY = TaskWords.ENDED[TaskStatus.FAILED]


def page(client, conversation, query=""):
    response = client.get(f"/chat/{conversation.pk}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def message_li(html, message):
    start = html.index(f'id="message-{message.pk}"')
    return html[start : html.index("</li>", start)]


# --- /chat/ ---------------------------------------------------------------------


def test_list_shows_newest_activity_first_with_preview_and_relative_time(user_client, user):
    old = factories.conversation(user, title="Older one")
    new = factories.conversation(user, title="Newer one")
    factories.message(old, "first line of the old one")
    factories.message(new, "the newest words\nsecond line", role=Role.ASSISTANT)
    Conversation.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(hours=3))
    html = user_client.get("/chat/").content.decode()
    assert html.index("Newer one") < html.index("Older one")
    assert "Assistant: the newest words" in html
    assert "first line of the old one" in html
    assert "3\xa0hours ago" in html
    assert re.search(r'<time class="conversation-link__time" datetime="\d{4}-', html)


def test_preview_is_one_plain_line(user_client, user):
    conversation = factories.conversation(user, title="Preview")
    factories.message(
        conversation,
        "## **Bold** start\n\n* a [link](https://example.com) and `code`",
        Role.ASSISTANT,
    )
    html = user_client.get("/chat/").content.decode()
    assert "Assistant: Bold start a link and code</span>" in html


def test_list_has_the_new_conversation_form_and_the_archived_switch(user_client):
    html = user_client.get("/chat/").content.decode()
    assert 'action="/chat/new/"' in html
    assert 'name="title"' in html and 'for="id_title"' in html
    assert 'name="content"' in html and 'for="id_content"' in html
    assert 'href="/chat/?archived=1"' in html


def test_list_of_an_empty_account_says_so(user_client):
    assert "No conversations yet." in user_client.get("/chat/").content.decode()


def test_list_is_paged_and_bounded(user_client, user, django_assert_max_num_queries):
    Conversation.objects.bulk_create(
        [Conversation(user=user, title=f"Conversation number {i}") for i in range(60)]
    )
    with django_assert_max_num_queries(4):
        html = user_client.get("/chat/").content.decode()
    assert html.count('class="conversation-link"') == 50
    assert "?page=2" in html
    html = user_client.get("/chat/?page=2").content.decode()
    assert html.count('class="conversation-link"') == 10


def test_list_query_count_does_not_grow_with_conversations(user_client, user):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert user_client.get("/chat/").status_code == 200
        return len(queries)

    conversation = factories.conversation(user)
    factories.message(conversation, "hi")
    few = count()
    for i in range(30):
        factories.message(factories.conversation(user, title=f"c{i}"), f"message {i}")
    assert count() == few


# --- /chat/{id}/ ---------------------------------------------------------------


def test_conversation_page_follows_the_dom_contract(user_client, user):
    conversation = factories.conversation(user)
    factories.message(conversation, "question")
    last = factories.message(conversation, "answer", role=Role.ASSISTANT)
    html = page(user_client, conversation)
    assert (
        f'<section id="conversation" class="conversation" '
        f'data-conversation-id="{conversation.pk}" data-last-message-id="{last.pk}"'
    ) in html
    assert '<ol id="messages"' in html
    assert (
        f'<li class="message message--assistant" id="message-{last.pk}" '
        f'data-message-id="{last.pk}" data-role="assistant">'
    ) in html
    assert (
        f'<form id="composer" class="composer" method="post" '
        f'action="/chat/{conversation.pk}/messages/" enctype="multipart/form-data">'
    ) in html
    assert 'type="file" name="files"' in html  # files beside the text, without JavaScript
    assert 'name="content" id="composer-input"' in html
    assert 'type="submit" id="composer-send"' in html
    assert 'id="composer-notice"' in html and 'role="status"' in html
    assert '<div id="connection-status"' in html and "hidden>" in html
    assert '<script type="module" src="/static/chat/chat.js">' in html
    assert 'href="/static/chat/chat.css"' in html
    assert "data-busy" not in html
    assert 'for="composer-input"' in html


def test_an_empty_conversation_has_last_message_id_zero(user_client, user):
    conversation = factories.conversation(user)
    assert 'data-last-message-id="0"' in page(user_client, conversation)


def test_messages_in_order_with_timestamps(user_client, user):
    conversation = factories.conversation(user)
    first = factories.message(conversation, "one")
    second = factories.message(conversation, "two", role=Role.ASSISTANT)
    html = page(user_client, conversation)
    assert html.index(f'id="message-{first.pk}"') < html.index(f'id="message-{second.pk}"')
    iso = first.created_at.isoformat()
    assert f'<time class="message__time" datetime="{iso}">' in html


def test_assistant_markdown_and_thinking_in_a_collapsed_details(user_client, user):
    conversation = factories.conversation(user)
    reply = factories.message(
        conversation,
        "Use **this**:\n\n```python\nprint('hi')\n```",
        role=Role.ASSISTANT,
        thinking="I considered *several* options",
    )
    li = message_li(page(user_client, conversation), reply)
    assert "<strong>this</strong>" in li
    assert '<div class="highlight" data-lang="python">' in li and 'class="copy-code"' in li
    assert '<details class="message__thinking">' in li  # no `open`: collapsed
    assert "<em>several</em>" in li


def test_assistant_without_thinking_has_no_details(user_client, user):
    conversation = factories.conversation(user)
    reply = factories.message(conversation, "plain", role=Role.ASSISTANT)
    assert "<details" not in message_li(page(user_client, conversation), reply)


def sent(user, conversation, **task_fields):
    message = services.send_message(user, conversation, "question")
    if task_fields:
        AsyncTask.objects.filter(pk=message.async_task_id).update(**task_fields)
    return message


def test_pending_status_under_the_user_message(user_client, user):
    conversation = factories.conversation(user)
    message = sent(user, conversation)
    li = message_li(page(user_client, conversation), message)
    task = message.async_task
    assert (
        f'<div class="task-status task-status--pending" id="task-{task.pk}" '
        f'data-task-id="{task.pk}" data-status="pending" data-version="{task.version}" '
        f'data-cancel-url="/tasks/{task.pk}/cancel/">'
    ) in li
    assert '<span class="task-status__label">Sending to the assistant (<span' in li
    assert re.search(r'data-elapsed-since="[^"]+">\d+ s</span>\)…</span>', li)
    assert "task-retry" not in li


def test_processing_status_shows_step_and_message(user_client, user):
    conversation = factories.conversation(user)
    message = sent(
        user,
        conversation,
        status=TaskStatus.PROCESSING,
        current_step="generating",
        status_message="Writing the answer…",
        version=3,
    )
    li = message_li(page(user_client, conversation), message)
    assert 'data-status="processing" data-version="3"' in li
    # The workflow's own words, then the time waited since the dispatch.
    assert '<span class="task-status__label">Writing the answer… · <span' in li
    assert "generating" not in li


def test_failed_status_shows_the_error_in_plain_words_and_retry(user_client, user):
    conversation = factories.conversation(user)
    message = sent(
        user,
        conversation,
        status=TaskStatus.FAILED,
        error_details={"stage": "dispatch", "status": 404, "message": "Workflow is not active"},
    )
    li = message_li(page(user_client, conversation), message)
    assert "task-status--failed" in li
    assert f"{COULD_NOT_REPLY} Workflow is not active" in li
    assert (
        f'<form class="task-retry" method="post" '
        f'action="/chat/{conversation.pk}/messages/{message.pk}/retry/">'
    ) in li
    assert 'name="csrfmiddlewaretoken"' in li
    assert ">Retry</button>" in li


def test_timeout_status_says_so_and_offers_retry(user_client, user):
    conversation = factories.conversation(user)
    message = sent(
        user, conversation, status=TaskStatus.TIMEOUT, status_message="No answer after 120 s."
    )
    li = message_li(page(user_client, conversation), message)
    assert f"{TaskWords.ENDED[TaskStatus.TIMEOUT]} No answer after 120 s." in li
    assert 'class="task-retry"' in li


def test_completed_task_shows_no_status(user_client, user):
    conversation = factories.conversation(user)
    message = sent(user, conversation, status=TaskStatus.COMPLETED)
    assert "task-status" not in message_li(page(user_client, conversation), message)


def test_error_words_from_strings_and_nested_objects():
    task = AsyncTask(status=TaskStatus.FAILED, error_details="boom")
    assert taskstatus.error_text(task) == f"{COULD_NOT_REPLY} boom."
    task.error_details = {"error": {"message": "model overloaded"}}
    assert taskstatus.error_text(task) == f"{COULD_NOT_REPLY} model overloaded."
    task.error_details = None
    assert taskstatus.error_text(task) == COULD_NOT_REPLY


# --- Long conversations ------------------------------------------------------------


def make_history(user, conversation, count):
    """`count` messages, alternating, user messages each with a completed task."""
    start = timezone.now() - timedelta(days=1)
    tasks = AsyncTask.objects.bulk_create(
        [
            AsyncTask(
                task_type="chat", workflow_id="chat-reply", created_by=user, status="completed"
            )
            for _ in range(count // 2)
        ]
    )
    rows = []
    for i in range(count):
        user_turn = i % 2 == 0
        rows.append(
            Message(
                conversation=conversation,
                role=Role.USER if user_turn else Role.ASSISTANT,
                content=f"message {i} with `code`",
                thinking="" if user_turn else "hmm",
                created_at=start + timedelta(seconds=i),
                async_task=tasks[i // 2] if i // 2 < len(tasks) else None,
            )
        )
    for row in rows:
        row.render()  # as Message.save does
    Message.objects.bulk_create(rows)
    # One branch: each message follows the one before it.
    for parent, row in zip(rows, rows[1:], strict=False):
        row.parent_id = parent.pk
    Message.objects.bulk_update(rows[1:], ["parent"], batch_size=500)
    return list(Message.objects.filter(conversation=conversation).order_by("created_at", "id"))


def test_page_shows_the_latest_page_with_a_link_to_earlier(user_client, user, settings):
    settings.CHAT_PAGE_SIZE = 50
    conversation = factories.conversation(user)
    messages = make_history(user, conversation, 120)
    html = page(user_client, conversation)
    assert html.count(' data-message-id="') == 50
    assert f'id="message-{messages[70].pk}"' in html
    assert f'id="message-{messages[69].pk}"' not in html
    assert f'data-last-message-id="{messages[-1].pk}"' in html
    assert f'href="/chat/{conversation.pk}/?before={messages[70].pk}"' in html

    earlier = page(user_client, conversation, f"?before={messages[70].pk}")
    assert earlier.count(' data-message-id="') == 50
    assert f'id="message-{messages[20].pk}"' in earlier
    assert f'id="message-{messages[69].pk}"' in earlier
    assert f'id="message-{messages[70].pk}"' not in earlier
    # The live script still syncs from the newest message of the conversation.
    assert f'data-last-message-id="{messages[-1].pk}"' in earlier
    assert "Jump to the latest" in earlier

    first_page = page(user_client, conversation, f"?before={messages[20].pk}")
    assert first_page.count(' data-message-id="') == 20
    assert "Load earlier messages" not in first_page


def test_a_before_id_of_another_conversation_is_ignored(user_client, user, other_user):
    mine = factories.conversation(user)
    own = factories.message(mine, "mine")
    theirs = factories.message(factories.conversation(other_user), "theirs")
    html = page(user_client, mine, f"?before={theirs.pk}")
    assert f'id="message-{own.pk}"' in html
    assert "theirs" not in html


def count_page_queries(client, conversation):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/chat/{conversation.pk}/").status_code == 200
    return len(queries)


def test_same_number_of_queries_for_10_and_1000_messages(
    user_client, user, django_assert_max_num_queries
):
    small = factories.conversation(user, title="small")
    big = factories.conversation(user, title="big")
    make_history(user, small, 10)
    make_history(user, big, 1000)
    assert count_page_queries(user_client, small) == count_page_queries(user_client, big)
    # One of them reads the page's files (one prefetch for every message),
    # one the active assistants (read once for the select and who answers).
    with django_assert_max_num_queries(10):
        user_client.get(f"/chat/{big.pk}/")


def test_rows_stored_without_html_are_rendered_in_one_query_per_page(user_client, user):
    conversation = factories.conversation(user)
    make_history(user, conversation, 40)
    rendered = count_page_queries(user_client, conversation)
    Message.objects.filter(conversation=conversation).update(content_html="", preview_text="")
    assert count_page_queries(user_client, conversation) == rendered + 1
    assert count_page_queries(user_client, conversation) == rendered
    reply = Message.objects.filter(conversation=conversation, role=Role.ASSISTANT).first()
    assert reply.content_html == f"<p>{reply.content.split('`')[0]}<code>code</code></p>\n"


def test_query_count_does_not_depend_on_task_states(user_client, user):
    conversation = factories.conversation(user)
    make_history(user, conversation, 10)
    baseline = count_page_queries(user_client, conversation)
    AsyncTask.objects.update(status=TaskStatus.FAILED, error_details={"message": "x"})
    assert count_page_queries(user_client, conversation) == baseline


# --- Looks and assets ---------------------------------------------------------------


STATIC = Path(django_settings.BASE_DIR) / "static"


def test_css_has_dark_mode_focus_states_and_the_narrow_layout():
    css = (STATIC / "chat" / "chat.css").read_text()
    assert "color-scheme: light dark" in css  # the device's choice, unless the user picked one
    assert "--bg: light-dark(" in css  # each colour written once, for both schemes
    assert ":focus-visible" in css
    assert "@media (max-width: 699px)" in css
    assert ".highlight" in (STATIC / "chat" / "pygments.css").read_text()


def test_pages_load_nothing_from_another_origin(user_client, user, client):
    conversation = factories.conversation(user)
    factories.message(conversation, "hello")
    for html in (
        page(user_client, conversation),
        user_client.get("/chat/").content.decode(),
        client.get("/accounts/login/").content.decode(),
    ):
        for tag in re.findall(r"<(?:script|link|img)\b[^>]*>", html):
            assert "//" not in tag, tag
        for ref in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            name = ref.removeprefix("/static/")
            assert (STATIC / name).exists() or name == "chat/chat.js", name


def test_every_form_control_has_a_label(user_client, user):
    conversation = factories.conversation(user, is_archived=False)
    html = page(user_client, conversation) + user_client.get("/chat/").content.decode()
    for control in re.findall(r"<(?:input|textarea|select)\b[^>]*>", html):
        if 'type="hidden"' in control:
            continue
        control_id = re.search(r'id="([^"]+)"', control)
        assert control_id, control
        assert f'for="{control_id.group(1)}"' in html or "aria-label" in control, control


def test_the_viewport_is_set_for_phones(client):
    html = client.get("/accounts/login/").content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
