"""Files into and out of Django's default storage.

An upload is checked whole before anything is stored (`inspect`: count, size,
type read from the content, SHA-256), then written to storage under a random
name (`save`) and its row created in the transaction of its message
(`chat/services.py`); when that transaction does not commit, the stored files
are removed again (`discard`). Django's upload handlers keep a large upload in
a temporary file, and the hash and the copy to storage read it in chunks, so
a file is never held whole in memory (FileSystemStorage moves the temporary
file into place).

Deleting an `Attachment` row, however it goes (its conversation, its
message, its user), deletes the stored file once the deletion has committed
(`delete_stored_file`, connected in chat/apps.py). A send that races the
deletion of its conversation either commits first (then the deletion, which
locks the conversation, sees and removes its files) or finds the
conversation gone and discards what it stored. A process killed between
`save` and the commit leaves a file no row names: `manage.py clean_files`
(chat/files/cleanup.py) removes those.
"""

import hashlib
import logging
import mimetypes
import uuid
from dataclasses import dataclass

from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import transaction

from . import kinds

logger = logging.getLogger(__name__)

FOLDER = "attachments"
CHUNK = 64 * 1024


@dataclass
class Upload:
    """A checked file, not stored yet."""

    name: str
    content_type: str
    size: int
    sha256: str
    content: File
    stored_as: str = ""


def _read_head(content: File) -> bytes:
    content.seek(0)
    head = content.read(kinds.SNIFF_BYTES)
    content.seek(0)
    return head


def _digest(content: File) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    content.seek(0)
    for chunk in content.chunks(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    content.seek(0)
    return digest.hexdigest(), size


def inspect(content: File, name: str) -> Upload:
    """Check one file (size, then type from its content) and hash it;
    FileRefused when it may not be kept."""
    name = kinds.clean_name(name)
    size = content.size
    kinds.check_size(name, size)
    content_type = kinds.sniff(_read_head(content), name)
    kinds.check_type(name, content_type)
    sha256, size = _digest(content)
    kinds.check_size(name, size)
    return Upload(name, content_type, size, sha256, content)


def inspect_all(files) -> list[Upload]:
    """Check a message's uploads (Django UploadedFiles): all or none."""
    kinds.check_count(len(files))
    return [inspect(uploaded, uploaded.name) for uploaded in files]


def inspect_bytes(name: str, data: bytes) -> Upload:
    return inspect(ContentFile(data, name=name), name)


def storage_name(content_type: str) -> str:
    """A random name under FOLDER: never the user's name, nothing to guess."""
    extension = mimetypes.guess_extension(content_type, strict=False) or ""
    return f"{FOLDER}/{uuid.uuid4().hex}{extension}"


def save(uploads: list[Upload]) -> None:
    """Write each upload to storage (`stored_as`); on a failure half-way, what
    was written is removed and the error raised."""
    try:
        for upload in uploads:
            upload.content.seek(0)
            upload.stored_as = default_storage.save(
                storage_name(upload.content_type), upload.content
            )
    except Exception:
        discard(uploads)
        raise


def discard(uploads: list[Upload]) -> None:
    """Remove uploads stored for a message that was not kept."""
    for upload in uploads:
        if upload.stored_as:
            delete_file(upload.stored_as)
            upload.stored_as = ""


def create_rows(message, user_id, uploads: list[Upload]) -> list:
    from ..models import Attachment

    rows = [
        Attachment(
            message=message,
            user_id=user_id,
            file=upload.stored_as,
            name=upload.name,
            content_type=upload.content_type,
            size=upload.size,
            sha256=upload.sha256,
        )
        for upload in uploads
    ]
    return Attachment.objects.bulk_create(rows)


def delete_file(name: str) -> None:
    try:
        default_storage.delete(name)
    except Exception:  # a file already gone, a bucket unreachable: logged, never fatal
        logger.warning("could not delete stored file %s", name, exc_info=True)


def delete_stored_file(sender, instance, using, **kwargs) -> None:
    """post_delete of an Attachment: remove its file once the deletion commits
    (a rolled-back deletion keeps it)."""
    from .thumbnails import name_for

    name = instance.file
    if name:

        def remove():
            delete_file(name)
            if default_storage.exists(name_for(name)):
                delete_file(name_for(name))

        transaction.on_commit(remove, using=using, robust=True)
