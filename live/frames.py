"""Frames as the socket carries them: encoded once, measured in bytes, bounded.

Daphne refuses an outgoing websocket message over 1,048,576 bytes by closing
the socket (1011), and a page that resyncs gets the same frame again. So every
server → client frame is encoded here, measured once in UTF-8 bytes, and none
past WS_FRAME_MAX_BYTES is sent (the consumer sends a small `error` frame
instead); a `sync` answer is built frame by frame within WS_SYNC_MAX_BYTES
(`SyncAnswer`). Client frames are parsed with a depth bound (`parse_client`).
"""

import json
import logging

from django.conf import settings

logger = logging.getLogger(__name__)

SYNC_RESET = {"type": "sync.reset"}
TOO_LARGE_ERROR = {"type": "error", "error": "a frame was too large to send; reload the page"}
# Client frames are flat (`sync` with its `task_ids` is two levels deep).
CLIENT_FRAME_MAX_DEPTH = 8


def frame_limit() -> int:
    """The most bytes one server → client frame may take (WS_FRAME_MAX_BYTES)."""
    return settings.WS_FRAME_MAX_BYTES


def encode(frame) -> tuple[str, int]:
    """The frame's text as sent, and its size in UTF-8 bytes.

    Not ASCII-escaped (an emoji costs its 4 bytes, not 12); a string holding
    a lone surrogate, which UTF-8 cannot carry, falls back to the escaped form.
    """
    text = json.dumps(frame, ensure_ascii=False)
    if text.isascii():
        return text, len(text)
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError:
        text = json.dumps(frame)
        return text, len(text)


def fits(frame) -> bool:
    return encode(frame)[1] <= frame_limit()


def bounded(frame) -> tuple[str, int]:
    """`encode(frame)`, or the small error frame when it would pass the limit."""
    text, size = encode(frame)
    if size <= frame_limit():
        return text, size
    logger.error(
        "websocket frame of type %r not sent: %d bytes, over WS_FRAME_MAX_BYTES (%d)",
        frame.get("type") if isinstance(frame, dict) else None,
        size,
        frame_limit(),
    )
    return encode(TOO_LARGE_ERROR)


class SyncAnswer:
    """The encoded frames of one `sync` answer, at most WS_SYNC_MAX_BYTES of them.

    Frames are added one at a time, as they are built, so an answer never holds
    more than its budget. `add` returns False for a frame that does not fit
    (nothing is added); the caller then ends the answer (`reset`) or leaves
    that frame out.
    """

    def __init__(self, budget=None):
        self.budget = settings.WS_SYNC_MAX_BYTES if budget is None else budget
        self.texts: list[str] = []
        self.used = 0
        self.ended = False

    def add(self, frame, force=False) -> bool:
        """Add `frame` when it fits the budget (or `force`: small frames the
        answer must carry, such as a task's status)."""
        text, size = bounded(frame)
        if not force and self.used + size > self.budget:
            return False
        self.texts.append(text)
        self.used += size
        return True

    def reset(self) -> list[str]:
        """End the answer with `sync.reset`: more remains than one answer holds."""
        self.texts.append(encode(SYNC_RESET)[0])
        self.ended = True
        return self.texts


class ClientFrameError(ValueError):
    """A client frame that is not JSON, or nested deeper than the bound."""


def _depth_within(value, max_depth) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def parse_client(text, max_depth=CLIENT_FRAME_MAX_DEPTH):
    """Parse a client frame; ClientFrameError for anything but JSON at most
    `max_depth` levels deep (json's C parser recurses, and a frame 10,000
    levels deep raised RecursionError out of the consumer: a 1011 close)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ClientFrameError(f"frames may be nested at most {max_depth} levels") from None
    except ValueError:
        raise ClientFrameError("frames must be JSON text") from None
    if not _depth_within(value, max_depth):
        raise ClientFrameError(f"frames may be nested at most {max_depth} levels")
    return value
