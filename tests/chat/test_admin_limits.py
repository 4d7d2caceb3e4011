"""The admin of a big conversation stays small: its newest messages as links,
the rest one click away in the filtered message list."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Message
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_conversation(user):
    conversation = factories.conversation(user, title="Long one")
    Message.objects.bulk_create(
        Message(conversation=conversation, role="user", content=f"message number {i} " * 40)
        for i in range(5000)
    )
    return conversation


def test_a_5000_message_conversations_admin_page_stays_small(admin_client, big_conversation):
    url = f"/admin/chat/conversation/{big_conversation.pk}/change/"
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)
    assert response.status_code == 200
    assert len(response.content) < 150_000, len(response.content)
    assert len(queries) < 30
    html = response.content.decode()
    assert "The newest 20 of 5000" in html
    assert "message number 4999" in html


def test_the_conversation_can_be_saved_with_its_5000_messages(admin_client, big_conversation):
    url = f"/admin/chat/conversation/{big_conversation.pk}/change/"
    response = admin_client.post(
        url,
        {"user": big_conversation.user_id, "title": "Renamed", "metadata": "{}"},
    )
    assert response.status_code == 302, response.content[:2000]
    big_conversation.refresh_from_db()
    assert big_conversation.title == "Renamed"
    assert big_conversation.messages.count() == 5000


def test_every_message_is_reachable_from_the_filtered_list(admin_client, big_conversation, user):
    other = factories.conversation(user, title="Other")
    factories.message(other, "not in the list")
    response = admin_client.get(
        f"/admin/chat/message/?conversation__id__exact={big_conversation.pk}"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "5000 messages" in html
    assert "not in the list" not in html
