"""The shipped workflow checks dispatch signatures inside a real n8n (each
version of N8N_VERSIONS, an n8n of its own with the signing secret): n8n
reads the secret from its environment in a Code node
(N8N_BLOCK_ENV_ACCESS_IN_NODE=false, NODE_FUNCTION_ALLOW_BUILTIN=crypto),
`manage.py n8n_setup`'s signed probe passes, and unsigned, forged or stale
requests are refused before any step of the workflow runs. The workflow
streams, so n8n has said 200 before its first node ran: the refusal is the
stream's one chunk, an `error` whose content gives the reason."""

import json
import os
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import requests

from n8n import chunks as n8n_stream
from n8n import signing
from tests import support
from tests.e2e.n8n_support import BASE_DIR, N8n, find_launcher, versions
from tests.n8n.test_signing import SECRET
from tests.task_support import chat_task

pytestmark = [pytest.mark.n8n, pytest.mark.django_db(transaction=True)]

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


@pytest.fixture(scope="module", params=versions())
def signing_n8n(request, django_db_setup, django_db_blocker):
    version = request.param
    binary = find_launcher(version)
    support.need(binary is not None, f"needs n8n {version}: run scripts/install-n8n.sh {version}")
    instance = SigningN8n(version, binary)
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


def refusal(response):
    """The reason of a streamed refusal (an `error` chunk first), else fails."""
    assert response.status_code == 200, response.text
    chunks = n8n_stream.parse_body(response.text)
    assert chunks and chunks[0][0] == "error", response.text
    assert n8n_stream.streamed_text(chunks) == ""
    return chunks[0][1]


def test_n8n_setups_signed_probe_passes_the_check(signing_n8n):
    assert signing_n8n.setup.returncode == 0, signing_n8n.setup.stdout + signing_n8n.setup.stderr


def test_a_signed_request_is_accepted(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    body, headers = signing.signed_body(PROBE)
    response = post(signing_n8n, body, headers)
    assert response.status_code == 200, response.text
    assert json.loads(n8n_stream.streamed_text(n8n_stream.parse_body(response.text))) == {
        "probe": "ok",
        "workflow_id": PATH,
    }


def test_an_unsigned_request_is_refused(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = ""
    body, headers = signing.signed_body(PROBE)
    response = post(signing_n8n, body, headers)
    assert refusal(response) == "signature refused - missing signature headers"


def test_a_forged_body_is_refused(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    body, headers = signing.signed_body(PROBE)
    response = post(signing_n8n, body.replace(b'"task_id":0', b'"task_id":1'), headers)
    assert refusal(response) == "signature refused - bad signature"


def test_a_stale_timestamp_is_refused(signing_n8n, settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    body = signing.encode(PROBE)
    headers = signing.signature_headers(body, now=datetime.now(UTC) - timedelta(minutes=6))
    response = post(signing_n8n, body, {"Content-Type": "application/json", **headers})
    assert "signature refused - timestamp older than 5 minutes" in refusal(response)


def test_the_dispatcher_fails_an_unsigned_dispatch_at_once_from_the_streamed_refusal(
    signing_n8n, settings, user
):
    from tasks.models import TaskWords
    from tasks.outbound import dispatch

    settings.N8N_BASE_URL = signing_n8n.base_url
    settings.N8N_WEBHOOK_SECRET = HEADER_SECRET
    settings.N8N_WEBHOOK_SIGNING_SECRET = ""  # this app forgot the secret n8n checks
    task = chat_task(user, workflow_id=PATH)
    assert dispatch.claim_and_dispatch(task.pk) == dispatch.Recorded.FAILED
    task.refresh_from_db()
    assert (task.status, task.attempts) == ("failed", 1)
    assert task.status_message == TaskWords.REFUSED
    assert task.error_details["http_status"] == 200
    assert "signature refused - missing signature headers" in task.error_details["error"]
    assert task.n8n_execution_id == ""  # refused before the Accept node
