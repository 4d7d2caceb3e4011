"""Signed file links for n8n: `{PUBLIC_BASE_URL}/files/{id}/?sig=…`.

A workflow downloads a message's files with no session (n8n's HTTP Request
node), so each link carries its own permission: Django's signing (HMAC with
SECRET_KEY, salted for this use) over the file's id, the task it was sent
with and that task's deadline. The link works until the deadline and only
for that file; a changed id, a signature of another file, a tampered or
expired one is refused (403). Links are made when the task is dispatched
(`chat/replies/tasktypes.py`), never stored: the task's `input_data` holds the files
without their links.
"""

import time

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "chat.files.link"


def sign(attachment_id: int, task_id: int, expires_at: float) -> str:
    value = f"{int(attachment_id)}.{int(task_id)}.{int(expires_at)}"
    return signing.Signer(salt=SALT).sign(value)


def url(attachment_id: int, task_id: int, expires_at: float) -> str:
    from urllib.parse import quote

    path = reverse("files:file", args=[attachment_id])
    return f"{settings.PUBLIC_BASE_URL}{path}?sig={quote(sign(attachment_id, task_id, expires_at))}"


def check(attachment_id: int, sig: str, now: float | None = None) -> bool:
    """Whether `sig` opens this file now."""
    try:
        value = signing.Signer(salt=SALT).unsign(sig)
    except signing.BadSignature:
        return False
    parts = value.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return False
    file_id, _task_id, expires_at = (int(part) for part in parts)
    now = time.time() if now is None else now
    return file_id == attachment_id and now < expires_at
