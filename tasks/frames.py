"""A task's live frames: `task.status` and `message.delta`, and where they go.

Built from the row the door wrote (under its row lock, so exactly what
commits) and handed to the live layer after the commit (live/publish.py,
live/deltas.py); the frames' fields are described in docs/PROTOCOL.md.
"""

import contextvars
import logging
import time

from django.db import transaction

from live import deltas
from live import publish as live
from observability import metrics

from . import registry
from .models import AsyncTask

logger = logging.getLogger(__name__)

# When the callback request being handled arrived (time.monotonic()); set by
# the webhook view, so the task.status frame its change publishes can report
# the callback → frame latency once the frame is handed to the channel layer.
callback_started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "callback_started", default=None
)


def task_frame(task, task_type=None) -> dict:
    """The `task.status` frame, with the type's status fragment as "html" if it has one."""
    frame = {"type": "task.status", "task": task.as_frame()}
    task_type = task_type or registry.get(task.task_type)
    if task_type and task_type.status_html:
        try:
            frame["html"] = task_type.status_html(task)
        except Exception:  # noqa: BLE001 - a frame without words beats no frame
            logger.warning("status_html failed for task %s", task.pk, exc_info=True)
    return frame


def task_sends(task):
    """Where a task's `task.status` frame goes: its owner, and its type's groups."""
    task_type = registry.get(task.task_type)
    frame = task_frame(task, task_type)
    groups = task_groups(task, task_type)
    return [(group, {"type": "live.frame", "frame": frame}) for group in groups]


def publish_task(task) -> None:
    """Publish a task's state after the current transaction commits.

    Given the instance this transaction wrote (under its row lock, so exactly
    what commits), the frame is built now and no query is spent after the
    commit; given an id, the committed row is read after the commit.
    """
    if isinstance(task, AsyncTask):
        sends = task_sends(task)
        on_sent = _callback_latency(callback_started.get())
        transaction.on_commit(lambda: live.send(sends, on_sent), robust=True)
        return

    def build():
        row = AsyncTask.objects.filter(pk=task).first()
        return task_sends(row) if row else []

    live.send_on_commit(build)


def _callback_latency(started):
    """For a change made by a callback: record its callback → frame latency."""
    if started is None:
        return None
    return lambda: metrics.record_callback_publish(time.monotonic() - started)


def task_groups(task, task_type=None) -> list[str]:
    task_type = task_type or registry.get(task.task_type)
    groups = [live.user_group(task.created_by_id)]
    if task_type and task_type.groups:
        groups += list(task_type.groups(task))
    return groups


def delta_frame(task, offset, text, task_type=None, formatted=False) -> dict:
    """The `message.delta` frame: `text` continues the task's partial reply at
    code point `offset`. With `formatted`, one holding all the text (offset 0,
    as `sync` sends) also carries what the page shows of it as `html`, when the type
    says (`partial_html`), with `html_offset` the length it covers."""
    task_type = task_type or registry.get(task.task_type)
    frame = {"type": "message.delta", "task_id": task.pk, "conversation_id": None}
    if task_type and task_type.delta_fields:
        frame.update(task_type.delta_fields(task))
    frame.update(offset=offset, text=text)
    if formatted and offset == 0 and task_type and task_type.partial_html:
        try:
            html = task_type.partial_html(frame)
        except Exception:  # noqa: BLE001 - the text alone still goes
            logger.warning("partial_html failed for task %s", task.pk, exc_info=True)
        else:
            if html is not None:
                frame.update(html=html, html_offset=len(text))
    return frame


def publish_delta(task, offset, text) -> None:
    """After the commit, send a piece of a task's partial reply, coalesced,
    and hand it to the type's `on_delta` (which formats the reply so far)."""
    task_type = registry.get(task.task_type)
    frame = delta_frame(task, offset, text, task_type)
    groups = task_groups(task, task_type)
    on_delta = task_type.on_delta if task_type else None

    def send():
        deltas.send_delta(groups, frame)
        if on_delta is not None:
            on_delta(groups, frame)

    transaction.on_commit(send, robust=True)
