"""Render the stored HTML and previews of messages again (after a renderer upgrade)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q

from chat.models import Message
from chat.rendering import FIELDS


class Command(BaseCommand):
    help = (
        "Render every message's stored HTML and preview again, in batches "
        "(--missing: only rows never rendered, e.g. inserted with plain SQL)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--missing", action="store_true", help="only rows not rendered yet")
        parser.add_argument("--batch-size", type=int, default=200, help="rows per transaction")

    def handle(self, *args, missing=False, batch_size=200, verbosity=1, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")

        def progress(done):
            if verbosity > 1:
                self.stdout.write(f"{done} messages rendered…")

        done = rerender(only_missing=missing, batch_size=batch_size, progress=progress)
        self.stdout.write(f"Rendered {done} messages.")


def rerender(*, only_missing=False, batch_size=200, progress=None) -> int:
    """Render every message again (or only those never rendered), one batch
    of rows in memory and one short transaction at a time; the count done."""
    queryset = Message.objects.order_by("pk").only("id", "role", "content", "thinking", *FIELDS)
    if only_missing:
        queryset = queryset.filter(
            Q(role="user", preview_text="", content__gt="")
            | Q(role="assistant", content_html="", content__gt="")
            | Q(role="assistant", thinking_html="", thinking__gt="")
        )
    done, last_pk = 0, 0
    while True:
        batch = list(queryset.filter(pk__gt=last_pk)[:batch_size])
        if not batch:
            return done
        for message in batch:
            message.render()
        with transaction.atomic():
            Message.objects.bulk_update(batch, FIELDS)
        done += len(batch)
        last_pk = batch[-1].pk
        if progress:
            progress(done)
