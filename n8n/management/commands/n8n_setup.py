from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from n8n import discovery
from n8n.api import N8nApi, N8nApiError
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
        parser.add_argument(
            "--assistants-only",
            action="store_true",
            help=(
                "install nothing: only read the active workflows tagged `chat` and "
                "create, update or deactivate the assistants they make"
            ),
        )

    def handle(
        self, *args, files=(), dry_run=False, no_probe=False, assistants_only=False, **options
    ):
        for name in ("N8N_BASE_URL", "N8N_API_KEY"):
            if not getattr(settings, name):
                raise CommandError(f"{name} is not set: n8n_setup needs it")
        api = N8nApi(settings.N8N_BASE_URL, settings.N8N_API_KEY)
        if assistants_only:
            changed = self.assistants(api, dry_run=dry_run, required=True)
            self.stdout.write(self.done(dry_run, changed))
            return
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
        changed = self.assistants(api, dry_run=dry_run, required=False)
        self.stdout.write(self.done(dry_run, report.changed or changed))

    @staticmethod
    def done(dry_run, changed) -> str:
        if dry_run:
            return "dry run: " + ("changes listed above" if changed else "nothing to change")
        return "done: " + ("changes made" if changed else "nothing changed")

    def assistants(self, api, *, dry_run, required) -> bool:
        """Discovery: one line per assistant; True when a row changed.

        After a full install a database that cannot take the assistants (not
        migrated yet) is a warning, the workflows being installed; with
        --assistants-only it is the failure it is."""
        try:
            found, seen = discovery.discover(api)
        except N8nApiError as exc:
            raise CommandError(f"reading the workflows tagged chat failed: {exc.reason}") from None
        if dry_run:
            for workflow in found:
                self.stdout.write(
                    f'assistant "{workflow.name}" (/webhook/{workflow.webhook_path}): '
                    "found (dry run: nothing stored)"
                )
            return False
        sink = discovery.get_sink()
        if sink is None:
            raise CommandError("no app stores assistants (is chat in INSTALLED_APPS?)")
        try:
            lines = sink(found, seen)
        except Exception as exc:  # noqa: BLE001 - the database's own words, for the operator
            if required:
                raise CommandError(f"storing the assistants failed: {exc}") from None
            self.stdout.write(
                f"assistants: not updated ({type(exc).__name__}: {exc}); "
                "run manage.py migrate, then n8n_setup --assistants-only"
            )
            return False
        if not found and not lines:
            self.stdout.write("assistants: no active workflow is tagged chat")
        for line in lines:
            self.stdout.write(line)
        return any(not line.endswith(("unchanged", "inactive")) for line in lines)
