"""HTTP to n8n's webhooks, and nothing else: no database, no task rows.

`post(workflow_id, body, headers)` sends one dispatch and classifies the
answer as an `Outcome`. The raw error text (URLs, library messages) is kept in
`DispatchResult.error` for the admin and the logs; what users read is chosen
by the dispatcher from the outcome, never from that text.
"""

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings

from . import signing
from .executions import execution_id_of

BODY_EXCERPT_CHARS = 500


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"  # 2xx: the workflow runs
    REFUSED = "refused"  # 4xx and other non-2xx, non-5xx answers: final
    RETRYABLE = "retryable"  # 5xx, time-out, connection error: try again


class Failure(enum.StrEnum):
    HTTP = "http"
    CONNECTION = "connection"
    TIMEOUT = "timeout"


@dataclass
class DispatchResult:
    outcome: Outcome
    http_status: int | None = None
    body: str = ""
    error: str = ""  # technical words, for last_error and the admin only
    kind: Failure = Failure.HTTP
    execution_id: str = ""

    def as_attempt(self, number, at) -> dict:
        attempt = {"attempt": number, "at": at.isoformat(), "outcome": str(self.outcome)}
        if self.http_status is not None:
            attempt["http_status"] = self.http_status
        if self.error:
            attempt["error"] = self.error
        if self.execution_id:
            attempt["execution_id"] = self.execution_id
        return attempt


_REFUSAL_REASONS = {
    401: "n8n refused the credentials (check N8N_WEBHOOK_SECRET and the Header Auth)",
    403: "n8n refused the credentials (check N8N_WEBHOOK_SECRET and the Header Auth)",
    404: "n8n has no active workflow at this webhook path (imported but not active?)",
}


def classify(status_code, body_text, data) -> DispatchResult:
    excerpt = (body_text or "")[:BODY_EXCERPT_CHARS]
    if 200 <= status_code < 300:
        return DispatchResult(
            Outcome.ACCEPTED, status_code, excerpt, execution_id=execution_id_of(data)
        )
    if status_code >= 500:
        return DispatchResult(
            Outcome.RETRYABLE, status_code, excerpt, f"n8n answered HTTP {status_code}"
        )
    reason = _REFUSAL_REASONS.get(status_code, "n8n refused the task")
    return DispatchResult(Outcome.REFUSED, status_code, excerpt, f"{reason}, HTTP {status_code}")


def streamed_refusal(status_code, content, line) -> DispatchResult:
    """A streamed answer whose first chunk is an `error`: the workflow failed (or
    refused the request, e.g. its signature check) before writing anything. Its
    2xx status was sent before any node ran, so the body is what counts: final,
    like a 4xx."""
    reason = " ".join(str(content or "").split())[:BODY_EXCERPT_CHARS] or "no details given"
    return DispatchResult(
        Outcome.REFUSED,
        status_code,
        (line or "")[:BODY_EXCERPT_CHARS],
        f"the workflow's streamed answer began with an error: {reason}",
    )


def webhook_url(workflow_id) -> str:
    return f"{settings.N8N_BASE_URL}/webhook/{workflow_id}"


def without_credentials(url) -> str:
    """The URL for error texts: any `user:password@` is dropped."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def signed_request(body, headers) -> tuple[bytes, dict]:
    """The bytes to send and the headers to send them with: serialised once,
    signed over those very bytes (Standard Webhooks headers when
    N8N_WEBHOOK_SIGNING_SECRET is set; the message id is the Idempotency-Key,
    so every attempt of a task shares it)."""
    data = signing.encode(body)
    return data, {
        "Content-Type": "application/json",
        **headers,
        **signing.signature_headers(data, msg_id=headers.get("Idempotency-Key")),
    }


def post(workflow_id, body, headers) -> DispatchResult:
    """POST a dispatch body to the workflow's webhook and classify the answer.

    The body is serialised once and those very bytes are sent and signed
    (Standard Webhooks headers when N8N_WEBHOOK_SIGNING_SECRET is set; the
    message id is the Idempotency-Key, so every attempt of a task shares it).
    """
    url = webhook_url(workflow_id)
    shown = without_credentials(url)
    timeout = (settings.TASK_DISPATCH_CONNECT_TIMEOUT, settings.TASK_DISPATCH_READ_TIMEOUT)
    data, headers = signed_request(body, headers)
    try:
        response = requests.post(
            url, data=data, headers=headers, timeout=timeout, allow_redirects=False
        )
    except requests.ConnectTimeout as exc:
        return DispatchResult(
            Outcome.RETRYABLE, error=f"could not connect to {shown}: {exc}", kind=Failure.CONNECTION
        )
    except requests.Timeout:
        return DispatchResult(
            Outcome.RETRYABLE,
            error=f"no answer within {settings.TASK_DISPATCH_READ_TIMEOUT:g} s from {shown}",
            kind=Failure.TIMEOUT,
        )
    except requests.RequestException as exc:
        return DispatchResult(
            Outcome.RETRYABLE, error=f"could not connect to {shown}: {exc}", kind=Failure.CONNECTION
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    return classify(response.status_code, response.text, data)
