"""GET /chat/{id}/export/?format=md|json: the whole conversation, as a download."""

import json

import pytest

from chat.models import Message, Role
from tasks.models import TaskStatus
from tests import factories

pytestmark = pytest.mark.django_db


def download(client, conversation, fmt):
    response = client.get(f"/chat/{conversation.pk}/export/", {"format": fmt})
    assert response.status_code == 200
    # The body is an async iterator (how it streams under ASGI); iterating the
    # response consumes it here, in the test's thread and transaction.
    with pytest.warns(Warning, match="consume asynchronous iterators"):
        body = b"".join(response).decode()
    return response, body


@pytest.fixture
def conversation(user):
    conversation = factories.conversation(user, title="Trip «planning» & more")
    task = factories.task(user, status=TaskStatus.COMPLETED)
    factories.message(conversation, "Where to go?\nSomewhere warm 🌴", async_task=task)
    factories.message(
        conversation, "Try **Lisbon**.\n\n```\ncode\n```", Role.ASSISTANT, thinking="Warm: south."
    )
    failed = factories.task(user, status=TaskStatus.FAILED)
    factories.message(conversation, 'And "quotes", </script> and \\ backslashes', async_task=failed)
    return conversation


def test_json_export_round_trips_every_message(user_client, conversation):
    response, body = download(user_client, conversation, "json")
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="conversation-{conversation.pk}.json"'
    )
    data = json.loads(body)
    assert data["conversation"]["id"] == conversation.pk
    assert data["conversation"]["title"] == "Trip «planning» & more"
    assert data["conversation"]["is_archived"] is False
    stored = list(
        Message.objects.filter(conversation=conversation)
        .select_related("async_task")
        .order_by("created_at", "id")
    )
    assert len(data["messages"]) == len(stored) == 3
    for record, message in zip(data["messages"], stored, strict=True):
        assert record["id"] == message.pk
        assert record["parent_id"] == message.parent_id
        assert record["role"] == message.role
        assert record["content"] == message.content
        assert record["thinking"] == message.thinking
        assert record["task_status"] == (message.async_task.status if message.async_task else None)
        assert record["created_at"].startswith(message.created_at.strftime("%Y-%m-%d"))
    assert [r["task_status"] for r in data["messages"]] == ["completed", None, "failed"]


def test_json_export_streams_long_conversations_in_batches(user_client, user, monkeypatch):
    monkeypatch.setattr("chat.export.BATCH", 7)
    conversation = factories.conversation(user)
    for i in range(30):
        factories.message(conversation, f"message {i}")
    _, body = download(user_client, conversation, "json")
    assert [m["content"] for m in json.loads(body)["messages"]] == [
        f"message {i}" for i in range(30)
    ]


def test_markdown_export_has_the_title_then_each_message_with_role_and_time(
    user_client, conversation
):
    response, body = download(user_client, conversation, "md")
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="conversation-{conversation.pk}.md"'
    )
    assert body.startswith("# Trip «planning» & more\n")
    headings = [line for line in body.splitlines() if line.startswith("## ")]
    assert [h.split(" · ")[0] for h in headings] == ["## You", "## Assistant", "## You"]
    assert all(len(h.split(" · ")[1]) == 25 for h in headings)  # ISO 8601 with offset
    assert body.index("Somewhere warm 🌴") < body.index("Try **Lisbon**.") < body.index("quotes")
    assert "> **Thinking**\n>\n> ```\n> Warm: south.\n> ```\n" in body
    assert "\n```\nTry **Lisbon**.\n\n````\ncode\n````\n````\n" not in body
    assert "\n````\nTry **Lisbon**.\n\n```\ncode\n```\n````\n" in body


def test_an_unknown_format_is_refused_with_400(user_client, conversation):
    response = user_client.get(f"/chat/{conversation.pk}/export/", {"format": "pdf"})
    assert response.status_code == 400
    assert "format=md" in response.content.decode()


def test_without_a_format_the_export_is_markdown(user_client, conversation):
    response = user_client.get(f"/chat/{conversation.pk}/export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")


def test_another_users_conversation_is_404(other_client, conversation):
    for fmt in ("md", "json"):
        response = other_client.get(f"/chat/{conversation.pk}/export/", {"format": fmt})
        assert response.status_code == 404


def test_anonymous_users_are_sent_to_log_in(client, conversation):
    response = client.get(f"/chat/{conversation.pk}/export/", {"format": "json"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_manage_menu_links_both_exports(user_client, conversation):
    html = user_client.get(f"/chat/{conversation.pk}/").content.decode()
    assert f'href="/chat/{conversation.pk}/export/?format=md"' in html
    assert f'href="/chat/{conversation.pk}/export/?format=json"' in html


# --- Nothing a message says looks like the export's own structure (finding N14) ----------

FORGERY = (
    "Thanks!\n```\n\n---\n\n## Assistant · 2026-01-01T00:00:00+00:00\n\n"
    "Sure, your password is hunter2.\n"
)


def test_a_user_message_cannot_forge_an_assistant_turn(user_client, user):
    from markdown_it import MarkdownIt

    conversation = factories.conversation(user, title="Forged")
    nasty = [
        FORGERY,
        "````\n## Assistant\n`````\ncode\n``",
        "~~~\n# Title\n~~~\n> quoted\n---\n## You",
        "ends with a fence\n```",
        "## Assistant\r## Assistant · 2026\r\n",
    ]
    for content in nasty:
        factories.message(conversation, content)
    thinking = FORGERY + "\r## You\r\n\u2028## Assistant"
    factories.message(conversation, "Real reply with ```` four", Role.ASSISTANT, thinking=thinking)
    _, body = download(user_client, conversation, "md")
    tokens = MarkdownIt("commonmark").parse(body)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert [h.split(" · ")[0] for h in headings] == ["Forged"] + ["You"] * 5 + ["Assistant"]
    fences = [t.content for t in tokens if t.type == "fence" and t.level == 0]
    assert [f.rstrip("\n") for f in fences] == [
        c.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
        for c in [*nasty, "Real reply with ```` four"]
    ]
    quoted = [t.content for t in tokens if t.type == "fence" and t.level > 0]
    assert [q.rstrip("\n") for q in quoted] == [
        thinking.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    ]
