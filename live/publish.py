"""Publishing live events through the channel layer, from any thread.

The database is the source of truth; these events are a best-effort push
(a page that misses one resyncs). So publishing never raises into the caller
and never blocks for long: a sync thread that waits on an event loop which is
shutting down would otherwise hang the process at shutdown.

Where the coroutine runs matters for the in-memory layer, whose queues belong
to one event loop: we run it on the loop that serves the websockets.
- In async code: scheduled on the running loop.
- In a request thread (sync_to_async under Daphne, or a test): on the loop that
  started the thread.
- In any other thread of the server process (the in-process worker, the
  dispatcher pool): on the server's loop, remembered by the ASGI application.
- In a process without a server loop (the `tasks_worker` command): on one
  long-lived loop thread of its own, so channels-redis keeps one connection.
"""

import asyncio
import logging
import os
import threading
import weakref

from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

PUBLISH_TIMEOUT_SECONDS = 2.0
# How long a build after the commit (`send_on_commit`) waits for what this
# thread queued before it to reach the layer (see `_wait_for_queued`).
QUEUED_WAIT_SECONDS = 0.05

_server_loop: asyncio.AbstractEventLoop | None = None
_own_loop: asyncio.AbstractEventLoop | None = None
_own_loop_lock = threading.Lock()
# Tasks scheduled on a running loop: held so they are not garbage-collected
# before they finish (the loop keeps only a weak reference).
_pending: set[asyncio.Task] = set()
# Per thread: an Event set once the layer took the last sends it queued on a
# server's loop (or failed to).
_queued = threading.local()


def remember_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def user_group(user_id) -> str:
    """The group of a user's `/ws/tasks/` sockets."""
    return f"tasks.user.{user_id}"


def _own_event_loop() -> asyncio.AbstractEventLoop:
    global _own_loop
    with _own_loop_lock:
        if _own_loop is None or _own_loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="live-publisher", daemon=True)
            thread.start()
            _own_loop = loop
        return _own_loop


def loop_of_calling_thread() -> asyncio.AbstractEventLoop | None:
    """The event loop that is running this thread's sync code, if any.

    asgiref records it for the threads that `sync_to_async` runs code in
    (Django's request threads under Daphne, `database_sync_to_async`). It
    keeps no public API for it, so this is the one place that reads asgiref's
    internals; tests/live/test_live.py fails if an upgrade moves them. A pool
    thread keeps the value after its call, hence the checks.
    """
    outer = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    outer_pid = getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None)
    if outer is not None and outer_pid == os.getpid() and outer.is_running():
        return outer
    return None


def _target_loop():
    outer = loop_of_calling_thread()
    if outer is not None:
        return outer
    if _server_loop is not None and _server_loop.is_running():
        return _server_loop
    return _own_event_loop()


async def _send_all(sends):
    layer = get_channel_layer()
    if layer is None:
        return
    for group, message in sends:
        await layer.group_send(group, message)


def send(sends, on_sent=None) -> None:
    """Send [(group, message), …]. Never raises.

    On a server's loop (a request thread, the dispatcher, the in-process
    worker, async code) the sends are queued and this returns at once: the
    thread does not wait for the layer (nor hang on a loop that is shutting
    down), and one queue per loop keeps frames in the order they were sent.
    In a process of our own (tasks_worker) it waits a moment, so nothing is
    lost when the process exits. `on_sent()` (optional) runs once the layer
    took every send.
    """
    sends = list(sends)
    if not sends:
        return
    try:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None:
            _enqueue(running, sends, on_sent)
            return
        loop = _target_loop()
        if loop is not _own_loop:
            done = threading.Event()
            _queued.done = done
            loop.call_soon_threadsafe(_enqueue, loop, sends, on_sent, done)
            return
        future = asyncio.run_coroutine_threadsafe(_send_all(sends), loop)
        try:
            future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
        except TimeoutError:
            future.cancel()
            raise
        if on_sent is not None:
            on_sent()
    except Exception:  # noqa: BLE001 - the page resyncs from the database
        logger.warning("live publish failed for %s", [g for g, _ in sends], exc_info=True)


_queues: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Queue]" = (
    weakref.WeakKeyDictionary()
)


def _enqueue(loop, sends, on_sent=None, done=None) -> None:
    """Runs in `loop`'s thread: hand the sends to that loop's sender task."""
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = asyncio.Queue()
        task = loop.create_task(_drain(queue))
        _pending.add(task)
        task.add_done_callback(_finished)
    queue.put_nowait((sends, on_sent, done))


async def _drain(queue) -> None:
    while True:
        sends, on_sent, done = await queue.get()
        try:
            await _send_all(sends)
            if on_sent is not None:
                on_sent()
        except Exception:  # noqa: BLE001 - the page resyncs from the database
            logger.warning("live publish failed for %s", [g for g, _ in sends], exc_info=True)
        finally:
            if done is not None:
                done.set()


def _wait_for_queued() -> None:
    """Wait (at most QUEUED_WAIT_SECONDS) until the layer took what this
    thread queued last on a server's loop.

    A frame built after the commit (a reply's `message.created`, rendered
    then) goes out behind the frames queued before it anyway; built while
    those are being sent, it would hold the interpreter they need (one
    rendering thread against the loop's many small steps), and the frame
    already ready (a `task.status`) would reach pages later than it can."""
    done = getattr(_queued, "done", None)
    if done is None:
        return
    _queued.done = None
    done.wait(QUEUED_WAIT_SECONDS)


def _finished(task) -> None:
    _pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("live publish failed", exc_info=task.exception())


def send_on_commit(build, after_queued=True) -> None:
    """After the current transaction commits, call build() and send its result.

    build() returns [(group, message), …]; it runs after the commit so it reads
    committed rows (and nothing is sent for a transaction that rolls back).
    With `after_queued` it first lets the frames this thread queued before
    reach the layer (`_wait_for_queued`); a request whose answer carries what
    build() makes (a send's own message) does not wait.
    """

    def after_commit():
        if after_queued:
            _wait_for_queued()
        send(build())

    transaction.on_commit(after_commit, robust=True)
