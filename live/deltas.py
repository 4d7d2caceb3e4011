"""Streamed reply text on the live layer: coalesced `message.delta` frames.

A fast model writes many small pieces; each goes through `publish_delta`
after its commit to the coalescer of the loop that sends frames, which sends
the first piece of a quiet task at once and then at most one frame per task
per TASK_DELTA_FRAME_SECONDS (docs/PROTOCOL.md, "Frames").
"""

import asyncio
import logging
import weakref

from django.conf import settings

from . import publish as live

logger = logging.getLogger(__name__)


def send_delta(groups, frame) -> None:
    """Hand one piece to the coalescer of the loop that sends frames. Never raises."""
    try:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            _coalescer(loop).add(groups, frame)
            return
        loop = live._target_loop()
        loop.call_soon_threadsafe(lambda: _coalescer(loop).add(groups, frame))
    except Exception:  # noqa: BLE001 - the page resyncs from the database
        logger.warning("live delta failed for task %s", frame.get("task_id"), exc_info=True)


class DeltaCoalescer:
    """At most one `message.delta` frame per task per TASK_DELTA_FRAME_SECONDS.

    Runs in its loop's thread only. The first piece of a quiet task goes out
    at once; pieces that follow within the interval are joined (when they
    continue each other) and sent when it ends. A frame's other fields
    describe the reply up to its end, so a joined frame takes the last
    piece's. A fast model thus costs a few
    frames a second per socket, not one per token.
    """

    # Forget a task this long after its last frame (it finished or went quiet).
    FORGET_SECONDS = 30.0

    def __init__(self, loop, enqueue=None):
        self.loop = loop
        # enqueue(loop, sends): the live layer's sender task of `loop`, unless given.
        self.enqueue = enqueue or live._enqueue
        self.interval = settings.TASK_DELTA_FRAME_SECONDS
        # task id -> {"sent": loop time of the last frame, "frame": pending or None,
        #             "groups": [...], "timer": handle or None}
        self.streams: dict = {}
        self.swept = loop.time()

    def add(self, groups, frame) -> None:
        now = self.loop.time()
        self._sweep(now)
        key = frame["task_id"]
        entry = self.streams.setdefault(
            key, {"sent": float("-inf"), "frame": None, "groups": groups, "timer": None}
        )
        entry["groups"] = groups
        pending = entry["frame"]
        if pending is None and now - entry["sent"] >= self.interval:
            self._send(entry, frame, now)
            return
        if pending is not None:
            if pending["offset"] + len(pending["text"]) == frame["offset"]:
                # The joined frame ends where the later piece ends, so the
                # fields that describe the text up to there (the page's view
                # of a reply) are the later piece's; the offset stays.
                entry["frame"] = {
                    **frame,
                    "offset": pending["offset"],
                    "text": pending["text"] + frame["text"],
                }
                return
            self._send(entry, pending, now)  # not a continuation: keep both, in order
        entry["frame"] = dict(frame)
        if entry["timer"] is None:
            delay = max(entry["sent"] + self.interval - now, 0.0)
            entry["timer"] = self.loop.call_later(delay, self._flush, key)

    def _flush(self, key) -> None:
        entry = self.streams.get(key)
        if entry is None:
            return
        entry["timer"] = None
        if entry["frame"] is not None:
            self._send(entry, entry["frame"], self.loop.time())

    def _send(self, entry, frame, now) -> None:
        entry["frame"] = None
        entry["sent"] = now
        self.enqueue(
            self.loop,
            [(group, {"type": "live.frame", "frame": frame}) for group in entry["groups"]],
        )

    def _sweep(self, now) -> None:
        if now - self.swept < 1.0:
            return
        self.swept = now
        for key in [
            key
            for key, entry in self.streams.items()
            if entry["frame"] is None and now - entry["sent"] > self.FORGET_SECONDS
        ]:
            del self.streams[key]


_coalescers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeltaCoalescer]" = (
    weakref.WeakKeyDictionary()
)


def _coalescer(loop) -> DeltaCoalescer:
    coalescer = _coalescers.get(loop)
    if coalescer is None:
        coalescer = _coalescers[loop] = DeltaCoalescer(loop)
    return coalescer
