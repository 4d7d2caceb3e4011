"""Deployment checks of the n8n adapter (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def n8n_base_url_is_set(app_configs, **kwargs):
    """Without N8N_BASE_URL the development runner plays n8n: every reply would
    be its echo. Only reported by `check --deploy`; the runner itself still runs
    (`make run`, the bench and the fault run rely on it)."""
    if settings.N8N_BASE_URL:
        return []
    return [
        Error(
            "N8N_BASE_URL is not set: the development workflow runner answers instead of n8n.",
            hint="Set N8N_BASE_URL to your n8n (e.g. http://127.0.0.1:5678); see docs/N8N.md.",
            id="n8n.E001",
        )
    ]
