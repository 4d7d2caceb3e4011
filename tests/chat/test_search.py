"""GET /chat/search/: the user's own messages and titles, highlighted, linked."""

import pytest
from django.db import connection

from chat.models import Message, Role
from chat.search import index as search_index
from chat.search import query as search
from tests import factories
from tests.html_tree import parse

pytestmark = pytest.mark.django_db


def results(client, q, **params):
    response = client.get("/chat/search/", {"q": q, **params})
    assert response.status_code == 200, response.content
    return response, parse(response.content.decode())


def hits(tree):
    return [li for li in tree.find_all("li") if li.attrs.get("class") == "search-result"]


def test_a_word_finds_the_message_with_a_highlighted_snippet_linking_to_it(user_client, user):
    conversation = factories.conversation(user, title="Deploying")
    factories.message(conversation, "Nothing to see")
    wanted = factories.message(
        conversation, "The webhook secret goes in the header", Role.ASSISTANT
    )
    _, tree = results(user_client, "webhook")
    messages = [h for h in hits(tree) if "data-message-id" in h.attrs]
    assert [h.attrs["data-message-id"] for h in messages] == [str(wanted.pk)]
    link = messages[0].find("a")
    assert link.attrs["href"] == f"/chat/{conversation.pk}/#message-{wanted.pk}"
    assert link.text() == "Deploying"
    assert [m.text() for m in messages[0].find_all("mark")] == ["webhook"]


def test_stemmed_forms_match(user_client, user):
    conversation = factories.conversation(user)
    factories.message(conversation, "She was deploying the workflows")
    _, tree = results(user_client, "workflow")
    assert len(hits(tree)) == 1


def test_titles_match_and_archived_conversations_are_included(user_client, user):
    archived = factories.conversation(user, title="Quarterly invoices", is_archived=True)
    factories.message(archived, "numbers in an archived conversation")
    _, tree = results(user_client, "invoices")
    links = [h.find("a") for h in hits(tree)]
    assert [a.attrs["href"] for a in links] == [f"/chat/{archived.pk}/"]
    assert links[0].find("mark").text() == "invoices"
    assert "Archived" in hits(tree)[0].text()
    _, tree = results(user_client, "archived")
    assert len(hits(tree)) == 1


def test_only_the_users_own_rows_are_found(user_client, user, other_user):
    mine = factories.conversation(user, title="mine")
    factories.message(mine, "the shared secret word is pineapple")
    theirs = factories.conversation(other_user, title="pineapple plans")
    factories.message(theirs, "their pineapple message", Role.ASSISTANT)
    response, tree = results(user_client, "pineapple")
    assert [h.find("a").attrs["href"].split("#")[0] for h in hits(tree)] == [f"/chat/{mine.pk}/"]
    assert "their pineapple" not in response.content.decode()
    assert "pineapple plans" not in response.content.decode()


def test_snippets_escape_the_message_text(user_client, user):
    conversation = factories.conversation(user, title="<b>title</b> xss")
    factories.message(conversation, 'xss <script>alert("x")</script> <img src=x onerror=alert(1)>')
    response, tree = results(user_client, "xss")
    body = response.content.decode()
    assert "<script>alert" not in body and "<img" not in body and "<b>title" not in body
    snippets = [p for p in tree.find_all("p") if p.attrs.get("class") == "search-result__snippet"]
    assert [m.text() for m in snippets[0].find_all("mark")] == ["xss"]
    # (PostgreSQL's snippet leaves tags out; SQLite's shows them as text.)
    assert {child.tag for child in snippets[0].children if not isinstance(child, str)} == {"mark"}


def test_quoted_phrases_or_and_minus(user_client, user):
    conversation = factories.conversation(user)
    factories.message(conversation, "red apples grow here")
    factories.message(conversation, "green apples grow there")
    factories.message(conversation, "red cars drive")
    count = lambda q: len(hits(results(user_client, q)[1]))  # noqa: E731
    assert count('"red apples"') == 1
    assert count("red -cars") == 1
    assert count("apples or cars") == 3
    assert count("red apples") == 1


def test_newest_first_and_paginated(user_client, user, monkeypatch):
    monkeypatch.setattr(search, "PAGE_SIZE", 3)
    conversation = factories.conversation(user)
    made = [factories.message(conversation, f"needle number {i}") for i in range(7)]
    ids = lambda tree: [int(h.attrs["data-message-id"]) for h in hits(tree)]  # noqa: E731
    _, first = results(user_client, "needle")
    assert ids(first) == [m.pk for m in reversed(made)][:3]
    assert any(a.text() == "Older results" for a in first.find_all("a"))
    _, third = results(user_client, "needle", page=3)
    assert ids(third) == [made[0].pk]


def test_a_message_older_than_the_latest_page_links_to_the_page_that_shows_it(
    user_client, user, settings
):
    settings.CHAT_PAGE_SIZE = 5
    conversation = factories.conversation(user)
    old = factories.message(conversation, "the ancient needle")
    after = factories.message(conversation, "next one")
    for i in range(6):
        factories.message(conversation, f"filler {i}")
    _, tree = results(user_client, "ancient")
    href = hits(tree)[0].find("a").attrs["href"]
    assert href == f"/chat/{conversation.pk}/?before={after.pk}#message-{old.pk}"
    page = user_client.get(href.split("#")[0]).content.decode()
    assert f'id="message-{old.pk}"' in page


def test_an_empty_query_shows_the_form_and_how_to_search(user_client):
    response = user_client.get("/chat/search/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="q"' in body and "all words must match" in body


def test_a_query_over_the_limit_is_refused_with_400(user_client, user):
    response = user_client.get("/chat/search/", {"q": "x" * (search.MAX_QUERY_LENGTH + 1)})
    assert response.status_code == 400
    assert "the limit is 200" in response.content.decode()


def test_a_page_past_the_last_allowed_is_refused(user_client):
    response = user_client.get("/chat/search/", {"q": "x", "page": search.MAX_PAGES + 1})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "q", ['"', "-", "or", "AND", "NOT x", "*", "x*", "(", 'a"b', "NEAR(a b)", "^x", ":", "'"]
)
def test_query_syntax_characters_never_fail(user_client, user, q):
    factories.message(factories.conversation(user), "a b x NOT and")
    response = user_client.get("/chat/search/", {"q": q})
    assert response.status_code == 200


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get("/chat/search/", {"q": "x"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_an_edited_message_is_found_by_its_new_words_only(user_client, user):
    conversation = factories.conversation(user)
    message = factories.message(conversation, "original wording")
    message.content = "replacement text"
    message.save()
    assert len(hits(results(user_client, "original")[1])) == 0
    assert len(hits(results(user_client, "replacement")[1])) == 1


def test_deleted_conversations_leave_nothing_to_find(user_client, user):
    conversation = factories.conversation(user, title="doomed")
    factories.message(conversation, "doomed words")
    conversation.delete()
    assert hits(results(user_client, "doomed")[1]) == []
    assert not Message.objects.exists()


def test_the_sidebar_has_a_search_form(user_client):
    tree = parse(user_client.get("/chat/").content.decode())
    form = next(f for f in tree.find_all("form") if f.attrs.get("action") == "/chat/search/")
    assert form.attrs.get("method", "get").lower() == "get"
    assert form.find("input").attrs["name"] == "q"


def test_lost_sqlite_triggers_are_put_back_and_the_index_rebuilt(sqlite_only, user_client, user):
    conversation = factories.conversation(user)
    # What Django's table rebuild (an altered column) does to them.
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER chat_messages_fts_ai")
    factories.message(conversation, "mango written while the trigger was gone")
    assert hits(results(user_client, "mango")[1]) == []
    assert search_index.ensure(connection) is True
    assert len(hits(results(user_client, "mango")[1])) == 1
    assert search_index.ensure(connection) is False
