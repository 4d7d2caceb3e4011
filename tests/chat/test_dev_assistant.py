"""`manage.py ensure_dev_assistant` (run by `make run`): without n8n, the
development runner is the one default assistant."""

import io

import pytest
from django.core.management import call_command

from chat.models import Assistant

pytestmark = pytest.mark.django_db


def run():
    out = io.StringIO()
    call_command("ensure_dev_assistant", stdout=out)
    return out.getvalue()


def test_it_makes_the_development_runner_the_default_once(settings):
    settings.N8N_BASE_URL = ""
    settings.N8N_CHAT_WORKFLOW = "chat-reply"
    assert "created (the default)" in run()
    assert "exists" in run()
    row = Assistant.objects.get()
    assert (row.name, row.workflow_id, row.is_default, row.is_active) == (
        "Development runner",
        "chat-reply",
        True,
        True,
    )


def test_with_n8n_configured_it_does_nothing(settings):
    settings.N8N_BASE_URL = "http://127.0.0.1:5678"
    assert "n8n_setup" in run()
    assert not Assistant.objects.exists()
