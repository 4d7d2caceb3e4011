from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from n8n.api import N8nApi
from n8n.setup import Setup, SetupError
from n8n.workflows import default_workflow_files


class Command(BaseCommand):
    help = (
        "Create or update the shipped n8n workflows (n8n/*.json) in the n8n at N8N_BASE_URL "
        "through its public API (N8N_API_KEY), create the Header Auth credential from "
        "N8N_WEBHOOK_SECRET when missing, activate the workflows and probe their webhooks. "
        "Prints one line per workflow; exits non-zero naming the cause of a failure."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "files",
            nargs="*",
            type=Path,
            help="workflow files to install (default: n8n/*.json, not n8n/tests/)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would change, change nothing"
        )
        parser.add_argument(
            "--no-probe", action="store_true", help="skip the webhook probe after activation"
        )

    def handle(self, *args, files=(), dry_run=False, no_probe=False, **options):
        for name in ("N8N_BASE_URL", "N8N_API_KEY"):
            if not getattr(settings, name):
                raise CommandError(f"{name} is not set: n8n_setup needs it")
        api = N8nApi(settings.N8N_BASE_URL, settings.N8N_API_KEY)
        setup = Setup(
            api,
            list(files) or default_workflow_files(settings.BASE_DIR),
            webhook_secret=settings.N8N_WEBHOOK_SECRET,
            dry_run=dry_run,
            probe=not no_probe,
            model_url=settings.N8N_MODEL_BASE_URL,
            model_api_key=settings.N8N_MODEL_API_KEY,
            out=self.stdout.write,
        )
        try:
            report = setup.run()
        except SetupError as exc:
            raise CommandError(str(exc)) from None
        if report.failed:
            causes = sorted({o.error.cause for o in report.failed})
            names = ", ".join(o.webhook_path for o in report.failed)
            raise CommandError(
                f"{len(report.failed)} workflow(s) failed ({names}): " + "; ".join(causes)
            )
        if dry_run:
            self.stdout.write(
                "dry run: " + ("changes listed above" if report.changed else "nothing to change")
            )
        else:
            self.stdout.write("done: " + ("changes made" if report.changed else "nothing changed"))
