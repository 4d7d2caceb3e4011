"""The README's first step on a real server: `make run` prints its address, and
replies arrive on a moved port (scripts/run.sh, its Daphne and development runner)."""

import os
import re
import signal
import subprocess
import time

import pytest
import requests

from tests import support
from tests.chatproject.test_newcomer import newcomer_env
from tests.support import BASE_DIR


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
    env = newcomer_env(
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
