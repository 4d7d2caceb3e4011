"""`manage.py check --deploy` fails while the development runner would play n8n."""

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def deploy_ids():
    return {message.id for message in checks.run_checks(include_deployment_checks=True)}


def test_deploy_check_reports_the_development_runner(settings):
    settings.N8N_BASE_URL = ""
    assert "n8n.E001" in deploy_ids()
    with pytest.raises(SystemCheckError, match="n8n.E001"):
        call_command("check", "--deploy")


def test_deploy_check_is_quiet_with_n8n_base_url(settings):
    settings.N8N_BASE_URL = "http://127.0.0.1:5678"
    assert "n8n.E001" not in deploy_ids()


def test_the_ordinary_check_does_not_report_it(settings):
    settings.N8N_BASE_URL = ""
    assert "n8n.E001" not in {message.id for message in checks.run_checks()}
