"""Reading one streamed answer of n8n on the streams loop (see tasks/streams.py).

Each line is one chunk; every `item`'s content is appended to the task's
partial reply in batches by the streams' writer threads; the reader ends with
the body, an `error` chunk, the task's deadline, or when the task has ended.
"""

import asyncio
import json
import logging

import httpx
from django.conf import settings
from django.db import close_old_connections

from . import streams
from .door import TaskConflict, append_partial
from .models import AsyncTask, TaskStatus

logger = logging.getLogger(__name__)

CHUNK_TYPES = {"begin", "item", "end", "error", "keepalive"}
# A line longer than this is not a chunk n8n writes: the stream is dropped.
MAX_LINE_BYTES = 1_048_576
# Every this many seconds the open streams' tasks are checked (Stop elsewhere).
CHECK_SECONDS = 2.0


def parse_chunk(line):
    """One line of n8n's stream as (type, content), or None when it is not a chunk."""
    try:
        chunk = json.loads(line)
    except ValueError:
        return None
    if not isinstance(chunk, dict) or chunk.get("type") not in CHUNK_TYPES:
        return None
    content = chunk.get("content")
    return chunk["type"], content if isinstance(content, str) else None


class StreamReader:
    """Reads one streamed answer on the loop and writes its text in batches."""

    def __init__(self, task_id, response, deadline_seconds):
        self.task_id = int(task_id)
        self.response = response
        self.deadline_seconds = deadline_seconds
        self.pending: list[str] = []
        self.flushed_once = False
        self.last_flush = 0.0
        self.flush_handle = None
        self.writing: asyncio.Future | None = None
        self.finished = False  # the task refused more text (stopped, finished)
        self.chunks = 0
        self.outcome = "open"

    def start(self):
        loop = asyncio.get_running_loop()
        task = loop.create_task(self.run(), name=f"stream-{self.task_id}")
        old = streams._readers.get(self.task_id)
        if old is not None:
            old.cancel()  # a dispatch again: the newer answer wins
        streams._readers[self.task_id] = task
        task.add_done_callback(lambda done: _forget(self.task_id, done))
        return task

    async def run(self):
        try:
            async with asyncio.timeout(self.deadline_seconds):
                await self._read()
        except TimeoutError:
            self.outcome = "deadline"
        except asyncio.CancelledError:
            self.outcome = "closed"
        except httpx.HTTPError as exc:
            self.outcome = f"broken ({type(exc).__name__})"
        except Exception:  # noqa: BLE001 - a reader never takes the loop down
            logger.exception("reading the stream of task %s failed", self.task_id)
            self.outcome = "failed"
        finally:
            if self.flush_handle is not None:
                self.flush_handle.cancel()
            try:
                await asyncio.shield(self._flush())
            except Exception:  # noqa: BLE001
                logger.warning("last write of task %s's stream failed", self.task_id)
            await self.response.aclose()
            logger.info(
                "stream of task %s ended: %s after %s chunks",
                self.task_id,
                self.outcome,
                self.chunks,
            )

    async def _read(self):
        async for line in self._lines():
            parsed = parse_chunk(line)
            if parsed is None:
                continue
            self.chunks += 1
            kind, content = parsed
            if kind == "item" and content:
                self._add(content)
            elif kind == "error":
                self.outcome = "error chunk"
                return  # a failed or stopped execution may leave the response open
            if self.finished:
                self.outcome = "task finished"
                return
        self.outcome = "ended"

    async def _lines(self):
        """The body's lines, each bounded in size."""
        buffer = b""
        async for part in self.response.aiter_bytes():
            buffer += part
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield line.decode("utf-8", errors="replace")
            if len(buffer) > MAX_LINE_BYTES:
                raise ValueError("a line of the stream is too long")
        if buffer.strip():
            yield buffer.decode("utf-8", errors="replace")

    def _add(self, text):
        self.pending.append(text)
        loop = asyncio.get_running_loop()
        interval = settings.TASK_STREAM_FLUSH_SECONDS
        if not self.flushed_once:
            self.flushed_once = True
            loop.create_task(self._flush())
        elif self.flush_handle is None:
            delay = max(self.last_flush + interval - loop.time(), 0.0)
            self.flush_handle = loop.call_later(delay, self._scheduled_flush)

    def _scheduled_flush(self):
        self.flush_handle = None
        asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self):
        """Write what came since the last write (one at a time, in order)."""
        while self.writing is not None:
            await self.writing
        if not self.pending or self.finished:
            self.pending.clear()
            return
        text, self.pending = "".join(self.pending), []
        loop = asyncio.get_running_loop()
        self.last_flush = loop.time()
        self.writing = loop.run_in_executor(streams._writers, _append, self.task_id, text)
        try:
            accepted = await self.writing
        finally:
            self.writing = None
        if not accepted:
            self.finished = True
            reader = streams._readers.get(self.task_id)
            if reader is not None and reader is not asyncio.current_task():
                reader.cancel()


def _append(task_id, text) -> bool:
    """Runs on a writer thread: False when the task takes no more text."""
    close_old_connections()
    try:
        append_partial(task_id, text)
        return True
    except (TaskConflict, AsyncTask.DoesNotExist):
        return False
    finally:
        close_old_connections()


def _forget(task_id, task):
    if streams._readers.get(task_id) is task:
        del streams._readers[task_id]


async def check_forever():
    """Close the streams of tasks that ended elsewhere (Stop in another process)."""
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        if not streams._readers:
            continue
        try:
            ended = await asyncio.get_running_loop().run_in_executor(
                streams._writers, _ended_tasks, list(streams._readers)
            )
        except Exception:  # noqa: BLE001 - checked again next time
            logger.warning("checking open streams failed", exc_info=True)
            continue
        for task_id in ended:
            reader = streams._readers.get(task_id)
            if reader is not None:
                reader.cancel()


def _ended_tasks(task_ids) -> list[int]:
    close_old_connections()
    try:
        return list(
            AsyncTask.objects.filter(pk__in=task_ids)
            .exclude(status__in=TaskStatus.unfinished())
            .values_list("pk", flat=True)
        )
    finally:
        close_old_connections()
