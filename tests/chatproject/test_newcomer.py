"""The README's first steps work as written: make run's address and callbacks, make superuser."""

import os
import subprocess
import sys

import pytest

from chatproject.runaddr import base_url_from_run_addr
from tests import support
from tests.support import BASE_DIR


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("", "http://127.0.0.1:8000"),
        ("8001", "http://127.0.0.1:8001"),
        ("127.0.0.1:8002", "http://127.0.0.1:8002"),
        ("0.0.0.0:8003", "http://127.0.0.1:8003"),
        ("0:8004", "http://127.0.0.1:8004"),
        ("localhost:8005", "http://localhost:8005"),
        ("[::1]:8006", "http://[::1]:8006"),
        ("[::]:8007", "http://127.0.0.1:8007"),
        ("nonsense", "http://127.0.0.1:8000"),
    ],
)
def test_the_callback_address_follows_run_addr(addr, url):
    assert base_url_from_run_addr(addr) == url


def newcomer_env(**extra):
    """The environment of a fresh shell: no DEBUG, PUBLIC_BASE_URL or RUN_ADDR."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "PUBLIC_BASE_URL", "RUN_ADDR")}
    env.update(extra)
    return env


def _public_base_url(**extra):
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c"]
        + ["from django.conf import settings; print(settings.PUBLIC_BASE_URL)"],
        cwd=BASE_DIR,
        env=newcomer_env(DEBUG="1", **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_settings_build_callbacks_on_run_addr_when_public_base_url_is_unset():
    assert _public_base_url(RUN_ADDR="127.0.0.1:8011") == "http://127.0.0.1:8011"


def test_public_base_url_wins_over_run_addr():
    url = _public_base_url(RUN_ADDR="127.0.0.1:8011", PUBLIC_BASE_URL="https://chat.example.com/")
    assert url == "https://chat.example.com"


@pytest.mark.django_db(transaction=True)
def test_make_superuser_works_without_debug_set():
    env = newcomer_env(
        DATABASE_URL=support.served_database_url(),
        DJANGO_SUPERUSER_USERNAME="boss",
        DJANGO_SUPERUSER_PASSWORD="a-long-Passphrase-42",
        DJANGO_SUPERUSER_EMAIL="boss@example.com",
    )
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        ["make", "-s", "superuser", "SUPERUSER_ARGS=--noinput"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.get(username="boss").is_superuser
