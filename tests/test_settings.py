"""Configuration from the environment: refusals and production checks."""

import os
import subprocess
import sys

from tests.support import BASE_DIR


def _manage(*args, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_up_is_refused_without_secret_key_when_debug_is_off():
    result = _manage("check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set and DEBUG is off" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="a-real-production-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_comma_lists_allow_spaces_around_commas():
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.ALLOWED_HOSTS, settings.CSRF_TRUSTED_ORIGINS)",
        DEBUG="1",
        ALLOWED_HOSTS="chat.example.com, localhost ,",
        CSRF_TRUSTED_ORIGINS=" https://chat.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "['chat.example.com', 'localhost'] ['https://chat.example.com']" in result.stdout
