"""Signed dispatches: Standard Webhooks headers over the exact body bytes, and
the shipped workflows' check of them (run under Node as n8n's Code node runs it)."""

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from standardwebhooks import Webhook, WebhookVerificationError

from n8n import signing
from tests import support

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
PAYLOAD = {"task_id": 42, "input": {"message": "héllo \u2028 <b>", "history": []}}


@pytest.fixture
def signing_secret(settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    return SECRET


def test_without_a_secret_no_signature_headers_are_sent(settings):
    settings.N8N_WEBHOOK_SIGNING_SECRET = ""
    body, headers = signing.signed_body(PAYLOAD)
    assert headers == {"Content-Type": "application/json"}
    assert json.loads(body) == PAYLOAD


def test_the_signature_verifies_with_standardwebhooks(signing_secret):
    body, headers = signing.signed_body(PAYLOAD, msg_id="task-42")
    assert headers["webhook-id"] == "task-42"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body, headers) == PAYLOAD


def test_a_changed_byte_fails_the_check(signing_secret):
    body, headers = signing.signed_body(PAYLOAD)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace(b"42", b"43"), headers)


def test_another_secret_fails_the_check(signing_secret):
    body, headers = signing.signed_body(PAYLOAD)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)


@pytest.mark.parametrize("secret", ["not base64 at all!", "whsec_", "whsec_c2hvcnQ="])
def test_a_malformed_secret_is_refused_with_how_to_make_one(secret):
    with pytest.raises(ImproperlyConfigured, match="whsec_"):
        signing.secret_key(secret)


# --- the workflows' "Verify signature" Code node, under Node ---------------------------------

WORKFLOWS = ["chat-reply.json", "chat-reply-offline.json", "feedback.json"]

HARNESS = """
const crypto = require('crypto');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const item = { json: { headers: input.headers, body: JSON.parse(input.body) },
               binary: { data: { data: Buffer.from(input.body).toString('base64') } } };
const $env = new Proxy({}, { get(target, name) {
  if (input.envBlocked) throw new Error('access to env vars denied');
  return input.env[name];
} });
const $input = { first: () => item };
const context = { helpers: { getBinaryDataBuffer: async () => Buffer.from(input.body) } };
const run = new Function('$env', '$input', 'require', 'Buffer',
  'return (async function () {' + input.code + '\\n}).call(this);');
run.call(context, $env, $input, require, Buffer)
  .then((out) => process.stdout.write(JSON.stringify(out[0].json)));
"""


def workflow_code(name):
    workflow = json.loads((support.BASE_DIR / "n8n" / name).read_text())
    node = next(n for n in workflow["nodes"] if n["name"] == "Verify signature")
    webhook = next(n for n in workflow["nodes"] if n["name"] == "Webhook")
    assert webhook["parameters"]["options"]["rawBody"] is True  # the node needs the raw bytes
    return node["parameters"]["jsCode"]


def run_node(code, body, headers, env=None, env_blocked=False):
    node = shutil.which("node")
    support.need(node is not None, "needs Node.js (installed with n8n)")
    payload = {
        "code": code,
        "body": body.decode(),
        "headers": headers,
        "env": env or {},
        "envBlocked": env_blocked,
    }
    result = subprocess.run(
        [node, "-e", HARNESS],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def lower(headers):
    return {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_the_workflow_accepts_a_good_signature(workflow, signing_secret):
    body, headers = signing.signed_body(PAYLOAD)
    out = run_node(
        workflow_code(workflow), body, lower(headers), {"N8N_WEBHOOK_SIGNING_SECRET": SECRET}
    )
    assert out["signature"] == "valid"
    assert out["body"] == PAYLOAD


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_the_workflow_refuses_a_bad_signature(workflow, signing_secret):
    body, headers = signing.signed_body(PAYLOAD)
    tampered = body.replace(b"42", b"43")
    out = run_node(
        workflow_code(workflow), tampered, lower(headers), {"N8N_WEBHOOK_SIGNING_SECRET": SECRET}
    )
    assert (out["signature"], out["signature_error"]) == ("refused", "bad signature")


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_the_workflow_refuses_a_timestamp_older_than_5_minutes(workflow, signing_secret):
    body = signing.encode(PAYLOAD)
    old = datetime.now(UTC) - timedelta(minutes=6)
    headers = signing.signature_headers(body, now=old)
    out = run_node(workflow_code(workflow), body, headers, {"N8N_WEBHOOK_SIGNING_SECRET": SECRET})
    assert out["signature"] == "refused"
    assert "5 minutes" in out["signature_error"]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_the_workflow_refuses_a_request_without_signature(workflow):
    body = signing.encode(PAYLOAD)
    out = run_node(workflow_code(workflow), body, {}, {"N8N_WEBHOOK_SIGNING_SECRET": SECRET})
    assert out["signature"] == "refused"


@pytest.mark.parametrize("workflow", WORKFLOWS)
@pytest.mark.parametrize("blocked", [False, True])
def test_without_a_secret_in_n8n_the_workflow_passes_requests_on(workflow, blocked):
    body = signing.encode(PAYLOAD)
    out = run_node(workflow_code(workflow), body, {}, {}, env_blocked=blocked)
    assert out["signature"] == "unchecked"
    assert out["body"] == PAYLOAD


# --- the dispatch itself -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_dispatch_is_signed_over_the_bytes_it_sends(dispatch_settings, fake_n8n, user):
    from tasks import services
    from tests.task_support import chat_task

    dispatch_settings.N8N_WEBHOOK_SIGNING_SECRET = SECRET
    fake_n8n.expect_request("/webhook/chat-reply", method="POST").respond_with_json({})
    task = chat_task(user, text="naïve \u2028 “quotes” 🎉")
    services.claim_and_dispatch(task.pk)
    [(request, _response)] = fake_n8n.log
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["webhook-id"] == f"task-{task.pk}"
    assert Webhook(SECRET).verify(request.get_data(), headers) == request.get_json()
    assert request.get_json()["input"]["message"] == "naïve \u2028 “quotes” 🎉"


@pytest.mark.django_db
def test_a_dispatch_without_a_signing_secret_has_no_signature(dispatch_settings, fake_n8n, user):
    from tasks import services
    from tests.task_support import chat_task

    dispatch_settings.N8N_WEBHOOK_SIGNING_SECRET = ""
    fake_n8n.expect_request("/webhook/chat-reply", method="POST").respond_with_json({})
    task = chat_task(user)
    services.claim_and_dispatch(task.pk)
    [(request, _response)] = fake_n8n.log
    headers = {name.lower() for name in request.headers.keys()}
    assert not headers & {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert request.headers["Authorization"] == "Bearer s3cret"
