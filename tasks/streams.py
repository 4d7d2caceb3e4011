"""Dispatching over asyncio, and reading n8n's streamed answers as they arrive.

A workflow whose Webhook node is in *Streaming* mode answers the dispatch at
once (headers, `Transfer-Encoding: chunked`) and then writes one JSON object
per line while it runs: `begin`, `item` (its `content` is the next piece of
the reply), `end`, `error`, and on newer n8n `keepalive`. This module sends
dispatches with an asyncio HTTP client (httpx) on one event-loop thread per
process ("task-streams"), so that such a body can be read for minutes
without holding a thread or a database connection: a pool thread waits only
until the answer's headers and first line (a plain answer: its body) are in,
at most as long as it did with a blocking client.

- A plain answer (with a `Content-Length`, or a chunked body whose first line
  is not one of n8n's chunks) is classified as before (`tasks.n8n.classify`).
- A chunked answer whose first line is an `error` chunk is a refusal (final,
  like a 4xx): the workflow failed before writing anything, e.g. its signature
  check refused the request, since n8n sends status 200 before any node runs.
- A streamed answer is accepted at its first line (or when that line takes
  longer than TASK_DISPATCH_READ_TIMEOUT); its reader appends each `item`'s
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

from . import n8n, stream_reader, stream_writes
from .n8n import DispatchResult, Failure, Outcome

logger = logging.getLogger(__name__)

# A plain answer's body is read up to this size (error_details keeps its start).
MAX_PLAIN_BODY_BYTES = 1_048_576

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
            loop.create_task(stream_writes.check_forever())
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
    # Connect, the headers, then the body (a plain answer) or a stream's first line.
    wait = settings.TASK_DISPATCH_CONNECT_TIMEOUT + 2 * settings.TASK_DISPATCH_READ_TIMEOUT + 5
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
    """Maybe n8n's Streaming mode: a 2xx JSON answer with no length (chunked).

    Only a maybe: its first line decides (tasks/stream_reader.py)."""
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
        reader = stream_reader.StreamReader(task_id, response, deadline_seconds)
        return await _verdict(reader.start(), response.status_code, read)
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


async def _verdict(verdict, status_code, wait) -> DispatchResult:
    """What a chunked answer is, from its first line (tasks/stream_reader.py).

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
        text = detail.decode("utf-8", errors="replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        return n8n.classify(status_code, text, data)
    return DispatchResult(Outcome.ACCEPTED, status_code, "(a streamed answer)")


async def _read_limited(response, limit) -> bytes:
    raw = bytearray()
    async for part in response.aiter_bytes():
        raw += part
        if len(raw) > limit:
            break
    return bytes(raw[:limit])


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
