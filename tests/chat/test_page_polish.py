"""The review's smaller items, over HTTP: search snippets without raw
Markdown marks, an archived conversation beside the archived list, exports in
the reader's zone with stopped replies marked, a rate-limited first send that
keeps its text."""

import json

import pytest

from chat.models import Role
from tests import factories
from tests.html_tree import parse

pytestmark = pytest.mark.django_db


def test_search_snippets_show_no_raw_markdown_marks(user_client, user):
    conversation = factories.conversation(user)
    factories.message(
        conversation, "The **webhook** needs `a secret` and ~~no~~ token", Role.ASSISTANT
    )
    response = user_client.get("/chat/search/", {"q": "webhook"})
    tree = parse(response.content.decode())
    snippet = next(
        p for p in tree.find_all("p") if p.attrs.get("class") == "search-result__snippet"
    )
    assert "**" not in snippet.text() and "`" not in snippet.text() and "~~" not in snippet.text()
    assert [m.text() for m in snippet.find_all("mark")] == ["webhook"]
    assert "a secret" in snippet.text()


def test_an_archived_conversation_opens_beside_the_archived_list(user_client, user):
    archived = factories.conversation(user, title="Old trip", is_archived=True)
    html = user_client.get(f"/chat/{archived.pk}/").content.decode()
    assert "No conversations yet" not in html
    assert 'aria-current="page"' in html and "Old trip" in html


def download(client, conversation, **params):
    response = client.get(f"/chat/{conversation.pk}/export/", params)
    assert response.status_code == 200, response
    with pytest.warns(Warning, match="consume asynchronous iterators"):
        return b"".join(response).decode()


@pytest.fixture
def stopped(user):
    conversation = factories.conversation(user, title="Stopped")
    factories.message(conversation, "Tell me")
    factories.message(conversation, "Half an", Role.ASSISTANT, metadata={"stopped": True})
    return conversation


def test_exports_show_times_in_the_readers_zone_and_mark_stopped_replies(user_client, stopped):
    markdown = download(user_client, stopped, format="md", tz="Asia/Tokyo")
    assert "+09:00" in markdown
    assert "## Assistant · " in markdown and " · stopped\n" in markdown
    assert markdown.count("· stopped") == 1
    data = json.loads(download(user_client, stopped, format="json", tz="America/New_York"))
    assert data["conversation"]["created_at"][-6:] in ("-05:00", "-04:00")
    assert [m["stopped"] for m in data["messages"]] == [False, True]
    # Without a zone, times still carry their offset.
    assert "+00:00" in download(user_client, stopped, format="md")


def test_an_unknown_zone_is_refused_with_400(user_client, stopped):
    for zone in ("Mars/Olympus", "x" * 500, "../etc"):
        response = user_client.get(f"/chat/{stopped.pk}/export/", {"tz": zone})
        assert response.status_code == 400


def test_a_rate_limited_first_send_answers_429_with_its_text_kept(user_client, settings):
    settings.CHAT_RATE_LIMIT = "1/m"
    assert user_client.post("/chat/new/", {"content": "first"}).status_code == 303
    refused = user_client.post("/chat/new/", {"content": "second, kept"})
    assert refused.status_code == 429 and refused["Retry-After"]
    html = refused.content.decode()
    assert ">second, kept</textarea>" in html
    assert "composer__notice--error" in html
    # From the list's form (with a title field), the same.
    refused = user_client.post("/chat/new/", {"title": "T", "content": "third, kept"})
    assert refused.status_code == 429
    assert "third, kept</textarea>" in refused.content.decode()
