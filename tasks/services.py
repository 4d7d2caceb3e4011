"""The task system's service functions, in one place for callers.

Views, the admin, the worker, other apps and tests call these; each lives in
the room of its concern:

- `tasks.door`: the one function through which every change of a task goes.
- `n8n.webhooks` (the adapter, no database): a dispatch answer's outcome types.
- `tasks.outbound.dispatch`: claim, send, record the answer, back off; the bounded pool.
- `tasks.callbacks`: what a workflow's callback may say, and applying it.
- `tasks.lifecycle`: create, time out, fail, stop, dispatch again.
"""

from n8n.webhooks import DispatchResult, Outcome

from .callbacks import CallbackError, apply_callback, validate_callback
from .door import TaskConflict
from .lifecycle import cancel, create_task, dispatch_again, expire_overdue, mark_failed
from .outbound.dispatch import (
    ATTEMPT_HISTORY_MAX,
    Recorded,
    backoff_seconds,
    claim,
    claim_and_dispatch,
    dispatch,
    dispatch_body,
    dispatch_due,
    record_dispatch,
    schedule_dispatch,
    send,
)

__all__ = [
    "ATTEMPT_HISTORY_MAX",
    "CallbackError",
    "DispatchResult",
    "Outcome",
    "Recorded",
    "TaskConflict",
    "apply_callback",
    "backoff_seconds",
    "cancel",
    "claim",
    "claim_and_dispatch",
    "create_task",
    "dispatch",
    "dispatch_again",
    "dispatch_body",
    "dispatch_due",
    "expire_overdue",
    "mark_failed",
    "record_dispatch",
    "schedule_dispatch",
    "send",
    "validate_callback",
]
