"""The admin searches where it is cheap (finding N16): conversations by id,
title and username, never through their messages; messages by id,
conversation and the full-text index, never `LIKE` over every message."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.admin import ConversationAdmin
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(user, other_user):
    wanted = factories.conversation(user, title="Quarterly numbers")
    factories.message(wanted, "the deployment workflows are ready")
    other = factories.conversation(other_user, title="Holiday plans")
    factories.message(other, "pelican sightings")
    return wanted, other


def changelist(admin_client, model, q):
    url = reverse(f"admin:chat_{model}_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url, {"q": q})
    assert response.status_code == 200
    return response.content.decode(), [query["sql"] for query in queries]


def test_conversation_search_fields_do_not_reach_into_messages():
    assert not any("messages" in field for field in ConversationAdmin.search_fields)
    assert set(ConversationAdmin.search_fields) == {"title", "user__username"}


@pytest.mark.parametrize("q", ["Quarterly", "alice", "{id}", "pelican"])
def test_the_conversation_search_runs_no_distinct_join_over_messages(admin_client, rows, q):
    wanted, _ = rows
    _, statements = changelist(admin_client, "conversation", q.format(id=wanted.pk))
    for sql in statements:
        # (The date hierarchy's DISTINCT over conversations' days is cheap.)
        assert not ("DISTINCT" in sql.upper() and "chat_messages" in sql)
        assert 'JOIN "chat_messages"' not in sql
        assert '"chat_messages"."content"' not in sql


def test_the_conversation_search_finds_by_title_username_and_id(admin_client, rows):
    wanted, other = rows
    for q in ("Quarterly", "alice", str(wanted.pk)):
        html, _ = changelist(admin_client, "conversation", q)
        assert "Quarterly numbers" in html
        assert "Holiday plans" not in html
    html, _ = changelist(admin_client, "conversation", "mallory")
    assert "Holiday plans" in html and "Quarterly numbers" not in html


def test_the_conversation_list_still_counts_messages(admin_client, rows):
    html, statements = changelist(admin_client, "conversation", "")
    assert "Quarterly numbers" in html
    assert not any("DISTINCT" in sql.upper() and "chat_messages" in sql for sql in statements)
    assert not any('JOIN "chat_messages"' in sql for sql in statements)


def test_message_search_uses_the_full_text_index_not_like(admin_client, rows):
    html, statements = changelist(admin_client, "message", "workflow")  # stemmed: "workflows"
    assert "deployment workflows" in html
    assert "pelican" not in html
    assert not any('"chat_messages"."content"' in s and "LIKE" in s.upper() for s in statements)


def test_message_search_by_id_and_by_conversation(admin_client, rows):
    wanted, other = rows
    message = wanted.messages.get()
    html, _ = changelist(admin_client, "message", str(message.pk))
    assert "deployment workflows" in html
    html, _ = changelist(admin_client, "message", str(other.pk))
    assert "pelican sightings" in html


@pytest.mark.parametrize("q", ["-pelican", "\x00", '"', "or", "NOT x"])
def test_message_search_never_fails(admin_client, rows, q):
    changelist(admin_client, "message", q)


@pytest.mark.parametrize("model", ["conversation", "message"])
def test_a_number_is_looked_up_by_key_not_cast_to_text(admin_client, rows, model):
    _, statements = changelist(admin_client, model, str(rows[0].pk))
    for sql in statements:
        assert '"id"::' not in sql and '"id")::' not in sql  # PostgreSQL's casts
        assert 'CAST("' not in sql.upper()  # SQLite's
