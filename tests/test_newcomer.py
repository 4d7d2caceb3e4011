"""The README's first steps work as written: make run's address and callbacks, make superuser."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

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


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "PUBLIC_BASE_URL", "RUN_ADDR")}
    env.update(extra)
    return env


def _public_base_url(**extra):
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c"]
        + ["from django.conf import settings; print(settings.PUBLIC_BASE_URL)"],
        cwd=BASE_DIR,
        env=_env(DEBUG="1", **extra),
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
    env = _env(
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


def _log_in(session, base_url, username):
    session.get(f"{base_url}/accounts/login/", timeout=10)
    token = session.cookies["csrftoken"]
    answer = session.post(
        f"{base_url}/accounts/login/",
        data={"username": username, "password": "a-long-Passphrase-42"},
        headers={"X-CSRFToken": token, "Referer": f"{base_url}/accounts/login/"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.url.endswith("/chat/"), answer.url
    return session.cookies["csrftoken"]  # a new one: Django rotates it at login


@pytest.mark.django_db(transaction=True)
def test_make_run_prints_its_address_and_replies_arrive_on_a_moved_port(make_user, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    make_user("newcomer")
    port = support.free_port()
    env = _env(
        RUN_ADDR=f"127.0.0.1:{port}",
        DEBUG="1",
        DATABASE_URL=support.served_database_url(),
        DEV_RUNNER_STEP_SECONDS="0.1",
        SECURE_SSL_REDIRECT="0",
    )
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first = process.stdout.readline()
        base_url = f"http://127.0.0.1:{port}"
        assert f"Serving on {base_url}/" in first
        assert f"calls back at {base_url}" in first
        support.wait_for_http(f"{base_url}/healthz", process=process)
        session = requests.Session()
        token = _log_in(session, base_url, "newcomer")
        answer = session.post(
            f"{base_url}/chat/new/",
            data={"content": "Do you hear me on this port?"},
            headers={"X-CSRFToken": token, "Referer": f"{base_url}/chat/", "Accept": "text/html"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text[:500]
        conversation = re.search(r"/chat/(\d+)/", answer.url).group(1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            page = session.get(f"{base_url}/chat/{conversation}/", timeout=10).text
            if "message--assistant" in page:
                break
            time.sleep(0.3)
        assert "message--assistant" in page, "the reply never arrived: callbacks went elsewhere"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        process.stdout.close()
