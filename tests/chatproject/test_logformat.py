"""Log lines: plain by default, one JSON object per line with LOG_FORMAT=json,
the fields passed with `extra=` kept as fields either way."""

import json
import logging
import os
import subprocess
import sys

import pytest

from chatproject.logformat import PlainFormatter, json_formatter
from tests.support import BASE_DIR


def run_python(code, **env):
    """Python with the project's settings in a fresh process (settings read at import)."""
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatproject.settings", "DEBUG": "1"}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=BASE_DIR,
        env={**full_env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def record(message="dispatch attempt", **extra):
    rec = logging.LogRecord("tasks.outbound.dispatch", logging.INFO, __file__, 1, message, (), None)
    rec.__dict__.update(extra)
    return rec


def test_the_plain_format_appends_the_extra_fields_as_key_value():
    line = PlainFormatter().format(record(task_id=42, outcome="accepted", duration_ms=12.5))
    assert line.endswith(
        "INFO tasks.outbound.dispatch dispatch attempt task_id=42 outcome=accepted duration_ms=12.5"
    )


def test_the_plain_format_without_extra_fields_is_the_usual_line():
    line = PlainFormatter().format(record())
    assert line.endswith("INFO tasks.outbound.dispatch dispatch attempt")


def test_the_json_format_is_one_object_with_the_extra_fields():
    line = json_formatter().format(record(task_id=42, execution_id="7", outcome="accepted"))
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "dispatch attempt"
    assert data["level"] == "INFO"
    assert data["logger"] == "tasks.outbound.dispatch"
    assert data["task_id"] == 42
    assert data["execution_id"] == "7"
    assert data["outcome"] == "accepted"
    assert data["time"].endswith("+00:00")


def test_a_traceback_stays_inside_the_json_object():
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record(task_id=1)
        rec.exc_info = sys.exc_info()
    data = json.loads(json_formatter().format(rec))
    assert "ValueError: boom" in data["exc_info"]


@pytest.mark.parametrize("value", ["json", "plain"])
def test_log_format_selects_the_console_formatter(value):
    result = run_python(
        "from django.conf import settings;"
        "print(settings.LOGGING['handlers']['console']['formatter'])",
        LOG_FORMAT=value,
    )
    assert result.stdout.strip() == value, result.stderr


def test_an_unknown_log_format_stops_the_start_up_saying_why():
    result = run_python("", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT must be plain or json" in result.stderr
