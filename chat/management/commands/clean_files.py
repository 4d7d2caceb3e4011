"""Remove stored files that no `chat_attachments` row names (chat/files/cleanup.py)."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from chat.files.cleanup import sweep


class Command(BaseCommand):
    help = (
        "Remove files in the attachment storage that no chat_attachments row names "
        "(left by a process killed between writing a file and committing its row), "
        "and thumbnails of files that are gone, when older than --older-than minutes. "
        "Reports rows whose file is missing; never changes a row. Run it from cron or "
        "a systemd timer (deploy/systemd/chatproject-clean-files.timer)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=float,
            default=60,
            metavar="MINUTES",
            help="only files last written at least this many minutes ago (default 60)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would be removed, remove nothing"
        )

    def handle(self, *args, older_than=60, dry_run=False, verbosity=1, **options):
        if older_than < 0:
            raise CommandError("--older-than must be 0 or more minutes.")
        result = sweep(older_than=timedelta(minutes=older_than), dry_run=dry_run)
        if verbosity > 1:
            for name in [*result.old_orphans, *result.thumbnails]:
                self.stdout.write(f"{'would remove' if dry_run else 'removing'} {name}")
        removable = len(result.old_orphans) + len(result.thumbnails)
        done = f"would remove {removable}" if dry_run else f"removed {result.removed}"
        self.stdout.write(
            f"{result.stored} stored files, {result.rows} rows; "
            f"{len(result.orphans)} files without a row, "
            f"{len(result.old_orphans)} of them older than {older_than:g} minutes; "
            f"{len(result.thumbnails)} thumbnails of no file; {done}; "
            f"{len(result.rows_without_file)} rows without their file."
        )
