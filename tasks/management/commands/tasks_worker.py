import signal

from django.core.management.base import BaseCommand

from tasks.worker import Worker


class Command(BaseCommand):
    help = (
        "Dispatch pending tasks to n8n, retry failed dispatches, and turn overdue tasks "
        "into `timeout`. Runs until SIGTERM/SIGINT; --once runs one pass."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run one pass and exit")
        parser.add_argument(
            "--poll", type=float, default=None, help="seconds between passes (default: setting)"
        )

    def handle(self, *args, once=False, poll=None, **options):
        worker = Worker(poll_seconds=poll)
        if once:
            counts = worker.run_once()
            self.stdout.write(
                "expired {expired}, dispatched {dispatched}, retry {retry}, failed {failed}".format(
                    **counts
                )
            )
            return
        signal.signal(signal.SIGTERM, worker.stop)
        signal.signal(signal.SIGINT, worker.stop)
        self.stdout.write(f"tasks worker running (poll every {worker.poll_seconds}s)")
        worker.run_forever()
        self.stdout.write("tasks worker stopped")
