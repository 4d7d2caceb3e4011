from django.conf import settings
from django.core.management.base import BaseCommand

from chat.assistants import ensure_dev_assistant


class Command(BaseCommand):
    help = (
        "With N8N_BASE_URL unset (the development runner plays n8n): make the "
        "development runner the default assistant when no assistant exists. "
        "`make run` runs it; with N8N_BASE_URL set it does nothing (n8n_setup "
        "discovers the assistants)."
    )

    def handle(self, *args, **options):
        if settings.N8N_BASE_URL:
            self.stdout.write("N8N_BASE_URL is set: assistants come from n8n_setup")
            return
        row, created = ensure_dev_assistant(settings.N8N_CHAT_WORKFLOW)
        what = "created (the default)" if created else "exists"
        self.stdout.write(f'assistant "{row.name}" (/webhook/{row.workflow_id}): {what}')
