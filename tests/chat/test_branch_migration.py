"""The migration that makes conversations trees, run on a copy with data."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("chat", "0004_search_indexes")]
AFTER = [("chat", "0005_message_parent")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_conversations_become_one_branch_each_in_their_order(django_user_model):
    old = migrate(BEFORE)
    try:
        User = old.get_model("auth", "User")
        Conversation = old.get_model("chat", "Conversation")
        Message = old.get_model("chat", "Message")
        alice = User.objects.create(username="alice-migrated")
        first = Conversation.objects.create(user=alice, title="first")
        second = Conversation.objects.create(user=alice, title="second")
        Conversation.objects.create(user=alice, title="empty")
        now = timezone.now()
        same_time = now - timedelta(minutes=5)
        # Out of id order on purpose: the order is created_at, then id.
        m3 = Message.objects.create(conversation=first, role="user", content="c", created_at=now)
        m1 = Message.objects.create(
            conversation=first, role="user", content="a", created_at=now - timedelta(hours=1)
        )
        m2a = Message.objects.create(
            conversation=first, role="assistant", content="b1", created_at=same_time
        )
        m2b = Message.objects.create(
            conversation=first, role="assistant", content="b2", created_at=same_time
        )
        other = Message.objects.create(conversation=second, role="user", content="alone")

        new = migrate(AFTER)
        Message = new.get_model("chat", "Message")
        parents = dict(Message.objects.values_list("pk", "parent_id"))
        assert parents[m1.pk] is None
        assert parents[m2a.pk] == m1.pk
        assert parents[m2b.pk] == m2a.pk
        assert parents[m3.pk] == m2b.pk
        assert parents[other.pk] is None
        Conversation = new.get_model("chat", "Conversation")
        assert set(Conversation.objects.values_list("current_leaf_id", flat=True)) == {None}
    finally:
        migrate(AFTER)  # and the rest of the graph, for the tests that follow
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_search_still_finds_messages_after_the_migration(user):
    from chat.search import query as search
    from tests import factories

    migrate(BEFORE)
    migrate(AFTER)
    # ... and after every later migration (the models are today's).
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    conversation = factories.conversation(user, title="Aardvark facts")
    factories.message(conversation, "a migrated aardvark")
    found = search.search(user, "aardvark")
    assert found.messages and found.conversations
