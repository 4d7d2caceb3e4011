"""Refuse oversized request bodies in Daphne before they are read.

Daphne (Twisted) buffers a request's whole body before it calls the ASGI
application, so a check in Django (or any ASGI middleware) comes after the
memory or disk is spent: a 500 MiB POST grew the process by ~320 MB before
its 413. This request class counts the body while Twisted receives it:

- a `Content-Length` over the limit is answered 413 at once, before the body
  is read (the client sees the answer while it is still sending, or before it
  starts when it sent `Expect: 100-continue`), and the connection is closed;
- a chunked body is counted chunk by chunk and refused the same way as soon as
  it passes the limit.

The limit is TASK_WEBHOOK_MAX_BYTES for the n8n webhook (`/tasks/{id}/webhook/`,
answered with the webhook's JSON error); for the send form
(`/chat/{id}/messages/`, the one URL that takes files) what the attachment
limits allow (ATTACHMENT_MAX_FILES × ATTACHMENT_MAX_BYTES, plus
DATA_UPLOAD_MAX_MEMORY_SIZE for the text); DATA_UPLOAD_MAX_MEMORY_SIZE for
every other request. Twisted keeps a body over 100 kB in a temporary file, not
in memory, until it is handed to Django. `install()` puts the class
into Daphne's HTTP factory; chatproject/asgi.py calls it, so both
`manage.py runserver` (make run) and the `daphne` command use it.
"""

import io
import json
import re

from daphne import server as daphne_server
from daphne.http_protocol import HTTPFactory, WebRequest
from django.conf import settings

WEBHOOK_PATH = re.compile(rb"^/tasks/\d+/webhook/?(?:\?|$)")
SEND_PATH = re.compile(rb"^/chat/\d+/messages/?(?:\?|$)")
# How long a refused connection may go on sending (into the void) before it is cut.
LINGER_SECONDS = 2.0


def body_limit(path: bytes):
    """The largest body accepted for `path`, in bytes; None for no limit."""
    if WEBHOOK_PATH.match(path or b""):
        return settings.TASK_WEBHOOK_MAX_BYTES
    if SEND_PATH.match(path or b""):
        from chat.files.kinds import body_limit as send_limit

        return send_limit()
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def refusal(path: bytes, limit: int) -> bytes:
    """The raw 413 answer: JSON for the webhook (as its view answers), text otherwise."""
    if WEBHOOK_PATH.match(path or b""):
        body = json.dumps({"error": f"the body is larger than {limit} bytes"}).encode()
        content_type = b"application/json"
    elif SEND_PATH.match(path or b""):
        from django.template.defaultfilters import filesizeformat

        body = (
            f"The message and its files are larger than {filesizeformat(limit)} together: "
            f"send at most {settings.ATTACHMENT_MAX_FILES} files of at most "
            f"{filesizeformat(settings.ATTACHMENT_MAX_BYTES)} each.\n"
        ).encode()
        content_type = b"text/plain; charset=utf-8"
    else:
        body = f"The request body is larger than {limit} bytes.\n".encode()
        content_type = b"text/plain; charset=utf-8"
    return (
        b"HTTP/1.1 413 Content Too Large\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + body
    )


class BoundedWebRequest(WebRequest):
    """Daphne's request, counting its body as it arrives."""

    refused = False
    limit = None
    received = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Twisted parses a form body itself for `request.args` (the whole body
        # read into memory and split by the email package), which Daphne never
        # reads: Django parses it again, in chunks. A 10 MiB upload cost ~100 MB
        # of memory and 3 s there (bench/uploads.py).
        self._parsePOSTFormSubmission = False

    def gotLength(self, length):
        path = getattr(self.channel, "_path", b"")
        self.limit = body_limit(path)
        if self.limit is not None and length is not None and length > self.limit:
            # No 100 Continue after this: the answer is already final.
            self.requestHeaders.removeHeader(b"Expect")
            self.content = io.BytesIO()
            self.refuse(path)
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        if self.limit is not None and self.received > self.limit:
            self.refuse(getattr(self.channel, "_path", b""))
            return
        super().handleContentChunk(data)

    def refuse(self, path):
        self.refused = True
        self.content = io.BytesIO()
        channel = self.channel
        channel.persistent = False
        transport = channel.transport
        transport.write(refusal(path, self.limit))
        # A lingering close, as web servers do: closing at once while the client
        # is still sending makes the kernel reset the connection, and the client
        # may never read the 413. So close the writing side (the client sees
        # the answer and its end), throw away whatever still arrives (counted
        # above, never kept), and drop the connection after LINGER_SECONDS.
        if hasattr(transport, "loseWriteConnection"):
            from twisted.internet import reactor  # Daphne's, installed by now

            transport.loseWriteConnection()
            reactor.callLater(LINGER_SECONDS, _abort, transport)
        else:
            transport.loseConnection()

    def process(self):
        if self.refused:
            return None
        return super().process()


def _abort(transport):
    if transport.connected:
        transport.abortConnection()


class BoundedHTTPFactory(HTTPFactory):
    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        if protocol is not None:
            protocol.requestFactory = BoundedWebRequest
        return protocol


def install():
    """Make Daphne's server build BoundedWebRequest for every HTTP request."""
    daphne_server.HTTPFactory = BoundedHTTPFactory
