"""What a stream's reader does to the database, on the streams' writer threads
(tasks/streams.py), so the loop never waits on a query; and the periodic
check that closes the streams of tasks that ended in another process.
"""

import asyncio
import logging

from . import n8n, streams
from .connections import fresh_connections
from .door import TaskConflict, append_partial
from .models import AsyncTask, TaskStatus

logger = logging.getLogger(__name__)

# Every this many seconds the open streams' tasks are checked (Stop elsewhere).
CHECK_SECONDS = 2.0


@fresh_connections
def append(task_id, text) -> bool:
    """False when the task takes no more text."""
    try:
        append_partial(task_id, text)
        return True
    except (TaskConflict, AsyncTask.DoesNotExist):
        return False


async def on_writer(function, *args):
    """Run a database function on a writer thread; never raises."""
    try:
        return await asyncio.get_running_loop().run_in_executor(streams._writers, function, *args)
    except Exception:  # noqa: BLE001 - the reader goes on
        logger.warning("%s for a stream failed", function.__name__, exc_info=True)
        return None


@fresh_connections
def learn_execution_id(task_id, execution_id):
    """The stream announced its execution id (the shipped workflows' Accept node)."""
    from . import lifecycle

    return lifecycle.learn_execution_id(task_id, execution_id)


@fresh_connections
def fail_refused(task_id, status, content, line):
    """The answer began with an error after the dispatcher stopped waiting for it:
    fail the task as a refused dispatch, unless it has moved on."""
    from . import lifecycle

    return lifecycle.fail_late_refusal(task_id, n8n.streamed_refusal(status, content, line))


async def check_forever():
    """Close the streams of tasks that ended elsewhere (Stop in another process)."""
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        if not streams._readers:
            continue
        try:
            ended = await asyncio.get_running_loop().run_in_executor(
                streams._writers, ended_tasks, list(streams._readers)
            )
        except Exception:  # noqa: BLE001 - checked again next time
            logger.warning("checking open streams failed", exc_info=True)
            continue
        for task_id in ended:
            reader = streams._readers.get(task_id)
            if reader is not None:
                reader.cancel()


@fresh_connections
def ended_tasks(task_ids) -> list[int]:
    return list(
        AsyncTask.objects.filter(pk__in=task_ids)
        .exclude(status__in=TaskStatus.unfinished())
        .values_list("pk", flat=True)
    )
