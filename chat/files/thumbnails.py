"""Thumbnails of image attachments: made by Pillow on first view, then kept.

A thumbnail is at most SIZE×SIZE pixels, WebP, stored beside the file in the
default storage under a name derived from the file's (so it is found again
without a column, and removed with the file). An image Pillow cannot read, or
one over MAX_PIXELS (a decompression bomb), has no thumbnail: the page shows
its chip instead.
"""

import io
import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

SIZE = 320
MAX_PIXELS = 50_000_000
FOLDER = "thumbnails"
CONTENT_TYPE = "image/webp"


def name_for(stored_name: str) -> str:
    return f"{FOLDER}/{stored_name.rsplit('/', 1)[-1]}.webp"


def _render(stored_name: str) -> bytes | None:
    with default_storage.open(stored_name, "rb") as source:
        with Image.open(source) as image:
            if image.width * image.height > MAX_PIXELS:
                return None
            image.draft("RGB", (SIZE, SIZE))  # JPEG: decode at a fraction of the size
            image.thumbnail((SIZE, SIZE))
            if image.mode not in ("RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            out = io.BytesIO()
            image.save(out, "WEBP", quality=80)
            return out.getvalue()


def thumbnail(stored_name: str) -> str | None:
    """The storage name of the file's thumbnail (made now if missing), or None."""
    name = name_for(stored_name)
    if default_storage.exists(name):
        return name
    try:
        data = _render(stored_name)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        logger.info("no thumbnail for %s", stored_name, exc_info=True)
        return None
    if data is None:
        return None
    # Two first views at once may both render it: the second save gets another
    # name and is removed, the first one's is kept.
    saved = default_storage.save(name, ContentFile(data))
    if saved != name:
        default_storage.delete(saved)
    return name
