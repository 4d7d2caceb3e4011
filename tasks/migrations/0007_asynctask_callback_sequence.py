"""The last applied `processing` callback's `sequence`: an older one replayed
after a newer one changes nothing (docs/SECURITY.md, N15)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tasks", "0006_failure_words")]

    operations = [
        migrations.AddField(
            model_name="asynctask",
            name="callback_sequence",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
