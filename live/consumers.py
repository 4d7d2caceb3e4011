"""The websocket consumer both apps' sockets are built on.

One group per socket, `live.frame` events from the channel layer, JSON errors
instead of crashes, a per-user socket limit and a per-socket frame budget
(live/throttle.py), and database work off the event loop (`off_thread`).
Every frame leaves through `send_json` or `send_encoded`, which send nothing
past WS_FRAME_MAX_BYTES (live/frames.py).
"""

import logging
import uuid

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from observability import metrics

from . import frames
from .connections import fresh_connections
from .throttle import FrameBudget, SocketSlot

logger = logging.getLogger(__name__)

# Close codes: too many sockets for this user (the page retries later, with backoff).
CLOSE_TOO_MANY_SOCKETS = 4429
# The channel layer (Redis) cannot be reached: accepted and closed at once, so
# the page reconnects later instead of seeing a failed handshake.
CLOSE_TRY_LATER = 4503


def off_thread(function):
    """Run a consumer's database work in a worker thread of its own.

    Channels' `database_sync_to_async` runs every consumer's call in one shared
    thread, so one slow `sync` stalls every other socket's handshake. Here each
    call takes a thread from the pool (thread_sensitive=False) and, like
    Channels, closes stale connections before and after (they go back to the
    PostgreSQL pool).
    """

    return sync_to_async(fresh_connections(function), thread_sensitive=False)


class FrameError(ValueError):
    """A client frame that is not what the protocol allows."""


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Shared mechanics: one group, `live.frame` events, JSON errors not crashes,
    a per-user socket limit and a per-socket frame budget."""

    group_name: str | None = None
    slot: SocketSlot | None = None
    frames_refused = False
    # The `endpoint` label of the open-websockets gauge.
    metrics_endpoint = "tasks"
    counted_open = False

    async def join(self, group_name):
        self.group_name = group_name
        await self.channel_layer.group_add(group_name, self.channel_name)

    async def accept(self, *args, **kwargs):
        await super().accept(*args, **kwargs)
        if not self.counted_open:
            self.counted_open = True
            metrics.record_websocket_opened(self.metrics_endpoint)

    async def claim_slot(self):
        """True when the user may open one more socket (WS_PER_USER_LIMIT).

        Otherwise the socket is accepted and closed at once with 4429, so the
        page can tell "too many sockets, retry later" from a refused handshake.
        """
        self.slot = SocketSlot(self.user.pk, uuid.uuid4().hex)
        if await self.slot.claim():
            return True
        await self.accept()
        await self.send_error("too many open connections for this account; retry later")
        await self.close(code=CLOSE_TOO_MANY_SOCKETS)
        return False

    async def open(self, group_name):
        """Claim a socket slot, join the group, accept. While the channel layer
        or the cache is unreachable (a Redis outage) the socket is accepted and
        closed at once with 4503, which the page treats as "reconnect later"."""
        try:
            if not await self.claim_slot():
                return
            await self.join(group_name)
        except Exception:  # noqa: BLE001 - any outage of the shared parts
            logger.warning("websocket closed with 4503: channel layer unreachable", exc_info=True)
            self.group_name = None
            await self.accept()
            await self.close(code=CLOSE_TRY_LATER)
            return
        await self.accept()

    async def disconnect(self, code):
        if self.counted_open:
            self.counted_open = False
            metrics.record_websocket_closed(self.metrics_endpoint)
        try:
            if self.slot is not None:
                await self.slot.release()
            if self.group_name:
                await self.channel_layer.group_discard(self.group_name, self.channel_name)
        except Exception:  # noqa: BLE001 - the slot expires by itself
            logger.warning("websocket cleanup failed", exc_info=True)

    async def live_frame(self, event):
        """Every channel-layer message of this project has type `live.frame`."""
        await self.send_json(event["frame"])

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if not hasattr(self, "budget"):
            self.budget = FrameBudget()
        if not self.budget.take():
            # Dropped; one error frame per burst, not one per frame (no echo flood).
            if not self.frames_refused:
                self.frames_refused = True
                await self.send_error("too many frames; slow down")
            return
        self.frames_refused = False
        if text_data is None:
            await self.send_error("frames must be JSON text")
            return
        try:
            content = frames.parse_client(text_data)
        except frames.ClientFrameError as exc:
            await self.send_error(str(exc))
            return
        if not isinstance(content, dict):
            await self.send_error("a frame must be a JSON object with a type")
            return
        try:
            await self.receive_json(content)
        except FrameError as exc:
            await self.send_error(str(exc))

    async def receive_json(self, content, **kwargs):
        kind = content.get("type")
        handler = self.client_frames().get(kind)
        if handler is None:
            raise FrameError(f"unknown frame type {kind!r}")
        await handler(content)

    def client_frames(self):
        return {"sync": self.sync, "ping": self.ping}

    async def ping(self, content):
        await self.send_json({"type": "pong"})

    async def sync(self, content):
        raise NotImplementedError

    async def send_json(self, content, close=False):
        """Encode and measure the frame once; one past the limit is never sent
        (it would close the socket): a small `error` frame goes instead."""
        text, _size = frames.bounded(content)
        await self.send(text_data=text, close=close)

    async def send_encoded(self, texts):
        """Send frames encoded and measured already (a `SyncAnswer`'s)."""
        for text in texts:
            await self.send(text_data=text)

    async def send_error(self, error):
        await self.send_json({"type": "error", "error": error})
