"""On PostgreSQL (without a transaction pooler) a statement a connection runs
again and again is prepared once: its plan is not made anew each time."""

from django.db import connection


def _prepared(fragment):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            [f"%{fragment}%"],
        )
        return cursor.fetchone()[0]


def test_a_statement_a_connection_repeats_is_prepared(postgres_only):
    from chat.models import Conversation

    assert _prepared('FROM "chat_conversations"') == 0
    list(Conversation.objects.filter(pk=1))
    assert _prepared('FROM "chat_conversations"') == 0  # once: not yet
    for pk in range(2, 5):
        list(Conversation.objects.filter(pk=pk))
    assert _prepared('FROM "chat_conversations"') == 1


def test_a_statement_run_once_is_not_prepared(postgres_only):
    from chat.models import Message

    list(Message.objects.filter(content="once"))
    assert _prepared('FROM "chat_messages"') == 0
