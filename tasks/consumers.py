"""`/ws/tasks/`: every status change of the user's own tasks.

The database is the source of truth; the channel layer delivers at most once.
A client resyncs with `{"type": "sync"}` (on connect and on every reconnect)
and gets a `task.status` frame for each of its unfinished tasks, plus the
current state of any `task_ids` it names (its own only), so a task that
finished while the client was away is not missed.
"""

import json
import logging
import uuid

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from chatproject import metrics

from . import deltas, live
from .connections import fresh_connections
from .models import AsyncTask
from .throttle import FrameBudget, SocketSlot

logger = logging.getLogger(__name__)

# How many task ids one `sync` may name; more is refused as a bad frame.
MAX_SYNC_TASK_IDS = 200
# How many unfinished tasks one `sync` on /ws/tasks/ answers (the newest).
MAX_SYNC_TASKS = 200
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


def parse_task_ids(content) -> list[int]:
    """The optional `task_ids` of a sync frame: a list of positive ints."""
    task_ids = content.get("task_ids", [])
    if task_ids is None:
        return []
    if not isinstance(task_ids, list) or len(task_ids) > MAX_SYNC_TASK_IDS:
        raise FrameError(f"task_ids must be a list of at most {MAX_SYNC_TASK_IDS} task ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in task_ids):
        raise FrameError("task_ids must hold positive integers")
    return task_ids


def task_frames(tasks, task_ids=(), limit=MAX_SYNC_TASKS) -> list[dict]:
    """`task.status` frames, in id order, for the unfinished tasks of `tasks`
    and for those among them whose id is in `task_ids` (whatever their status);
    at most the newest `limit`. An unfinished task with streamed text is
    followed by a `message.delta` frame holding all of it (offset 0)."""
    wanted = tasks.unfinished()
    if task_ids:
        wanted = tasks.filter(pk__in=task_ids) | wanted
    newest = list(wanted.order_by("-pk")[:limit])
    frames = []
    for task in reversed(newest):
        frames.append(live.task_frame(task))
        if task.partial_text and not task.is_terminal:
            # All the text so far, so a reload or another process goes on from it.
            frames.append(deltas.delta_frame(task, 0, task.partial_text))
    return frames


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
            content = json.loads(text_data)
        except ValueError:
            await self.send_error("frames must be JSON text")
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

    async def send_frames(self, frames):
        for frame in frames:
            await self.send_json(frame)

    async def send_error(self, error):
        await self.send_json({"type": "error", "error": error})


class TaskConsumer(LiveConsumer):
    """The user's own tasks; anonymous handshakes are refused (403)."""

    async def connect(self):
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close()
            return
        await self.open(live.user_group(self.user.pk))

    async def sync(self, content):
        task_ids = parse_task_ids(content)
        frames = await off_thread(self.sync_frames)(task_ids)
        await self.send_frames(frames)

    def sync_frames(self, task_ids):
        return task_frames(AsyncTask.objects.for_user(self.user), task_ids)
