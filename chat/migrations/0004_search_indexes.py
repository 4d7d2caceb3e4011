"""Full-text search: GIN expression indexes on PostgreSQL, FTS5 tables kept in
step by triggers on SQLite (chat/search/index.py). Nothing in the model state."""

from django.db import migrations


def forwards(apps, schema_editor):
    from chat.search import index as search_index

    search_index.ensure(schema_editor.connection)


def backwards(apps, schema_editor):
    from chat.search import index as search_index

    search_index.drop(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_message_rendered_html"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
