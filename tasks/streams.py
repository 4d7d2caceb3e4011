"""The streams of n8n answers this process is reading, so Stop can close them.

A reader registers a close function for its task; `close(task_id)` calls it
(from any thread). A task stopped in another process is noticed by the
reader itself (it checks the task's status while it reads).
"""

import logging
import threading

logger = logging.getLogger(__name__)

_open: dict[int, object] = {}
_lock = threading.Lock()


def register(task_id, closer) -> None:
    with _lock:
        _open[int(task_id)] = closer


def unregister(task_id, closer=None) -> None:
    with _lock:
        if closer is None or _open.get(int(task_id)) is closer:
            _open.pop(int(task_id), None)


def open_task_ids() -> list[int]:
    with _lock:
        return list(_open)


def close(task_id) -> bool:
    """Close this process's stream of a task, if it reads one. Never raises."""
    with _lock:
        closer = _open.pop(int(task_id), None)
    if closer is None:
        return False
    try:
        closer()
    except Exception:  # noqa: BLE001 - the reader also stops on its own
        logger.warning("closing the stream of task %s failed", task_id, exc_info=True)
    return True
