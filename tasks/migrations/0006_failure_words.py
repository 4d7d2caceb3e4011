"""Failures stored before the workflow's words were kept for the admin only:
their status line said "The workflow failed: <the workflow's error>". The
server's sentence replaces it (the words are still in `error_details`)."""

from django.db import migrations

OLD_PREFIX = "The workflow failed: "
NEW_WORDS = "The workflow failed."


def forwards(apps, schema_editor):
    for name in ("AsyncTask", "AsyncTaskEvent"):
        model = apps.get_model("tasks", name)
        model.objects.filter(status="failed", status_message__startswith=OLD_PREFIX).update(
            status_message=NEW_WORDS
        )


class Migration(migrations.Migration):
    dependencies = [("tasks", "0005_asynctask_partial_text")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
