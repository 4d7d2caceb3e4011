"""Dispatching over asyncio, and reading n8n's streamed answers as they arrive.

One object, `Streams`, owns this process's event-loop thread, its HTTP client,
the writer threads and the open readers; module functions (`post`, `close`,
`open_count`, `close_all`) are its door for callers. A `StreamReader` reads
one answer; what it must do beyond writing text (learn an execution id, fail
a late refusal) it is handed by the dispatcher (`StreamHooks`), so this
module imports nothing above the door.

How a streamed answer looks and how its first line is judged (a stream, a
refusal, a plain answer that came chunked) is the protocol's, in
docs/PROTOCOL.md ("A streamed answer"); this module is how the app reads it.
Dispatches go out with an asyncio HTTP client (httpx) on one event-loop
thread per process ("task-streams"), so that a body can be read for minutes
without holding a thread or a database connection: a pool thread waits only
until the answer's headers and first line (a plain answer: its body) are in,
at most as long as it did with a blocking client. The request is the one
`n8n.webhooks.build_request` makes, and an answer or a transport error is
classified by the same functions as the blocking path's
(`n8n.webhooks.classify`, `n8n.webhooks.failed`). A stream's reader appends
each piece of text to the task's partial reply (`tasks.door.append_partial`)
in batches, the first piece at once and then at most every
TASK_STREAM_FLUSH_SECONDS, from a small thread pool of its own (so at most
TASK_STREAM_WRITERS database connections for all streams of the process).
A stream ends with its body, with an `error` chunk (a stopped execution
leaves its response open after that line), at the task's deadline, when the
task is stopped or finished or its partial text is full (the next write
is refused or reports it full, or the periodic
check of this process's open streams sees it; Stop in this process closes
it at once), or at shutdown. Nothing is lost when a stream breaks: the
`completed` callback still brings the whole reply.
"""

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from django.conf import settings

from live.connections import fresh_connections
from n8n import transport
from n8n import webhooks as n8n
from n8n.chunks import announced_execution_id, parse_chunk
from n8n.webhooks import MAX_PLAIN_BODY_BYTES, DispatchResult, Outcome
from observability import metrics

from ..door import TaskConflict, append_partial
from ..models import AsyncTask, TaskStatus

logger = logging.getLogger(__name__)

# Every this many seconds the open streams' tasks are checked (Stop elsewhere).
CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class StreamHooks:
    """What a stream's reader calls beyond writing text, given by the dispatcher
    (each runs on a writer thread and returns nothing the reader needs)."""

    # execution_id(task_id, execution_id): the stream announced its execution id.
    execution_id: Callable[[int, str], object]
    # refused(task_id, result): the answer began with an error after the
    # dispatcher stopped waiting for it (a DispatchResult of a refusal).
    refused: Callable[[int, DispatchResult], object]


class Streams:
    """This process's streams: one event-loop thread, one HTTP client, a few
    writer threads for the database, and the reader of each open stream."""

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: httpx.AsyncClient | None = None
        self.writers: ThreadPoolExecutor | None = None
        self.lock = threading.Lock()
        # task id -> the asyncio.Task reading its stream (touched on the loop only).
        self.readers: dict[int, asyncio.Task] = {}

    def start(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is not None and not self.loop.is_closed():
                return self.loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run():
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.create_task(self.check_forever())
                loop.run_forever()

            threading.Thread(target=run, name="task-streams", daemon=True).start()
            ready.wait(5)
            self.writers = ThreadPoolExecutor(
                max_workers=settings.TASK_STREAM_WRITERS, thread_name_prefix="task-stream-writer"
            )
            self.client = None
            self.loop = loop
            return loop

    def http_client(self) -> httpx.AsyncClient:
        """One client per process (made on the loop): its pool holds the streams."""
        if self.client is None:
            # Each dispatch carries its own time-outs (n8n.webhooks.build_request);
            # a stream's reads then have none: its deadline is the task's.
            self.client = transport.async_client(
                transport.timeout(
                    settings.TASK_DISPATCH_CONNECT_TIMEOUT, settings.TASK_DISPATCH_READ_TIMEOUT
                ),
                limits=httpx.Limits(
                    max_connections=settings.TASK_STREAMS_MAX,
                    max_keepalive_connections=transport.KEEPALIVE_CONNECTIONS,
                ),
            )
        return self.client

    def post(self, url, body, headers, task_id, deadline_seconds, hooks) -> DispatchResult:
        """POST a dispatch from a sync thread; returns when its answer is classified.

        A streamed answer goes on being read on the loop after this returns."""
        loop = self.start()
        # Connect, the headers, then the body (a plain answer) or a stream's first line.
        wait = settings.TASK_DISPATCH_CONNECT_TIMEOUT + 2 * settings.TASK_DISPATCH_READ_TIMEOUT + 5
        future = asyncio.run_coroutine_threadsafe(
            _post(self, url, body, headers, task_id, deadline_seconds, hooks), loop
        )
        try:
            return future.result(timeout=wait)
        except TimeoutError as exc:
            future.cancel()
            return n8n.failed(exc, url)

    def close(self, task_id) -> bool:
        """Close this process's stream of a task (from any thread). Never raises."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return False

        def cancel():
            reader = self.readers.get(int(task_id))
            if reader is not None:
                reader.cancel()

        try:
            loop.call_soon_threadsafe(cancel)
        except RuntimeError:  # the loop is gone
            return False
        return True

    def open_count(self) -> int:
        return len(self.readers)

    def close_all(self, timeout=5.0) -> None:
        """Close every stream of this process and wait for them (tests, shutdown)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return

        async def close_them():
            readers = list(self.readers.values())
            for reader in readers:
                reader.cancel()
            if readers:
                await asyncio.wait(readers, timeout=timeout)

        try:
            asyncio.run_coroutine_threadsafe(close_them(), loop).result(timeout + 1)
        except Exception:  # noqa: BLE001 - best effort
            logger.warning("closing the open streams failed", exc_info=True)

    async def on_writer(self, function, *args):
        """Run a database function on a writer thread; never raises."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.writers, function, *args)
        except Exception:  # noqa: BLE001 - the reader goes on
            logger.warning("%s for a stream failed", function.__name__, exc_info=True)
            return None

    async def check_forever(self):
        """Close the streams of tasks that ended elsewhere (Stop in another process)."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            if not self.readers:
                continue
            try:
                ended = await asyncio.get_running_loop().run_in_executor(
                    self.writers, ended_tasks, list(self.readers)
                )
            except Exception:  # noqa: BLE001 - checked again next time
                logger.warning("checking open streams failed", exc_info=True)
                continue
            for task_id in ended:
                reader = self.readers.get(task_id)
                if reader is not None:
                    reader.cancel()


# The process's one Streams; callers use the functions below.
STREAMS = Streams()


def post(url, body, headers, task_id, deadline_seconds, hooks) -> DispatchResult:
    return STREAMS.post(url, body, headers, task_id, deadline_seconds, hooks)


def close(task_id) -> bool:
    return STREAMS.close(task_id)


def open_count() -> int:
    return STREAMS.open_count()


def close_all(timeout=5.0) -> None:
    STREAMS.close_all(timeout)


# --- one dispatch ------------------------------------------------------------------


async def _post(streams, url, body, headers, task_id, deadline_seconds, hooks) -> DispatchResult:
    client = streams.http_client()
    connect, read = settings.TASK_DISPATCH_CONNECT_TIMEOUT, settings.TASK_DISPATCH_READ_TIMEOUT
    try:
        # Until the answer's headers: the same connect and read time-outs as ever.
        request = n8n.build_request(client, url, body, headers)
        response = await asyncio.wait_for(client.send(request, stream=True), connect + read + 1)
    except transport.ERRORS as exc:
        return n8n.failed(exc, url)
    if n8n.looks_streamed(response):  # its first line decides (StreamReader)
        # A stream may pause for long (a model thinking; n8n 2.41 sends a
        # keepalive every 30 s): no read time-out, the task's deadline instead.
        # httpcore reads this dict when the body's first read starts.
        request.extensions["timeout"] = {**request.extensions["timeout"], "read": None}
        reader = StreamReader(streams, task_id, response, deadline_seconds, hooks)
        return await _verdict(reader.start(), response.status_code, read)
    try:
        raw = await asyncio.wait_for(_read_plainly(response), read)
    except transport.ERRORS as exc:
        return n8n.failed(exc, url)
    finally:
        await response.aclose()
    return n8n.classify(response.status_code, raw)


async def _verdict(verdict, status_code, wait) -> DispatchResult:
    """What a chunked answer is, from its first line (StreamReader).

    Waited for as long as a plain answer's body would be; a stream whose first
    line takes longer (a slow first step) is accepted, and its reader decides
    alone when that line comes."""
    try:
        kind, detail = await asyncio.wait_for(asyncio.shield(verdict), wait)
    except TimeoutError:
        if not verdict.cancel():  # decided at this very moment after all
            kind, detail = verdict.result()
        else:
            return DispatchResult(
                Outcome.ACCEPTED, status_code, "(a streamed answer, its first line still to come)"
            )
    if kind == "refused":
        content, line = detail
        return n8n.streamed_refusal(status_code, content, line)
    if kind == "plain":
        return n8n.classify(status_code, detail)
    return DispatchResult(Outcome.ACCEPTED, status_code, "(a streamed answer)")


async def _read_plainly(response) -> bytes:
    """A whole answer, at most MAX_PLAIN_BODY_BYTES of it (n8n.webhooks.read_plainly
    on the loop)."""
    raw = bytearray()
    async for part in response.aiter_bytes():
        raw += part
        if len(raw) > MAX_PLAIN_BODY_BYTES:
            break
    return bytes(raw[:MAX_PLAIN_BODY_BYTES])


# --- reading one answer --------------------------------------------------

# Reading one answer of n8n that came chunked, on the streams loop.
#
# The first line decides what the answer is (its `verdict`, which the
# dispatcher waits for): an n8n chunk makes it a stream, an `error` chunk first
# a refusal (the workflow failed before it wrote anything: n8n's headers said
# 200 before any node ran), anything else a plain answer, read whole (bounded)
# and classified as before. In a stream, every `item`'s content is appended to
# the task's partial reply in batches by the streams' writer threads, except a
# first item that only announces the execution id; the reader ends with the
# body, an `error` chunk, the task's deadline, or when the task has ended.


# A line longer than this is not a chunk n8n writes: the stream is dropped.
MAX_LINE_BYTES = 1_048_576


class StreamReader:
    """Reads one chunked answer on the loop and writes its text in batches."""

    def __init__(self, streams, task_id, response, deadline_seconds, hooks):
        self.streams = streams
        self.hooks = hooks
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
        old = self.streams.readers.get(self.task_id)
        if old is not None:
            old.cancel()  # a dispatch again: the newer answer wins
        self.streams.readers[self.task_id] = task
        metrics.record_stream_opened()
        task.add_done_callback(self._forget)
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
            result = n8n.streamed_refusal(status, content, line)
            await self.streams.on_writer(
                fresh_connections(self.hooks.refused), self.task_id, result
            )

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
                    await self.streams.on_writer(
                        fresh_connections(self.hooks.execution_id), self.task_id, announced
                    )
                else:
                    self._add(content)
            elif kind == "error":
                self.outcome = "error chunk"
                return  # a failed or stopped execution may leave the response open
            if self.finished:
                self.outcome = "task finished"
                return
        self.outcome = "ended"

    async def _first_line(self, parts) -> bytearray | None:
        """Read up to the first complete non-empty line. Returns the bytes read
        when it is an n8n chunk (a stream goes on); otherwise reads the whole
        answer (at most MAX_PLAIN_BODY_BYTES), gives the verdict "plain" and
        returns None. Each byte is searched once (a line may come a byte at a
        time)."""
        buffer = bytearray()
        line_start = scanned = 0
        decided = False
        async for part in parts:
            buffer += part
            newline = buffer.find(b"\n", scanned)
            while newline >= 0 and not buffer[line_start:newline].strip():
                line_start = newline + 1  # a blank line before the first one
                newline = buffer.find(b"\n", line_start)
            scanned = len(buffer)
            if newline >= 0:
                if parse_chunk(bytes(buffer[line_start:newline]).strip()) is not None:
                    return buffer
                decided = True
                break
            if len(buffer) > MAX_PLAIN_BODY_BYTES:
                decided = True
                break
        if not decided:  # the body ended: one line (or none) with no newline after it
            if buffer.strip() and parse_chunk(bytes(buffer)) is not None:
                return buffer
        async for part in parts:  # a plain answer that came chunked: the rest of it
            if len(buffer) > MAX_PLAIN_BODY_BYTES:
                break
            buffer += part
        self.outcome = "a plain answer"
        await self._decide("plain", bytes(buffer[:MAX_PLAIN_BODY_BYTES]))
        return None

    async def _lines(self, buffer, parts):
        """The body's lines (after what was read already), each bounded in size.

        One bytearray, searched from where the last search stopped, and cut
        from the front only once per part that ended a line: a line that
        comes a byte at a time costs its length, not its length squared."""
        buffer = bytearray(buffer)
        start = scanned = 0
        while True:
            newline = buffer.find(b"\n", scanned)
            while newline >= 0:
                line = buffer[start:newline]
                start = scanned = newline + 1
                if line.strip():
                    yield line.decode("utf-8", errors="replace")
                newline = buffer.find(b"\n", scanned)
            if start:
                del buffer[:start]
                start = 0
            scanned = len(buffer)
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
            self.writing = loop.run_in_executor(self.streams.writers, append, self.task_id, text)
            try:
                accepted = await self.writing
            finally:
                self.writing = None
        if not accepted:
            self.finished = True
            reader = self.streams.readers.get(self.task_id)
            if reader is not None and reader is not asyncio.current_task():
                reader.cancel()

    def _forget(self, task):
        metrics.record_stream_closed()
        if self.streams.readers.get(self.task_id) is task:
            del self.streams.readers[self.task_id]


# --- the database side, on the writer threads ------------------------------


@fresh_connections
def append(task_id, text) -> bool:
    """False when the task takes no more text (finished, or its partial text
    is full: reading on would only cost CPU for text that is dropped)."""
    try:
        return not append_partial(task_id, text).full
    except (TaskConflict, AsyncTask.DoesNotExist):
        return False


@fresh_connections
def ended_tasks(task_ids) -> list[int]:
    return list(
        AsyncTask.objects.filter(pk__in=task_ids)
        .exclude(status__in=TaskStatus.unfinished())
        .values_list("pk", flat=True)
    )
