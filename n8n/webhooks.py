"""HTTP to n8n's webhooks, and nothing else: no database, no task rows.

One dispatch, two ways of reading its answer, one set of rules: the request
is built once (`build_request`: the exact bytes, signed, with the dispatch
time-outs), an answer is classified by `classify` (status and body → an
`Outcome`) and a request that got no answer by `failed` (the transport error
→ an `Outcome` and a `Failure`), whichever client sent it. `post` sends it
from the calling thread and reads the answer plainly (TASK_STREAM_READER
off); `tasks/outbound/streaming.py` sends the same request from its event loop and
reads n8n's streamed answers as they come.

The raw error text (URLs, library messages) is kept in `DispatchResult.error`
for the admin and the logs; what users read is chosen by the dispatcher from
the outcome, never from that text.
"""

import enum
import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

from . import chunks, signing, transport
from .executions import execution_id_of

BODY_EXCERPT_CHARS = 500
# A plain answer's body is read up to this size (error_details keeps its start).
MAX_PLAIN_BODY_BYTES = 1_048_576


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


def classify(status_code, body, streamed=False) -> DispatchResult:
    """An answer (its status and body, bytes or text) as a DispatchResult.

    `streamed`: the answer `looks_streamed` and was read whole (TASK_STREAM_READER
    off), so its first line decides as the stream reader's would (docs/PROTOCOL.md,
    "A streamed answer"): n8n's stream beginning with an `error` chunk is a
    refusal (`streamed_refusal`), and an id its first item announces is its
    execution id."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body or ""
    excerpt = text[:BODY_EXCERPT_CHARS]
    if 200 <= status_code < 300:
        stream = chunks.parse_body(text) if streamed else None
        if stream:
            kind, content = stream[0]
            if kind == "error":
                return streamed_refusal(status_code, content, text.lstrip().split("\n", 1)[0])
            data = next((c for k, c in stream if k == "item"), None)
            execution_id = chunks.announced_execution_id(data)
        else:
            execution_id = execution_id_of(_json(text))
        return DispatchResult(Outcome.ACCEPTED, status_code, excerpt, execution_id=execution_id)
    if status_code >= 500:
        return DispatchResult(
            Outcome.RETRYABLE, status_code, excerpt, f"n8n answered HTTP {status_code}"
        )
    reason = _REFUSAL_REASONS.get(status_code, "n8n refused the task")
    return DispatchResult(Outcome.REFUSED, status_code, excerpt, f"{reason}, HTTP {status_code}")


def _json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def failed(exc, url) -> DispatchResult:
    """A dispatch that got no answer (one of `transport.ERRORS`): always worth
    another try, as a time-out or a connection failure (`transport.timed_out`)."""
    shown = without_credentials(url)
    if transport.timed_out(exc):
        return DispatchResult(
            Outcome.RETRYABLE,
            error=f"no answer within {settings.TASK_DISPATCH_READ_TIMEOUT:g} s from {shown}",
            kind=Failure.TIMEOUT,
        )
    return DispatchResult(
        Outcome.RETRYABLE,
        error=f"could not connect to {shown}: {type(exc).__name__} {exc}".rstrip(),
        kind=Failure.CONNECTION,
    )


def looks_streamed(response) -> bool:
    """Maybe n8n's Streaming mode: a 2xx JSON answer with no length (chunked).

    Only a maybe: its first line decides."""
    if not 200 <= response.status_code < 300 or "content-length" in response.headers:
        return False
    kind = response.headers.get("content-type", "")
    return "json" in kind or "ndjson" in kind


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


def dispatch_timeout() -> httpx.Timeout:
    """Until an answer's headers (a plain answer: its body): the dispatch time-outs."""
    return transport.timeout(
        settings.TASK_DISPATCH_CONNECT_TIMEOUT, settings.TASK_DISPATCH_READ_TIMEOUT
    )


def build_request(client, url, body, headers) -> httpx.Request:
    """The dispatch as sent by either client: the body serialised once and those
    very bytes signed (Standard Webhooks headers when N8N_WEBHOOK_SIGNING_SECRET
    is set; the message id is the Idempotency-Key, so every attempt of a task
    shares it)."""
    data, signed = signing.signed_body(body, msg_id=headers.get("Idempotency-Key"))
    return client.build_request(
        "POST", url, content=data, headers={**signed, **headers}, timeout=dispatch_timeout()
    )


def read_plainly(response) -> bytes:
    """A whole answer, at most MAX_PLAIN_BODY_BYTES of it."""
    raw = bytearray()
    for part in response.iter_bytes():
        raw += part
        if len(raw) > MAX_PLAIN_BODY_BYTES:
            break
    return bytes(raw[:MAX_PLAIN_BODY_BYTES])


def post(url, body, headers) -> DispatchResult:
    """Send a dispatch from this thread and read its answer plainly.

    The same request as the stream reader's, on a blocking client: no event
    loop involved (TASK_STREAM_READER off). A streamed answer is read whole
    (up to MAX_PLAIN_BODY_BYTES), so its text is not shown as it comes and the
    thread waits for its end; a pause longer than the read time-out counts as
    a time-out."""
    try:
        with transport.client(dispatch_timeout()) as client:
            request = build_request(client, url, body, headers)
            response = client.send(request, stream=True)
            try:
                raw = read_plainly(response)
            finally:
                response.close()
    except transport.ERRORS as exc:
        return failed(exc, url)
    return classify(response.status_code, raw, streamed=looks_streamed(response))
