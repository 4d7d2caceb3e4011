"""Render the stored HTML and previews of messages again (after a renderer upgrade)."""

from django.core.management.base import BaseCommand, CommandError

from chat.rendering import rerender


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
