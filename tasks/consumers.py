"""`/ws/tasks/`: every status change of the user's own tasks.

The database is the source of truth; the channel layer delivers at most once.
A client resyncs with `{"type": "sync"}` (on connect and on every reconnect)
and gets a `task.status` frame for each of its unfinished tasks, plus the
current state of any `task_ids` it names (its own only), so a task that
finished while the client was away is not missed.
"""

import logging

from live import frames as live_frames
from live import publish as live
from live.consumers import FrameError, LiveConsumer, off_thread

from . import frames
from .models import AsyncTask

logger = logging.getLogger(__name__)

# How many task ids one `sync` may name; more is refused as a bad frame.
MAX_SYNC_TASK_IDS = 200
# How many unfinished tasks one `sync` on /ws/tasks/ answers (the newest).
MAX_SYNC_TASKS = 200


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


def iter_task_frames(tasks, task_ids=(), limit=MAX_SYNC_TASKS):
    """`task.status` frames, in id order, for the unfinished tasks of `tasks`
    and for those among them whose id is in `task_ids` (whatever their status);
    at most the newest `limit`. An unfinished task with streamed text is
    followed by a `message.delta` frame holding all of it (offset 0).

    Built one at a time: a task's streamed text is read only when its frame is
    (the list of tasks leaves it out)."""
    wanted = tasks.unfinished()
    if task_ids:
        wanted = tasks.filter(pk__in=task_ids) | wanted
    newest = list(wanted.defer("partial_text").order_by("-pk")[:limit])
    for task in reversed(newest):
        yield frames.task_frame(task)
        if not task.is_terminal and task.partial_text:
            # All the text so far, so a reload or another process goes on from it.
            yield frames.delta_frame(task, 0, task.partial_text, formatted=True)
            # Read again for the next task's frame only: not kept meanwhile.
            task.__dict__.pop("partial_text", None)


def task_frames(tasks, task_ids=(), limit=MAX_SYNC_TASKS) -> list[dict]:
    return list(iter_task_frames(tasks, task_ids, limit))


def add_task_frames(answer, frames_of_tasks) -> None:
    """Add task frames to a `sync` answer: each `task.status` (small, and the
    page needs it), each `message.delta` only while the budget holds; one left
    out costs the page the text so far, not the reply (it comes whole when
    the task completes)."""
    for frame in frames_of_tasks:
        if frame["type"] == "message.delta":
            if not answer.add(frame):
                logger.info(
                    "sync: streamed text of task %s left out (WS_SYNC_MAX_BYTES)",
                    frame["task_id"],
                )
        else:
            answer.add(frame, force=True)


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
        await self.send_encoded(await off_thread(self.sync_answer)(task_ids))

    def sync_answer(self, task_ids) -> list[str]:
        answer = live_frames.SyncAnswer()
        tasks = AsyncTask.objects.for_user(self.user)
        add_task_frames(answer, iter_task_frames(tasks, task_ids))
        return answer.texts
