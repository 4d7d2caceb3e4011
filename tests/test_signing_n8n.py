"""The shipped workflow checks dispatch signatures inside a real n8n (the
oldest supported version, 2.8.4): n8n reads the secret from its environment
in a Code node (N8N_BLOCK_ENV_ACCESS_IN_NODE=false, NODE_FUNCTION_ALLOW_BUILTIN
=crypto), `manage.py n8n_setup`'s signed probe passes, and unsigned, forged or
stale requests get 401 before any step of the workflow runs."""

import os
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import requests

from tasks import signing
from tests import support
from tests.n8n_support import BASE_DIR, N8n, find_launcher
from tests.test_signing import SECRET

pytestmark = [pytest.mark.n8n, pytest.mark.django_db(transaction=True)]

VERSION = "2.8.4"
HEADER_SECRET = "signing-tests-header-secret"
PATH = "chat-reply-offline"
PROBE = {"probe": True, "task_id": 0, "task_type": "probe", "workflow_id": PATH}


class SigningN8n(N8n):
    def env(self):
        env = super().env()
        env.update(
            {
                "N8N_WEBHOOK_SIGNING_SECRET": SECRET,
                "N8N_BLOCK_ENV_ACCESS_IN_NODE": "false",
                "NODE_FUNCTION_ALLOW_BUILTIN": "crypto",
            }
        )
        return env


@pytest.fixture(scope="module")
def signing_n8n(django_db_setup, django_db_blocker):
    binary = find_launcher(VERSION)
    support.need(binary is not None, f"needs n8n {VERSION}: run scripts/install-n8n.sh")
    instance = SigningN8n(VERSION, binary)
    try:
        instance.start()
        instance.create_api_key()
        with mock.patch.dict(os.environ, {"N8N_WEBHOOK_SIGNING_SECRET": SECRET}):
            setup = instance.n8n_setup(
                secret=HEADER_SECRET,
                files=[BASE_DIR / "n8n" / f"{PATH}.json"],
                own_process=True,
            )
        instance.setup = setup
        yield instance
    finally:
        instance.stop()


def post(n8n, body, headers):
    headers = {"Authorization": f"Bearer {HEADER_SECRET}", **headers}
    return requests.post(f"{n8n.base_url}/webhook/{PATH}", data=body, headers=headers, timeout=20)


def test_n8n_setups_signed_probe_passes_the_check(signing_n8n):
    assert signing_n8n.setup.returncode == 0, signing_n8n.setup.stdout + signing_n8n.setup.stderr


def test_a_signed_request_is_accepted(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    body, headers = signing.signed_body(PROBE)
    response = post(signing_n8n, body, headers)
    assert response.status_code == 200, response.text
    assert response.json()["probe"] == "ok"


def test_an_unsigned_request_is_refused(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = ""
    body, headers = signing.signed_body(PROBE)
    response = post(signing_n8n, body, headers)
    assert response.status_code == 401
    assert "signature refused" in response.json()["error"]


def test_a_forged_body_is_refused(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    body, headers = signing.signed_body(PROBE)
    response = post(signing_n8n, body.replace(b'"task_id":0', b'"task_id":1'), headers)
    assert response.status_code == 401
    assert "bad signature" in response.json()["error"]


def test_a_stale_timestamp_is_refused(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    body = signing.encode(PROBE)
    headers = signing.signature_headers(body, now=datetime.now(UTC) - timedelta(minutes=6))
    response = post(signing_n8n, body, {"Content-Type": "application/json", **headers})
    assert response.status_code == 401
    assert "5 minutes" in response.json()["error"]
