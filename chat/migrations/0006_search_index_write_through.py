"""Search indexes without a pending list on PostgreSQL (`fastupdate = off`,
see chat/search/index.py); nothing changes on SQLite."""

from django.db import migrations


def forwards(apps, schema_editor):
    from chat.search import index as search_index

    search_index.write_through(schema_editor.connection)


def backwards(apps, schema_editor):
    from chat.search import index as search_index

    search_index.write_through(schema_editor.connection, on=False)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_message_parent"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
