"""`/ws/tasks/`: every status change of the user's own tasks.

The database is the source of truth; the channel layer delivers at most once.
A client resyncs with `{"type": "sync"}` (on connect and on every reconnect)
and gets a `task.status` frame for each of its unfinished tasks, plus the
current state of any `task_ids` it names (its own only), so a task that
finished while the client was away is not missed.
"""

import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import live
from .models import AsyncTask

logger = logging.getLogger(__name__)

# How many task ids one `sync` may name; more is refused as a bad frame.
MAX_SYNC_TASK_IDS = 200


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


def task_frames(tasks, task_ids=()) -> list[dict]:
    """`task.status` frames, in id order, for the unfinished tasks of `tasks`
    and for those among them whose id is in `task_ids` (whatever their status)."""
    wanted = tasks.unfinished()
    if task_ids:
        wanted = tasks.filter(pk__in=task_ids) | wanted
    return [live.task_frame(task) for task in wanted.order_by("pk")]


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Shared mechanics: one group, `live.frame` events, JSON errors not crashes."""

    group_name: str | None = None

    async def join(self, group_name):
        self.group_name = group_name
        await self.channel_layer.group_add(group_name, self.channel_name)

    async def disconnect(self, code):
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def live_frame(self, event):
        """Every channel-layer message of this project has type `live.frame`."""
        await self.send_json(event["frame"])

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
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
        await self.join(live.user_group(self.user.pk))
        await self.accept()

    async def sync(self, content):
        task_ids = parse_task_ids(content)
        frames = await database_sync_to_async(self.sync_frames)(task_ids)
        await self.send_frames(frames)

    def sync_frames(self, task_ids):
        return task_frames(AsyncTask.objects.for_user(self.user), task_ids)
