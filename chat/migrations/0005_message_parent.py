"""Conversations become trees: `chat_messages.parent_id` (the message a message
follows) and `chat_conversations.current_leaf_id` (the branch shown by
default). Existing conversations become one branch each, in their order."""

import django.db.models.deletion
from django.db import migrations, models

# Each message's parent is the message before it in its conversation, by the
# order pages showed them (created_at, then id). One statement, whatever the
# size, using the (conversation_id, created_at) index; PostgreSQL and SQLite.
FILL_PARENTS = """
UPDATE chat_messages SET parent_id = (
    SELECT p.id FROM chat_messages p
    WHERE p.conversation_id = chat_messages.conversation_id
      AND (p.created_at < chat_messages.created_at
           OR (p.created_at = chat_messages.created_at AND p.id < chat_messages.id))
    ORDER BY p.created_at DESC, p.id DESC
    LIMIT 1
)
WHERE parent_id IS NULL
"""


def fill_parents(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(FILL_PARENTS)
    # SQLite rebuilt chat_messages to add the column, which drops its search
    # triggers: put them back now rather than after the whole migrate.
    from chat.search import index as search_index

    search_index.ensure(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_search_indexes"),
        ("tasks", "0003_events_cancelled"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="current_leaf_id",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="children",
                to="chat.message",
            ),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(fields=["conversation", "parent"], name="chat_msg_conv_parent"),
        ),
        migrations.RunPython(fill_parents, migrations.RunPython.noop, elidable=True),
    ]
