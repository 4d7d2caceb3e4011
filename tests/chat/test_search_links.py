"""Where a search hit leads: a page of the conversation that shows the hit,
on a branch that holds it (conversations are trees)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Role
from chat.search import index as search_index
from tests import factories
from tests.html_tree import parse

pytestmark = pytest.mark.django_db


def hit_links(client, q):
    response = client.get("/chat/search/", {"q": q})
    assert response.status_code == 200
    tree = parse(response.content.decode())
    return {
        int(li.attrs["data-message-id"]): li.find("a").attrs["href"]
        for li in tree.find_all("li")
        if "data-message-id" in li.attrs
    }


def shown_ids(client, href):
    response = client.get(href.split("#")[0])
    assert response.status_code == 200
    html = response.content.decode()
    listed = html[html.index('<ol id="messages"') : html.index('id="composer"')]
    return [int(pk) for pk in re.findall(r'<li class="message[^"]*" id="message-(\d+)"', listed)]


def say(conversation, text, parent, role=Role.USER):
    return factories.message(conversation, text, role, parent=parent)


@pytest.fixture
def edited(user):
    """q1 → a1 → q2 → (a2, then a2r regenerated); q2 edited afterwards: q2b → a2b,
    the newest message, so the default branch is q1 a1 q2b a2b."""
    conversation = factories.conversation(user)
    q1 = say(conversation, "first question", None)
    a1 = say(conversation, "first answer", q1, Role.ASSISTANT)
    q2 = say(conversation, "the pelican question", a1)
    a2 = say(conversation, "an answer", q2, Role.ASSISTANT)
    a2r = say(conversation, "another answer", q2, Role.ASSISTANT)
    q2b = say(conversation, "the question, edited", a1)
    a2b = say(conversation, "the answer to the edit", q2b, Role.ASSISTANT)
    names = ("q1", "a1", "q2", "a2", "a2r", "q2b", "a2b")
    return conversation, dict(zip(names, (q1, a1, q2, a2, a2r, q2b, a2b), strict=True))


def test_a_hit_on_another_branch_opens_the_branch_through_it(user_client, edited):
    conversation, m = edited
    href = hit_links(user_client, "pelican")[m["q2"].pk]
    # The branch through the hit, down its newest reply (the regenerated one).
    assert href == f"/chat/{conversation.pk}/?leaf={m['a2r'].pk}#message-{m['q2'].pk}"
    shown = shown_ids(user_client, href)
    assert shown == [m["q1"].pk, m["a1"].pk, m["q2"].pk, m["a2r"].pk]
    assert m["q2b"].pk not in shown


def test_the_default_page_is_not_the_branch_of_that_hit(user_client, edited):
    # What the plain link would have shown: the edited question's branch.
    conversation, m = edited
    shown = shown_ids(user_client, f"/chat/{conversation.pk}/")
    assert m["q2"].pk not in shown and m["q2b"].pk in shown


def test_a_hit_on_the_branch_shown_by_default_links_to_the_plain_page(user_client, edited):
    conversation, m = edited
    conversation.current_leaf_id = m["a2"].pk  # as if the last send continued that branch
    conversation.save(update_fields=["current_leaf_id"])
    href = hit_links(user_client, "pelican")[m["q2"].pk]
    assert href == f"/chat/{conversation.pk}/#message-{m['q2'].pk}"
    assert m["q2"].pk in shown_ids(user_client, href)


def test_a_hit_more_than_a_page_above_its_leaf_opens_the_older_page_ending_with_it(
    user_client, user, settings
):
    settings.CHAT_PAGE_SIZE = 3
    conversation = factories.conversation(user)
    q1 = say(conversation, "first question", None)
    a1 = say(conversation, "first answer", q1, Role.ASSISTANT)
    hit = say(conversation, "the pelican question", a1)
    # Written next, on another branch: the message after the hit in time.
    edit = say(conversation, "the question, edited", a1)
    reply = say(conversation, "its answer", hit, Role.ASSISTANT)
    parent = reply
    for i in range(4):
        parent = say(conversation, f"more {i}", parent)
    say(conversation, "answer to the edit", edit, Role.ASSISTANT)  # the newest: default
    href = hit_links(user_client, "pelican")[hit.pk]
    assert href == f"/chat/{conversation.pk}/?before={reply.pk}#message-{hit.pk}"
    assert shown_ids(user_client, href) == [q1.pk, a1.pk, hit.pk]


def test_a_hit_that_ends_a_branch_of_its_own_opens_that_branch(user_client, user):
    conversation = factories.conversation(user)
    q1 = say(conversation, "question", None)
    old = say(conversation, "the pelican reply", q1, Role.ASSISTANT)
    newer = say(conversation, "a regenerated reply", q1, Role.ASSISTANT)
    href = hit_links(user_client, "pelican")[old.pk]
    assert href == f"/chat/{conversation.pk}/?leaf={old.pk}#message-{old.pk}"
    shown = shown_ids(user_client, href)
    assert old.pk in shown and newer.pk not in shown


def test_placing_the_hits_costs_the_same_queries_for_one_hit_or_many(user_client, user):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            hit_links(user_client, "pelican")
        return len(captured)

    conversation = factories.conversation(user)
    parent = say(conversation, "pelican at the root", None)
    one = queries()
    for i in range(12):
        other = factories.conversation(user)
        root = say(other, f"pelican {i}", None)
        say(other, "a reply", root, Role.ASSISTANT)
        parent = say(conversation, f"pelican again {i}", parent)
        say(conversation, f"pelican aside {i}", parent.parent)  # a sibling branch each time
    assert len(hit_links(user_client, "pelican")) == 20
    assert queries() == one


def test_postgres_search_indexes_have_no_pending_list(postgres_only):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)",
            [search_index.POSTGRES_INDEXES],
        )
        options = dict(cursor.fetchall())
    assert set(options) == set(search_index.POSTGRES_INDEXES)
    assert all("fastupdate=off" in (value or []) for value in options.values())
