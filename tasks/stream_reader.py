"""Reading one answer of n8n that came chunked, on the streams loop (see
tasks/streams.py).

The first line decides what the answer is (its `verdict`, which the
dispatcher waits for): an n8n chunk makes it a stream, an `error` chunk first
a refusal (the workflow failed before it wrote anything: n8n's headers said
200 before any node ran), anything else a plain answer, read whole (bounded)
and classified as before. In a stream, every `item`'s content is appended to
the task's partial reply in batches by the streams' writer threads, except a
first item that only announces the execution id; the reader ends with the
body, an `error` chunk, the task's deadline, or when the task has ended.
"""

import asyncio
import logging

import httpx
from django.conf import settings

from . import stream_writes as writes
from . import streams
from .n8n_stream import CHUNK_TYPES, announced_execution_id, parse_chunk

logger = logging.getLogger(__name__)

__all__ = ["CHUNK_TYPES", "StreamReader", "parse_chunk"]

# A line longer than this is not a chunk n8n writes: the stream is dropped.
MAX_LINE_BYTES = 1_048_576


class StreamReader:
    """Reads one chunked answer on the loop and writes its text in batches."""

    def __init__(self, task_id, response, deadline_seconds):
        self.task_id = int(task_id)
        self.response = response
        self.deadline_seconds = deadline_seconds
        self.pending: list[str] = []
        self.flushed_once = False
        self.last_flush = 0.0
        self.flush_handle = None
        self.writing: asyncio.Future | None = None
        self.write_lock = asyncio.Lock()
        self.finished = False  # the task refused more text (stopped, finished)
        self.chunks = 0
        self.items = 0
        self.outcome = "open"
        # ("stream", None) | ("refused", (content, line)) | ("plain", body bytes);
        # cancelled by the dispatcher when it stops waiting (then this reader acts alone).
        self.verdict: asyncio.Future | None = None

    def start(self) -> asyncio.Future:
        """Start reading; returns the verdict future (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        self.verdict = loop.create_future()
        task = loop.create_task(self.run(), name=f"stream-{self.task_id}")
        old = streams._readers.get(self.task_id)
        if old is not None:
            old.cancel()  # a dispatch again: the newer answer wins
        streams._readers[self.task_id] = task
        task.add_done_callback(lambda done: _forget(self.task_id, done))
        return self.verdict

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
            # The 2xx headers said the workflow took the task: a body that
            # breaks before its first line is still an accepted answer.
            await self._decide("stream", None)
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

    async def _decide(self, kind, detail):
        """Give the verdict once: to the waiting dispatcher, or act on it here."""
        verdict = self.verdict
        if verdict is None or verdict.done() and not verdict.cancelled():
            return
        if not verdict.done():
            verdict.set_result((kind, detail))
            return
        self.verdict = None  # the dispatcher stopped waiting: it took the answer as a stream
        if kind == "refused":
            content, line = detail
            status = self.response.status_code
            await writes.on_writer(writes.fail_refused, self.task_id, status, content, line)

    async def _read(self):
        parts = self.response.aiter_bytes()
        buffer = await self._first_line(parts)
        if buffer is None:
            return
        async for line in self._lines(buffer, parts):
            parsed = parse_chunk(line)
            if parsed is None:
                continue
            self.chunks += 1
            kind, content = parsed
            if self.chunks == 1:
                if kind == "error":
                    self.outcome = "refused (an error chunk first)"
                    await self._decide("refused", (content, line))
                    return
                await self._decide("stream", None)
            if kind == "item" and content:
                self.items += 1
                announced = announced_execution_id(content) if self.items == 1 else ""
                if announced:
                    await writes.on_writer(writes.learn_execution_id, self.task_id, announced)
                else:
                    self._add(content)
            elif kind == "error":
                self.outcome = "error chunk"
                return  # a failed or stopped execution may leave the response open
            if self.finished:
                self.outcome = "task finished"
                return
        self.outcome = "ended"

    async def _first_line(self, parts) -> bytes | None:
        """Read up to the first complete non-empty line. Returns the bytes read
        when it is an n8n chunk (a stream goes on); otherwise reads the whole
        answer (at most MAX_PLAIN_BODY_BYTES), gives the verdict "plain" and
        returns None."""
        buffer = b""
        async for part in parts:
            buffer += part
            head = buffer.lstrip()
            if b"\n" in head:
                if parse_chunk(head.split(b"\n", 1)[0]) is not None:
                    return buffer
                break
            if len(buffer) > streams.MAX_PLAIN_BODY_BYTES:
                break
        else:  # the body ended: one line (or none) with no newline after it
            if buffer.strip() and parse_chunk(buffer) is not None:
                return buffer
        async for part in parts:  # a plain answer that came chunked: the rest of it
            if len(buffer) > streams.MAX_PLAIN_BODY_BYTES:
                break
            buffer += part
        self.outcome = "a plain answer"
        await self._decide("plain", bytes(buffer[: streams.MAX_PLAIN_BODY_BYTES]))
        return None

    async def _lines(self, buffer, parts):
        """The body's lines (after what was read already), each bounded in size."""
        while True:
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield line.decode("utf-8", errors="replace")
            if len(buffer) > MAX_LINE_BYTES:
                raise ValueError("a line of the stream is too long")
            try:
                part = await anext(parts)
            except StopAsyncIteration:
                break
            buffer += part
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
        """Write what came since the last write (one at a time, in order).

        A lock, not a loop over the write in flight: awaiting a future that is
        already done does not yield, so a second flush woken before the first
        could spin on it for ever and stall the whole loop."""
        async with self.write_lock:
            if not self.pending or self.finished:
                self.pending.clear()
                return
            text, self.pending = "".join(self.pending), []
            loop = asyncio.get_running_loop()
            self.last_flush = loop.time()
            self.writing = loop.run_in_executor(streams._writers, writes.append, self.task_id, text)
            try:
                accepted = await self.writing
            finally:
                self.writing = None
        if not accepted:
            self.finished = True
            reader = streams._readers.get(self.task_id)
            if reader is not None and reader is not asyncio.current_task():
                reader.cancel()


def _forget(task_id, task):
    if streams._readers.get(task_id) is task:
        del streams._readers[task_id]
