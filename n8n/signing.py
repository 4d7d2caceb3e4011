"""Standard Webhooks signatures on dispatches to n8n.

With N8N_WEBHOOK_SIGNING_SECRET set (Standard Webhooks form: `whsec_` and the
base64 of 24-64 random bytes), every dispatch carries
`webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,` + base64 of
HMAC-SHA256 over `{id}.{timestamp}.{body}`), computed by the `standardwebhooks`
package over the exact bytes sent. The shipped workflows check them in their
"Verify signature" Code node and refuse a wrong signature or a timestamp more
than 5 minutes old. Unset: no signature headers (the bearer secret alone).

The body is serialised once (`encode`) and those bytes are both signed and
sent: re-serialising after signing could change a byte and break the check.
"""

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from standardwebhooks import Webhook

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; ImproperlyConfigured when it is not one."""
    raw = secret.removeprefix(PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        raise ImproperlyConfigured(
            "N8N_WEBHOOK_SIGNING_SECRET must be `whsec_` followed by the base64 of at "
            'least 16 random bytes, e.g. the output of: python -c "import base64, os; '
            "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
        )
    return key


def encode(payload) -> bytes:
    """The body as sent: compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature_headers(body: bytes, msg_id: str | None = None, now: datetime | None = None):
    """The Standard Webhooks headers for `body`; {} while no signing secret is set."""
    secret = settings.N8N_WEBHOOK_SIGNING_SECRET
    if not secret:
        return {}
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    now = now or datetime.now(UTC)
    signature = Webhook(secret_key(secret)).sign(msg_id, now, body.decode("utf-8"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def signed_body(payload, msg_id: str | None = None):
    """(body bytes, headers) for a JSON POST: the bytes to send and their signature."""
    body = encode(payload)
    headers = {"Content-Type": "application/json", **signature_headers(body, msg_id)}
    return body, headers
