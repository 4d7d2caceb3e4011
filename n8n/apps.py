from django.apps import AppConfig
from django.conf import settings


class N8nConfig(AppConfig):
    """The n8n adapter: HTTP to n8n's webhooks and public API, its streamed
    answer format, signing, the shipped workflow files (`n8n/*.json`) and the
    development runner. It touches no table."""

    name = "n8n"
    verbose_name = "n8n adapter"

    def ready(self):
        from . import checks  # noqa: F401 - registers the deployment checks
        from .signing import secret_key

        if settings.N8N_WEBHOOK_SIGNING_SECRET:
            # A malformed secret is refused at start-up, not at the first dispatch.
            secret_key(settings.N8N_WEBHOOK_SIGNING_SECRET)
