"""Assistants (`chat_assistants`, one default at most) and a conversation's
`assistant_id` and `instructions`. Existing conversations keep a null
assistant: the default one (or N8N_CHAT_WORKFLOW while there is none)."""

import django.db.models.deletion
import django.db.models.functions.datetime
import django.utils.timezone
from django.db import migrations, models


def search_triggers_back(apps, schema_editor):
    # SQLite may rebuild chat_conversations to add the columns, which drops
    # its search triggers: put them back now rather than after the whole migrate.
    from chat.search import index as search_index

    search_index.ensure(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_search_index_write_through"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="instructions",
            field=models.TextField(blank=True, db_default="", default="", max_length=4000),
        ),
        migrations.CreateModel(
            name="Assistant",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                ("description", models.TextField(blank=True, db_default="", default="")),
                ("workflow_id", models.CharField(max_length=255)),
                (
                    "n8n_workflow_id",
                    models.CharField(blank=True, max_length=64, null=True, unique=True),
                ),
                ("streams", models.BooleanField(db_default=False, default=False)),
                ("is_active", models.BooleanField(db_default=True, default=True)),
                ("is_default", models.BooleanField(db_default=False, default=False)),
                (
                    "created_at",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(),
                        default=django.utils.timezone.now,
                        editable=False,
                    ),
                ),
                (
                    "updated_at",
                    models.DateTimeField(
                        auto_now=True, db_default=django.db.models.functions.datetime.Now()
                    ),
                ),
            ],
            options={
                "db_table": "chat_assistants",
                "ordering": ["-is_default", "name", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("is_default", True)),
                        fields=("is_default",),
                        name="chat_assistants_one_default",
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="conversation",
            name="assistant",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="conversations",
                to="chat.assistant",
            ),
        ),
        migrations.RunPython(search_triggers_back, migrations.RunPython.noop, elidable=True),
    ]
