"""What a file is, read from its content, and whether it may be kept.

The type of an upload (or of a file a workflow returns) is read from its
first bytes by `filetype` (magic numbers), never taken from its name or from
what the browser claims: an executable renamed `photo.png` is
`application/x-msdownload` and refused. Formats without magic numbers (plain
text, CSV, JSON, Markdown, SVG) are recognised as text (UTF-8 without NUL
bytes); for those the name's extension may narrow `text/plain` to a more
precise text type. `ATTACHMENT_TYPES` (a comma list of types and `type/*`
globs) says which types are kept; the limits on size and count are
`ATTACHMENT_MAX_BYTES` and `ATTACHMENT_MAX_FILES`.
"""

import fnmatch
import mimetypes

import filetype
from django.conf import settings
from django.template.defaultfilters import filesizeformat

# How much of a file is read to tell its type (filetype needs 8 KiB at most;
# the text check reads a little more).
SNIFF_BYTES = 64 * 1024
TEXT = "text/plain"
UNKNOWN = "application/octet-stream"
# Types a text file may carry when its name says so (all are text; none is
# ever shown inline: SVG and HTML can carry scripts).
TEXT_TYPES_BY_NAME = {"application/json", "image/svg+xml", "application/xml"}
NAME_LENGTH = 255


class FileRefused(Exception):
    """A file (or a set of files) that may not be kept; `status` is the HTTP
    answer (413 too large or too many, 415 a type not accepted, 400 others)."""

    def __init__(self, message, *, status):
        super().__init__(message)
        self.message = message
        self.status = status


def allowed_patterns() -> list[str]:
    return [p.strip().lower() for p in settings.ATTACHMENT_TYPES.split(",") if p.strip()]


def is_allowed(content_type: str) -> bool:
    return any(fnmatch.fnmatchcase(content_type, p) for p in allowed_patterns())


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is still text.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def sniff(head: bytes, name: str) -> str:
    """The content type of a file whose first bytes are `head`."""
    kind = filetype.guess(head)
    if kind is not None:
        return kind.mime
    if not head or not _is_text(head):
        return UNKNOWN
    by_name, _encoding = mimetypes.guess_type(name or "", strict=False)
    if by_name and (by_name.startswith("text/") or by_name in TEXT_TYPES_BY_NAME):
        return by_name
    return TEXT


def clean_name(name: str) -> str:
    """The user's file name, as shown and offered on download: no folders,
    no control characters, bounded."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "file"
    if len(name) > NAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        name = (stem if dot else name)[: NAME_LENGTH - len(ext) - 1] + (f".{ext}" if ext else "")
    return name


def check_count(count: int) -> None:
    limit = settings.ATTACHMENT_MAX_FILES
    if count > limit:
        raise FileRefused(
            f"You attached {count} files; a message can carry at most {limit}.", status=413
        )


def check_size(name: str, size: int) -> None:
    limit = settings.ATTACHMENT_MAX_BYTES
    if size > limit:
        raise FileRefused(
            f"“{name}” is {filesizeformat(size)}; each file can be at most "
            f"{filesizeformat(limit)}.",
            status=413,
        )
    if size == 0:
        raise FileRefused(f"“{name}” is empty.", status=400)


def check_type(name: str, content_type: str) -> None:
    if not is_allowed(content_type):
        raise FileRefused(
            f"“{name}” is a kind of file that cannot be attached here ({content_type}).",
            status=415,
        )


def body_limit() -> int:
    """The largest send request that can be within the limits: every file at
    its largest, plus the form's text (what Daphne lets through on that URL)."""
    return (
        settings.ATTACHMENT_MAX_FILES * settings.ATTACHMENT_MAX_BYTES
        + settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    )
