"""Dispatching over asyncio, and reading n8n's streamed answers as they arrive.

A workflow whose Webhook node is in *Streaming* mode answers the dispatch at
once (headers, `Transfer-Encoding: chunked`) and then writes one JSON object
per line while it runs: `begin`, `item` (its `content` is the next piece of
the reply), `end`, `error`, and on newer n8n `keepalive`. This module sends
dispatches with an asyncio HTTP client (httpx) on one event-loop thread per
process ("task-streams"), so that such a body can be read for minutes
without holding a thread or a database connection: a pool thread waits only
until the answer's headers (or, for a plain answer, its body) are in, exactly
as long as it did with a blocking client.

- A plain answer (with a `Content-Length`, or a chunked body that is not a
  stream of chunks) is classified as before (`tasks.n8n.classify`).
- A streamed answer is accepted at once; its reader appends each `item`'s
  content to the task's partial reply (`tasks.door.append_partial`) in
  batches, the first piece at once and then at most every
  TASK_STREAM_FLUSH_SECONDS, from a small thread pool of its own (so at most
  TASK_STREAM_WRITERS database connections for all streams of the process).
- A stream ends with its body, with an `error` chunk (a stopped execution
  leaves its response open after that line), at the task's deadline, when the
  task is stopped or finished (the next write is refused, or the periodic
  check of this process's open streams sees it; Stop in this process closes
  it at once), or at shutdown. Nothing is lost when a stream breaks: the
  `completed` callback still brings the whole reply.
"""

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.conf import settings
from django.db import close_old_connections

from . import n8n
from .door import TaskConflict, append_partial
from .models import AsyncTask, TaskStatus
from .n8n import DispatchResult, Failure, Outcome

logger = logging.getLogger(__name__)

CHUNK_TYPES = {"begin", "item", "end", "error", "keepalive"}
# A line longer than this is not a chunk n8n writes: the stream is dropped.
MAX_LINE_BYTES = 1_048_576
# A plain answer's body is read up to this size (error_details keeps its start).
MAX_PLAIN_BODY_BYTES = 1_048_576
# Every this many seconds the open streams' tasks are checked (Stop elsewhere).
CHECK_SECONDS = 2.0

_loop: asyncio.AbstractEventLoop | None = None
_client: httpx.AsyncClient | None = None
_writers: ThreadPoolExecutor | None = None
_lock = threading.Lock()
# task id -> the asyncio.Task reading its stream (touched on the loop only).
_readers: dict[int, asyncio.Task] = {}


def _start():
    global _loop, _client, _writers
    with _lock:
        if _loop is not None and not _loop.is_closed():
            return _loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.create_task(_check_forever())
            loop.run_forever()

        threading.Thread(target=run, name="task-streams", daemon=True).start()
        ready.wait(5)
        _writers = ThreadPoolExecutor(
            max_workers=settings.TASK_STREAM_WRITERS, thread_name_prefix="task-stream-writer"
        )
        _client = None
        _loop = loop
        return loop


def _http_client() -> httpx.AsyncClient:
    """One client per process (made on the loop): its pool holds the streams."""
    global _client
    if _client is None:
        _client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.TASK_DISPATCH_CONNECT_TIMEOUT,
                read=None,  # a stream may pause; its deadline is the task's
                write=settings.TASK_DISPATCH_READ_TIMEOUT,
                pool=settings.TASK_DISPATCH_CONNECT_TIMEOUT,
            ),
            limits=httpx.Limits(
                max_connections=settings.TASK_STREAMS_MAX, max_keepalive_connections=20
            ),
            follow_redirects=False,
            trust_env=False,
        )
    return _client


# --- dispatch -----------------------------------------------------------------------


def post(url, body, headers, task_id, deadline_seconds) -> DispatchResult:
    """POST a dispatch from a sync thread; returns when its answer is classified.

    A streamed answer goes on being read on the loop after this returns."""
    loop = _start()
    wait = settings.TASK_DISPATCH_CONNECT_TIMEOUT + settings.TASK_DISPATCH_READ_TIMEOUT + 5
    future = asyncio.run_coroutine_threadsafe(
        _post(url, body, headers, task_id, deadline_seconds), loop
    )
    try:
        return future.result(timeout=wait)
    except TimeoutError:
        future.cancel()
        return _timed_out(url)


def _timed_out(url):
    return DispatchResult(
        Outcome.RETRYABLE,
        error=(
            f"no answer within {settings.TASK_DISPATCH_READ_TIMEOUT:g} s "
            f"from {n8n.without_credentials(url)}"
        ),
        kind=Failure.TIMEOUT,
    )


def looks_streamed(response) -> bool:
    """n8n's Streaming mode: a 2xx JSON answer with no length (chunked)."""
    if not 200 <= response.status_code < 300 or "content-length" in response.headers:
        return False
    kind = response.headers.get("content-type", "")
    return "json" in kind or "ndjson" in kind


async def _post(url, body, headers, task_id, deadline_seconds) -> DispatchResult:
    shown = n8n.without_credentials(url)
    client = _http_client()
    connect, read = settings.TASK_DISPATCH_CONNECT_TIMEOUT, settings.TASK_DISPATCH_READ_TIMEOUT
    # Until the answer's headers: the same connect and read time-outs as ever.
    timeout = httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
    data, headers = n8n.signed_request(body, headers)  # the same bytes and signature
    request = client.build_request("POST", url, content=data, headers=headers, timeout=timeout)
    try:
        response = await asyncio.wait_for(client.send(request, stream=True), connect + read + 1)
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        return DispatchResult(
            Outcome.RETRYABLE, error=f"could not connect to {shown}: {exc}", kind=Failure.CONNECTION
        )
    except (TimeoutError, httpx.TimeoutException):
        return _timed_out(url)
    except httpx.HTTPError as exc:
        return DispatchResult(
            Outcome.RETRYABLE,
            error=f"could not connect to {shown}: {type(exc).__name__} {exc}",
            kind=Failure.CONNECTION,
        )
    if looks_streamed(response):
        # A stream may pause for long (a model thinking; n8n 2.41 sends a
        # keepalive every 30 s): no read time-out, the task's deadline instead.
        # httpcore reads this dict when the body's first read starts.
        request.extensions["timeout"] = {**request.extensions["timeout"], "read": None}
        reader = StreamReader(task_id, response, deadline_seconds)
        reader.start()
        return DispatchResult(Outcome.ACCEPTED, response.status_code, "(a streamed answer)")
    try:
        raw = await asyncio.wait_for(
            _read_limited(response, MAX_PLAIN_BODY_BYTES), settings.TASK_DISPATCH_READ_TIMEOUT
        )
    except (TimeoutError, httpx.TimeoutException):
        await response.aclose()
        return _timed_out(url)
    except httpx.HTTPError as exc:
        await response.aclose()
        return DispatchResult(
            Outcome.RETRYABLE,
            error=f"could not connect to {shown}: {type(exc).__name__} {exc}",
            kind=Failure.CONNECTION,
        )
    await response.aclose()
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return n8n.classify(response.status_code, text, data)


async def _read_limited(response, limit) -> bytes:
    raw = bytearray()
    async for part in response.aiter_bytes():
        raw += part
        if len(raw) > limit:
            break
    return bytes(raw[:limit])


# --- reading a stream ------------------------------------------------------------------


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
        old = _readers.get(self.task_id)
        if old is not None:
            old.cancel()  # a dispatch again: the newer answer wins
        _readers[self.task_id] = task
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
        self.writing = loop.run_in_executor(_writers, _append, self.task_id, text)
        try:
            accepted = await self.writing
        finally:
            self.writing = None
        if not accepted:
            self.finished = True
            reader = _readers.get(self.task_id)
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
    if _readers.get(task_id) is task:
        del _readers[task_id]


async def _check_forever():
    """Close the streams of tasks that ended elsewhere (Stop in another process)."""
    while True:
        await asyncio.sleep(CHECK_SECONDS)
        if not _readers:
            continue
        try:
            ended = await asyncio.get_running_loop().run_in_executor(
                _writers, _ended_tasks, list(_readers)
            )
        except Exception:  # noqa: BLE001 - checked again next time
            logger.warning("checking open streams failed", exc_info=True)
            continue
        for task_id in ended:
            reader = _readers.get(task_id)
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


# --- Stop, and what is open ---------------------------------------------------------


def close(task_id) -> bool:
    """Close this process's stream of a task (from any thread). Never raises."""
    loop = _loop
    if loop is None or loop.is_closed():
        return False

    def cancel():
        reader = _readers.get(int(task_id))
        if reader is not None:
            reader.cancel()

    try:
        loop.call_soon_threadsafe(cancel)
    except RuntimeError:  # the loop is gone
        return False
    return True


def open_count() -> int:
    return len(_readers)


def close_all(timeout=5.0) -> None:
    """Close every stream of this process and wait for them (tests, shutdown)."""
    loop = _loop
    if loop is None or loop.is_closed():
        return

    async def close_them():
        readers = list(_readers.values())
        for reader in readers:
            reader.cancel()
        if readers:
            await asyncio.wait(readers, timeout=timeout)

    try:
        asyncio.run_coroutine_threadsafe(close_them(), loop).result(timeout + 1)
    except Exception:  # noqa: BLE001 - best effort
        logger.warning("closing the open streams failed", exc_info=True)
